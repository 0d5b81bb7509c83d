//! [`block_on`]: the serving thread's own run loop.
//!
//! On Linux and Android it waits for I/O in an epoll instance of its own, where `serve`
//! registers its listener and connections once, edge-triggered: a message costs a read, a
//! write and a share of one `epoll_wait`. Under any other executor `serve` uses async-io's
//! reactor, which re-arms a socket after each readiness event and does timer and notifier
//! work at each wait (BENCHMARKS.md, "Own run loop"). Everything else (timers, other async-io
//! sources, channels) keeps working inside it: async-io's own thread drives them and their
//! wake-ups reach this loop through an eventfd.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod net;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod run;

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use net::EdgeListener;

use std::future::Future;

/// Runs `future` to completion on this thread, with the crate's own I/O loop where the
/// platform has one (epoll: Linux, Android), `async_io::block_on` elsewhere.
///
/// [`Server::serve`](crate::Server::serve) runs under any executor; under this one its
/// sockets skip async-io's reactor (the fastest way to serve, see BENCHMARKS.md). Other
/// futures work inside it as under `smol::block_on` (async-io's sources and timers wake it
/// from async-io's thread). A connection's socket handed to another thread keeps working
/// while this loop runs, and gets no more readiness once it has returned.
/// A nested call runs on async-io's `block_on`.
///
/// ```no_run
/// # use nestforge_edge::prelude::*;
/// # module! { struct AppModule { providers: [] } }
/// # struct Echo;
/// # impl WebSocketGateway for Echo {
/// #     fn on_connect(&self, _: WebSocketContext, _: WebSocket) -> WebSocketFuture {
/// #         Box::pin(async {})
/// #     }
/// # }
/// nestforge_edge::block_on(async {
///     NestForgeFactory::<AppModule>::create()?.with_websocket_gateway(Echo).listen(3002).await
/// })?;
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match run::Loop::enter() {
        Some(run) => run.block_on(future),
        // Nested: the outer loop waits for this one, so nothing registers with it meanwhile.
        None => run::outside(|| async_io::block_on(future)),
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    async_io::block_on(future)
}

/// The running loop's reactor, when the caller is inside [`block_on`] (with epoll).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn current() -> Option<std::rc::Rc<epoll::Reactor>> {
    run::current()
}
