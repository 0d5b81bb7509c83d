//! The server: the accept loop, each connection's life (upgrade, gateway, close), and
//! shutdown. With `ws::socket`, the only code that touches sockets.

mod config;
mod connection;
mod handshake;
mod shutdown;

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use event_listener::Event;
use futures_lite::future::{or, poll_fn};
use futures_lite::{AsyncRead, AsyncWrite};

pub use config::ServerConfig;
pub(crate) use connection::parts as connection_parts;
pub use shutdown::ShutdownHandle;

use crate::error::Result;
use crate::extension;
use crate::gateway::WebSocketGateway;
use crate::log::event;
use crate::providers::{Lifecycle, Phase, Providers};
use crate::push::Connections;
use crate::rt::sync::lock;
use crate::rt::{AnyStream, Counter, Deadlines, Listener, OwnWakeups, Signal, Tasks, Timer};
use crate::spawner::Spawner;
use crate::ws::{Stats, StatsSnapshot, WebSocketConfig};

/// A task given to [`NestForgeFactory::with_task`](crate::NestForgeFactory::with_task),
/// started on the serving thread.
pub(crate) type StartTask =
    Box<dyn FnOnce(Providers) -> std::pin::Pin<Box<dyn Future<Output = ()>>> + Send>;

pub(crate) struct Mount {
    pub(crate) gateway: Arc<dyn WebSocketGateway>,
    pub(crate) config: Arc<WebSocketConfig>,
}

/// A configured server: gateways, providers and limits. Cheap to clone.
///
/// Runs on one thread under any executor: [`serve`](Self::serve) multiplexes its
/// connections itself (a minimal local task set), so [`block_on`](crate::block_on),
/// `smol::block_on`, `futures_lite::future::block_on` or a task on a caller's
/// `LocalExecutor` all work. Under the crate's own `block_on` (Linux, Android) its sockets
/// are registered once in that loop's epoll instead of async-io's reactor: fewer syscalls
/// per message (BENCHMARKS.md#syscalls-per-message).
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    providers: Providers,
    lifecycle: Lifecycle,
    /// The `on_application_bootstrap` hooks ran (or are running).
    bootstrapped: AtomicBool,
    /// The shutdown hooks ran (or are running).
    ended: AtomicBool,
    /// Tasks to start on the serving thread (taken by the first `serve`).
    tasks: Mutex<Vec<StartTask>>,
    mounts: Vec<Mount>,
    config: ServerConfig,
    stats: Arc<Stats>,
    next_id: Counter,
    signal: Arc<Signal>,
    /// The connections' ping and idle deadlines, on one timer.
    deadlines: Arc<Deadlines>,
    /// Notified when the last open connection closes.
    all_closed: Event,
}

impl Server {
    pub(crate) fn new(
        providers: Providers,
        lifecycle: Lifecycle,
        mounts: Vec<Mount>,
        config: ServerConfig,
        tasks: Vec<StartTask>,
    ) -> Self {
        Server {
            shared: Arc::new(Shared {
                providers,
                lifecycle,
                bootstrapped: AtomicBool::new(false),
                ended: AtomicBool::new(false),
                tasks: Mutex::new(tasks),
                mounts,
                config,
                stats: Arc::default(),
                next_id: Counter::new(1),
                signal: Arc::default(),
                deadlines: Deadlines::new(),
                all_closed: Event::new(),
            }),
        }
    }

    /// A handle that starts a graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            signal: Arc::clone(&self.shared.signal),
            connections: self.shared.providers.resolve::<Connections>().ok(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The providers the gateways resolve from.
    pub fn providers(&self) -> &Providers {
        &self.shared.providers
    }

    /// Serves `listener` until shutdown, then closes every connection (Close 1001) and
    /// returns once they are closed or `shutdown_timeout` has passed.
    ///
    /// The first `serve` runs the modules' `on_application_bootstrap` hooks before it
    /// accepts (a failing one is returned), starts the [`with_task`] tasks and whatever the
    /// [`Spawner`] was given, on this thread; after the shutdown it runs the
    /// `on_module_destroy` and `on_application_shutdown` hooks (the first failure is
    /// returned, once all ran).
    ///
    /// [`with_task`]: crate::NestForgeFactory::with_task
    pub async fn serve(&self, listener: TcpListener) -> Result<()> {
        let shared = &*self.shared;
        let listener = Listener::new(listener, shared.config.max_connections)?;
        let local = listener.local_addr().ok();
        let spawner = shared
            .providers
            .get::<Spawner>()
            .cloned()
            .unwrap_or_default();
        let _current = spawner.enter();
        if !shared.bootstrapped.swap(true, Ordering::AcqRel) {
            shared
                .lifecycle
                .run(Phase::ApplicationBootstrap, &shared.providers)?;
        }
        for mount in &shared.mounts {
            mount.gateway.on_init(local);
        }
        event!(info, "listening on {local:?}");
        let tasks = Tasks::new();
        if let Some(extension) = extension::installed(&shared.providers) {
            tasks.spawn_boxed(extension.background_task(shared.providers.clone()));
        }
        for task in std::mem::take(&mut *lock(&shared.tasks)) {
            tasks.spawn_boxed(task(shared.providers.clone()));
        }
        // Futures handed to the spawner become tasks; polled on the spawner's wake-ups only.
        let spawned = OwnWakeups::new(poll_fn(|cx| {
            for task in spawner.take(cx) {
                tasks.spawn_boxed(task);
            }
            Poll::<()>::Pending
        }));
        // The accept loop is polled only when its own waker fires: polled with every
        // connection's wake-up, async-io's `accept` would try `accept4` and re-register the
        // listener each time.
        // Boxed and polled through its vtable: it runs once per accepted connection, and its
        // code stays out of `serve`'s poll function (0.1 KB in the tiny build).
        let accepting: Pin<Box<dyn Future<Output = ()> + '_>> = Box::pin(async {
            let mut listener = listener;
            loop {
                let accept = async { Some(listener.accept().await) };
                let stop = async {
                    self.shared.signal.wait().await;
                    None
                };
                match or(accept, stop).await {
                    None => break,
                    Some(Ok((stream, peer))) => tasks.spawn(self.serve_io(stream, Some(peer))),
                    Some(Err(e)) => {
                        // Out of descriptors or a connection reset while queued: back off.
                        event!(warn, "accept failed: {e}");
                        Timer::after(Duration::from_millis(50)).await;
                    }
                }
            }
            // Closed before the drain: new connections are refused, not left queued.
            drop(listener);
        });
        let accepting = OwnWakeups::new(accepting);
        let main = async {
            or(accepting, spawned).await;
            let all_closed = async {
                loop {
                    let listener = self.shared.all_closed.listen();
                    if self.shared.stats.open.get() == 0 {
                        break;
                    }
                    listener.await;
                }
            };
            or(all_closed, async {
                Timer::after(self.shared.config.shutdown_timeout).await;
            })
            .await;
        };
        // The connections still open when `main` ends are dropped with `tasks`.
        or(main, tasks.run()).await;
        event!(info, "stopped");
        if shared.ended.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let destroyed = shared
            .lifecycle
            .run(Phase::ModuleDestroy, &shared.providers);
        let shut_down = shared
            .lifecycle
            .run(Phase::ApplicationShutdown, &shared.providers);
        destroyed.and(shut_down)
    }

    /// [`serve`](Self::serve) until `signal` completes, then shuts down gracefully (as
    /// [`ShutdownHandle::shutdown`] does) and returns once the connections are closed or
    /// `shutdown_timeout` has passed: axum's `with_graceful_shutdown`. A server shut down
    /// stays so: serving it (or a clone) again returns `Ok` at once.
    ///
    /// `signal` runs on the serving thread (no thread of its own) and is polled only when
    /// its own waker fires. Raced against `serve` with a plain `or`, it would be polled at
    /// every wake-up of any connection, and a future whose poll tries a read, such as
    /// async-signal's `Signals` (one `recvfrom` per poll), would cost a syscall per message.
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
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// nestforge_edge::block_on(async {
    ///     let server = NestForgeFactory::<AppModule>::create()?
    ///         .with_websocket_gateway(Echo)
    ///         .into_server()?;
    ///     let listener = std::net::TcpListener::bind("127.0.0.1:3002")?;
    ///     // SIGINT or SIGTERM (feature `signal`), or any future.
    ///     let signal = nestforge_edge::shutdown_signal()?;
    ///     server.serve_with_graceful_shutdown(listener, signal).await
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve_with_graceful_shutdown<F>(
        &self,
        listener: TcpListener,
        signal: F,
    ) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        let handle = self.shutdown_handle();
        let signal = OwnWakeups::new(async move {
            signal.await;
            handle.shutdown();
        });
        let shut_down = async {
            signal.await;
            // `serve` finishes the drain and returns.
            std::future::pending::<Result<()>>().await
        };
        or(self.serve(listener), shut_down).await
    }

    /// Serves one already-accepted connection (any `AsyncRead + AsyncWrite` stream): the
    /// upgrade, then the gateway, then the close. Counts against `max_connections`.
    ///
    /// The stream's `poll_close` should half-close it (send FIN), as `async_net::TcpStream`
    /// does; `async_io::Async<TcpStream>`'s only flushes, so the peer would wait for the
    /// server's FIN until `close_timeout` (`serve` wraps its sockets accordingly).
    pub async fn serve_connection<S>(&self, stream: S, peer: Option<SocketAddr>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.serve_io(Box::new(AnyStream(stream)), peer).await
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field(
                "endpoints",
                &self
                    .shared
                    .mounts
                    .iter()
                    .map(|m| &m.config.endpoint)
                    .collect::<Vec<_>>(),
            )
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
