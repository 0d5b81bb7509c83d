//! The platform layer where the crate has no run loop of its own: [`block_on`] is
//! async-io's, and every socket is on async-io's reactor.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};

use super::Stream;

/// See [`crate::block_on`].
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    async_io::block_on(future)
}

pub(super) fn on_own_loop() -> bool {
    false
}

pub(super) fn parts() -> Vec<(&'static str, usize)> {
    vec![(
        "rt: stream (AsyncIoStream)",
        std::mem::size_of::<super::io::AsyncIoStream>(),
    )]
}

/// The descriptor table is left as it is.
pub(super) fn reserve_descriptors(_listener: &TcpListener, _connections: usize) {}

/// No listener of an own loop here: never made.
#[derive(Debug)]
pub(crate) enum OwnListener {}

impl OwnListener {
    pub(super) fn on_current_loop(listener: TcpListener) -> Result<io::Result<Self>, TcpListener> {
        Err(listener)
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        match *self {}
    }

    pub(super) async fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        match *self {}
    }
}
