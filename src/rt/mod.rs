//! The runtime layer: the thread a server runs on, its sockets, its tasks and timers.
//!
//! Nothing here knows about WebSocket or NestForge; everything that knows about epoll,
//! rustix, async-io's reactor or the process's descriptor table is here, behind the one
//! platform switch below (`sys`: the epoll loop on Linux and Android, async-io elsewhere).
//! The layers above see one listener type ([`Listener`]), one stream type ([`Stream`]),
//! [`Timer`], [`Tasks`] and [`block_on`].

mod counter;
mod deadlines;
mod io;
mod listener;
#[cfg(feature = "signal")]
mod os_signal;
mod signal;
pub(crate) mod sync;
mod tasks;

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "epoll/mod.rs"]
mod sys;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[path = "portable.rs"]
mod sys;

use std::future::Future;

pub(crate) use counter::Counter;
pub(crate) use deadlines::Deadlines;
#[cfg(feature = "mqtt")]
pub(crate) use io::connect;
pub(crate) use io::{AnyStream, Io, Stream};
pub(crate) use listener::Listener;
#[cfg(feature = "signal")]
pub use os_signal::{shutdown_signal, ShutdownSignal};
pub(crate) use signal::Signal;
pub(crate) use tasks::{now, OwnWakeups, Tasks};

/// Timers (ping, idle, send and shutdown deadlines): async-io's, driven by its own thread
/// under every executor, [`block_on`] included.
pub(crate) use async_io::Timer;

/// Runs `future` to completion on this thread, with the crate's own I/O loop where the
/// platform has one (epoll: Linux, Android), `async_io::block_on` elsewhere.
///
/// [`Server::serve`](crate::Server::serve) runs under any executor; under this one its
/// sockets skip async-io's reactor (the fastest way to serve:
/// BENCHMARKS.md#the-run-loop). Other
/// futures work inside it as under `smol::block_on` (async-io's sources and timers wake it
/// from async-io's thread). A connection's socket handed to another thread keeps working
/// while this loop runs; once it has returned, an operation on such a socket that would
/// wait fails with an error instead. A nested call runs on futures-lite's `block_on` (async-io's
/// sources and timers wake it from async-io's own thread).
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
    sys::block_on(future)
}

/// Whether the caller runs inside [`block_on`]'s own loop (where `serve` registers its
/// sockets with it), rather than under another executor.
#[doc(hidden)]
pub fn on_own_loop() -> bool {
    sys::on_own_loop()
}

/// The sizes of what a connection costs this layer (see
/// `crate::__private::connection_parts`).
pub(crate) fn parts() -> Vec<(&'static str, usize)> {
    let mut parts = tasks::parts();
    parts.extend(sys::parts());
    parts.push(("rt: Timer", std::mem::size_of::<Timer>()));
    parts
}

/// Grows the process's descriptor table, before serving, to hold `connections` more
/// descriptors (see [`ServerConfig::get_max_connections`](crate::ServerConfig)); nothing
/// where the platform needs no such step.
pub(crate) fn reserve_descriptors(listener: &std::net::TcpListener, connections: usize) {
    sys::reserve_descriptors(listener, connections);
}
