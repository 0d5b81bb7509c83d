//! The listener of a `serve` call: on the run loop's own reactor inside
//! [`block_on`](crate::block_on), on async-io's under any other executor.

use std::io;
use std::net::{SocketAddr, TcpListener};

use async_io::Async;

use super::io::AsyncIoStream;
use super::sys::OwnListener;
use super::Stream;

#[derive(Debug)]
pub(crate) enum Listener {
    AsyncIo(Async<TcpListener>),
    Own(OwnListener),
}

impl Listener {
    /// `listener`, after room for `connections` more descriptors was made (see
    /// [`reserve_descriptors`](super::reserve_descriptors)).
    // Not inlined: start-up code, kept out of `serve`'s poll function (-0.2 KB there).
    #[inline(never)]
    pub(crate) fn new(listener: TcpListener, connections: usize) -> io::Result<Self> {
        super::reserve_descriptors(&listener, connections);
        match OwnListener::on_current_loop(listener) {
            Ok(own) => Ok(Listener::Own(own?)),
            Err(listener) => Ok(Listener::AsyncIo(Async::new(listener)?)),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::AsyncIo(listener) => listener.get_ref().local_addr(),
            Listener::Own(listener) => listener.local_addr(),
        }
    }

    /// The next connection, with `TCP_NODELAY` set.
    pub(crate) async fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::AsyncIo(listener) => {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.get_ref().set_nodelay(true);
                Ok((Box::new(AsyncIoStream(stream)), peer))
            }
            Listener::Own(listener) => listener.accept().await,
        }
    }
}
