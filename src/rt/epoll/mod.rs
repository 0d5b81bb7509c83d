//! The platform layer on Linux and Android: [`block_on`]'s own run loop over an epoll
//! instance, the listener and streams registered with it, the descriptor table.
//!
//! `serve` registers its listener and connections once, edge-triggered: a message costs a
//! read, a write and a share of one `epoll_wait`. async-io's reactor, which `serve` uses
//! under any other executor, re-arms a socket after each readiness event and does timer
//! and notifier work at each wait.

mod descriptors;
mod net;
mod notify;
mod reactor;
mod run;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::TcpListener;

pub(super) use descriptors::reserve_descriptors;
pub(super) use net::EpollListener as OwnListener;

/// See [`crate::block_on`].
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    match run::Loop::enter() {
        Some(run) => run.block_on(future),
        // Nested: the outer loop waits for this one, so nothing registers with it meanwhile.
        None => run::outside(|| futures_lite::future::block_on(future)),
    }
}

pub(super) fn parts() -> Vec<(&'static str, usize)> {
    let mut parts = reactor::parts();
    parts.push((
        "rt: stream (EpollStream)",
        std::mem::size_of::<net::EpollStream>(),
    ));
    parts
}

pub(super) fn on_own_loop() -> bool {
    run::current().is_some()
}

impl OwnListener {
    /// `listener` on the loop running on this thread; given back when there is none (not
    /// inside [`block_on`]).
    pub(super) fn on_current_loop(
        listener: TcpListener,
    ) -> Result<std::io::Result<Self>, TcpListener> {
        match run::current() {
            Some(reactor) => Ok(OwnListener::new(reactor, listener)),
            None => Err(listener),
        }
    }
}
