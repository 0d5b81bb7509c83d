//! The server: accept loop, upgrade, connection lifetime. The only code besides `socket.rs`
//! that touches sockets.

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_io::Timer;
use event_listener::Event;
use futures_lite::future::{or, poll_fn};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use std::pin::Pin;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::config::{ServerConfig, WebSocketConfig};
use crate::conn::{AnyStream, CloseInfo, Conn, Io};
use crate::context::{Handshake, RequestId, WebSocketContext};
use crate::error::Result;
use crate::extension;
use crate::gateway::WebSocketGateway;
use crate::log::event;
use crate::providers::Providers;
use crate::push::{Connections, Outbox};
use crate::shutdown::{ShutdownHandle, Signal};
use crate::socket::{Home, WebSocket};
use crate::stats::{Stats, StatsSnapshot};
use crate::sync::lock;
use crate::tasks::{OwnWakeups, Tasks};
use crate::tcp::Acceptor;
use crate::upgrade::{self, Rejection, Status, UpgradeRequest};

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
/// per message (BENCHMARKS.md).
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    providers: Providers,
    mounts: Vec<Mount>,
    config: ServerConfig,
    stats: Arc<Stats>,
    next_id: crate::counter::Counter,
    signal: Arc<Signal>,
    drained: Event,
}

impl Server {
    pub(crate) fn new(providers: Providers, mounts: Vec<Mount>, config: ServerConfig) -> Self {
        Server {
            shared: Arc::new(Shared {
                providers,
                mounts,
                config,
                stats: Arc::default(),
                next_id: crate::counter::Counter::new(1),
                signal: Arc::default(),
                drained: Event::new(),
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
    pub async fn serve(&self, listener: TcpListener) -> Result<()> {
        crate::tcp::reserve_descriptors(&listener, self.shared.config.max_connections);
        let listener = Acceptor::new(listener)?;
        let local = listener.local_addr().ok();
        for mount in &self.shared.mounts {
            mount.gateway.on_init(local);
        }
        event!(info, "listening on {local:?}");
        let tasks = Tasks::new();
        if let Some(extension) = extension::installed(&self.shared.providers) {
            tasks.spawn(extension.background_task(self.shared.providers.clone()));
        }
        // The accept loop is polled only when its own waker fires: polled with every
        // connection's wake-up, async-io's `accept` would try `accept4` and re-register the
        // listener each time.
        let accepting = OwnWakeups::new(async {
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
        let main = async {
            accepting.await;
            let drained = async {
                loop {
                    let listener = self.shared.drained.listen();
                    if self.shared.stats.open.get() == 0 {
                        break;
                    }
                    listener.await;
                }
            };
            or(drained, async {
                Timer::after(self.shared.config.shutdown_timeout).await;
            })
            .await;
        };
        // The connections still open when `main` ends are dropped with `tasks`.
        or(main, tasks.run()).await;
        event!(info, "stopped");
        Ok(())
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
    /// use futures_lite::StreamExt;
    /// let mut signals = async_signal::Signals::new([async_signal::Signal::Int])?;
    /// nestforge_edge::block_on(async {
    ///     let server = NestForgeFactory::<AppModule>::create()?
    ///         .with_websocket_gateway(Echo)
    ///         .into_server()?;
    ///     let listener = std::net::TcpListener::bind("127.0.0.1:3002")?;
    ///     let ctrl_c = async move {
    ///         signals.next().await;
    ///     };
    ///     server.serve_with_graceful_shutdown(listener, ctrl_c).await
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

    async fn serve_io(&self, mut io: Box<dyn Io>, peer: Option<SocketAddr>) {
        let shared = &*self.shared;
        let open = shared.stats.open.add(1) + 1;
        Stats::add(&shared.stats.total, 1);
        let _open = OpenGuard(shared);
        if open > shared.config.max_connections as u64 || shared.signal.is_set() {
            event!(warn, "refusing {peer:?}: {open} connections open");
            shared
                .reject(&mut io, Rejection::new(503, "server busy"))
                .await;
            return;
        }
        let deadline = shared.config.handshake_timeout;
        let timeout = async {
            Timer::after(deadline).await;
            Err(Some(Rejection::new(408, "handshake timeout")))
        };
        // Boxed, like the closing below: a connection's future then holds only what a live
        // connection needs (see "Memory per connection" in BENCHMARKS.md).
        let accepted = or(Box::pin(shared.handshake(&mut io, peer)), Box::pin(timeout)).await;
        let (mount, ctx, read_ahead) = match accepted {
            Ok(accepted) => accepted,
            Err(Some(rejection)) => return shared.reject(&mut io, rejection).await,
            Err(None) => return, // answered (health) or the peer went away
        };
        self.run(mount, ctx, io, read_ahead, peer).await;
    }

    async fn run(
        &self,
        mount: &Mount,
        ctx: WebSocketContext,
        io: Box<dyn Io>,
        read_ahead: Vec<u8>,
        peer: Option<SocketAddr>,
    ) {
        let shared = &*self.shared;
        let outbox = Arc::new(Outbox::new(
            mount.config.outbound_queue,
            mount.config.overflow,
        ));
        let conn = Conn::new(
            io,
            read_ahead,
            Arc::clone(&mount.config),
            Arc::clone(&shared.stats),
            Arc::clone(&shared.signal),
        )
        .attach(ctx.connection_id(), Arc::clone(&outbox));
        let connections = shared.providers.get::<Connections>();
        if let Some(connections) = connections {
            connections.register(ctx.connection_id(), outbox);
        }
        let home: Home = Arc::new(Mutex::new(None));
        let mut guard = Disconnect {
            mount,
            ctx: ctx.clone(),
            home: Arc::clone(&home),
            connections,
            conn: None,
            done: false,
        };
        event!(info, "conn={} connected from {peer:?}", ctx.connection_id());
        let socket = WebSocket::new(Box::new(conn), Arc::clone(&home));
        let future = mount.gateway.on_connect(ctx.clone(), socket);
        let panicked = AssertUnwindSafe(future).catch_unwind().await.is_err();
        // The connection stays in the guard while it closes, so that a shutdown deadline
        // that drops this task still reports how it ended.
        guard.conn = lock(&home).take();
        let code = if panicked {
            CloseCode::Error
        } else {
            CloseCode::Normal
        };
        let info = match guard.conn.as_mut() {
            Some(conn) => Box::pin(conn.finish(code)).await,
            // The gateway kept the socket past its future; it is closed when dropped.
            None => CloseInfo::vanished(),
        };
        guard.done = true;
        event!(
            info,
            "conn={} disconnected code={} by_peer={} after {:?}",
            ctx.connection_id(),
            info.code,
            info.by_peer,
            info.duration
        );
        mount.gateway.on_disconnect(&ctx, &info);
    }
}

/// Keeps `open` exact however the connection task ends.
struct OpenGuard<'a>(&'a Shared);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if self.0.stats.open.sub(1) == 1 {
            self.0.drained.notify(usize::MAX);
        }
    }
}

/// Calls `on_disconnect` exactly once, also when the connection task is dropped
/// (shutdown deadline), and removes the connection from the push registry.
struct Disconnect<'a> {
    mount: &'a Mount,
    ctx: WebSocketContext,
    home: Home,
    connections: Option<&'a Connections>,
    conn: Option<Box<Conn>>,
    done: bool,
}

impl Drop for Disconnect<'_> {
    fn drop(&mut self) {
        if let Some(connections) = self.connections {
            connections.unregister(self.ctx.connection_id());
        }
        if !self.done {
            let conn = self.conn.take().or_else(|| lock(&self.home).take());
            let info = conn.map_or_else(CloseInfo::vanished, |mut c| c.ended());
            self.mount.gateway.on_disconnect(&self.ctx, &info);
        }
    }
}

type Accepted<'a> = (&'a Mount, WebSocketContext, Vec<u8>);

impl Shared {
    /// Reads and answers the upgrade. `Err(None)`: nothing more to do.
    async fn handshake(
        &self,
        io: &mut Box<dyn Io>,
        peer_addr: Option<SocketAddr>,
    ) -> Result<Accepted<'_>, Option<Rejection>> {
        let max = self.config.max_head_size.max(64);
        let mut buf = Vec::with_capacity(max.min(1024));
        let request = loop {
            let filled = buf.len();
            if filled == max {
                return Err(Some(Rejection::new(431, "request head too large")));
            }
            buf.resize(max.min(filled.max(512) * 2), 0);
            let n = io.read(&mut buf[filled..]).await.map_err(|_| None)?;
            buf.truncate(filled + n);
            if n == 0 {
                return Err(None);
            }
            match upgrade::parse(&buf, self.config.max_headers)? {
                Status::Complete(request) => break request,
                Status::Partial => continue,
            }
        };
        if self.config.health_endpoint.as_deref() == Some(request.path())
            && request.method() == "GET"
        {
            let mut out = Vec::new();
            upgrade::write_response(
                &mut out,
                200,
                "application/json",
                self.stats.snapshot().to_json().as_bytes(),
            );
            let _ = io.write_all(&out).await;
            let _ = linger_close(io).await;
            return Err(None);
        }
        let mount = self
            .mounts
            .iter()
            .find(|m| m.config.endpoint == request.path())
            .ok_or(Rejection::new(404, "no gateway on this path"))?;
        let key = upgrade::check(&request)?.to_owned();
        if let Some(origins) = &mount.config.allowed_origins {
            let origin = request.headers().get("origin");
            if !origin.is_some_and(|o| origins.iter().any(|a| a == o)) {
                return Err(Some(Rejection::new(403, "origin not allowed")));
            }
        }
        let identity = match &mount.config.guard {
            Some(guard) => guard.check(&request).await?,
            None => None,
        };
        let protocol = select_protocol(&mount.config, &request);
        let id = self.next_id.add(1);
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            // As u64 (enough for 500 million years): no u128 formatting code in the binary.
            .map_or(0, |d| d.as_millis() as u64);
        let request_id = RequestId::new(format!("req-{millis}-{id}"));
        let mut out = Vec::with_capacity(256);
        upgrade::write_switching_protocols(&mut out, &key, protocol.as_deref(), &request_id);
        io.write_all(&out).await.map_err(|_| None)?;
        io.flush().await.map_err(|_| None)?;
        let head_len = request.head_len();
        let (path, query, headers) = request.into_parts();
        buf.drain(..head_len);
        let handshake = Handshake {
            path,
            query,
            headers,
            peer_addr,
            identity,
            protocol,
        };
        let ctx = WebSocketContext::new(self.providers.clone(), id, request_id, handshake);
        Ok((mount, ctx, buf))
    }

    /// Answers with `rejection`, then closes.
    async fn reject(&self, io: &mut Box<dyn Io>, rejection: Rejection) {
        Stats::add(&self.stats.rejected, 1);
        event!(info, "upgrade rejected: {rejection}");
        let mut out = Vec::with_capacity(192);
        upgrade::write_rejection(&mut out, rejection);
        let write = async {
            let _ = io.write_all(&out).await;
            let _ = linger_close(io).await;
        };
        or(write, async {
            Timer::after(Duration::from_secs(1)).await;
        })
        .await;
    }
}

/// Half-closes, then drains what the peer still sends (bounded) so that unread input does
/// not turn the close into a reset that could destroy the response.
async fn linger_close(io: &mut Box<dyn Io>) -> std::io::Result<()> {
    io.flush().await?;
    poll_fn(|cx| Pin::new(&mut **io).poll_close(cx)).await?;
    let mut sink = [0u8; 256];
    let mut budget = 64 * 1024;
    while budget > 0 {
        match io.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => budget -= n.min(budget),
        }
    }
    Ok(())
}

/// The first of the gateway's subprotocols that the client offered.
fn select_protocol(config: &WebSocketConfig, request: &UpgradeRequest) -> Option<Box<str>> {
    config
        .protocols
        .iter()
        .find(|p| request.offered_protocols().any(|o| o == p.as_str()))
        .map(|p| p.as_str().into())
}

impl CloseInfo {
    fn vanished() -> Self {
        CloseInfo {
            code: 1006,
            reason: String::new(),
            by_peer: false,
            duration: Duration::ZERO,
        }
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
