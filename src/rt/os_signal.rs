//! SIGINT and SIGTERM as a future (feature `signal`), through async-signal (smol's).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_signal::{Signal, Signals};
use futures_lite::Stream;

/// Completes at the first SIGINT or SIGTERM the process receives (Ctrl-C on Windows): the
/// signal [`listen_with_graceful_shutdown`] and [`Server::serve_with_graceful_shutdown`]
/// wait for, the way a service manager (systemd, a container runtime) stops a device's
/// program. Feature `signal`.
///
/// Once made, the signals it waits for no longer end the process by default (their
/// handler is installed for the process's whole life); a second signal after the first
/// is not acted upon, so a stuck shutdown is ended by SIGKILL or the shutdown timeout.
///
/// [`listen_with_graceful_shutdown`]: crate::NestForgeFactory::listen_with_graceful_shutdown
/// [`Server::serve_with_graceful_shutdown`]: crate::Server::serve_with_graceful_shutdown
///
/// # Examples
/// ```no_run
/// # use nestforge_edge::prelude::*;
/// # module! { struct AppModule {} }
/// # let gateway = |_: WebSocketContext, _: WebSocket| async {};
/// nestforge_edge::block_on(async {
///     NestForgeFactory::<AppModule>::create()?
///         .with_websocket_gateway(gateway)
///         .listen_with_graceful_shutdown(3002, nestforge_edge::shutdown_signal()?)
///         .await
/// })?;
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
pub fn shutdown_signal() -> io::Result<ShutdownSignal> {
    #[cfg(unix)]
    let signals = Signals::new([Signal::Int, Signal::Term])?;
    #[cfg(not(unix))]
    let signals = Signals::new([Signal::Int])?;
    Ok(ShutdownSignal { signals })
}

/// See [`shutdown_signal`].
pub struct ShutdownSignal {
    signals: Signals,
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.signals).poll_next(cx) {
            Poll::Ready(Some(_)) => Poll::Ready(()),
            // The stream never ends while its signals are registered: wait on.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownSignal").finish_non_exhaustive()
    }
}
