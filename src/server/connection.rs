//! One connection's life: counted against the limit, upgraded, handed to its gateway,
//! closed, reported to `on_disconnect` exactly once.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::future::or;
use futures_lite::FutureExt;
use tungstenite::protocol::frame::coding::CloseCode;

use super::{Mount, Server, Shared};
use crate::context::WebSocketContext;
use crate::log::event;
use crate::push::Connections;
use crate::rt::sync::lock;
use crate::rt::{Stream, Timer};
use crate::ws::{CloseInfo, Conn, Home, Outbox, Rejection, Stats, WebSocket};

/// A step that runs once per connection (the upgrade, the close), boxed and polled through
/// its vtable: its code stays out of the connection's own poll function (0.25 KB less in
/// the tiny build), at one indirect call per poll of a step that polls a few times.
type Once<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Server {
    /// Serves one accepted stream. The upgrade runs in a boxed future of its own, freed once
    /// it is answered: a live connection's task holds only what the live connection needs
    /// (BENCHMARKS.md#memory-per-connection).
    pub(super) fn serve_io(
        &self,
        io: Stream,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = ()> + '_ {
        let accept: Once<'_, _> = Box::pin(self.accept(io, peer));
        async move {
            if let Some((open, mount, ctx, conn)) = accept.await {
                self.run(open, mount, ctx, conn).await;
            }
        }
    }

    /// Counts the connection against the limit and upgrades it: the live connection, or
    /// `None` once the rejection (or health answer) is written.
    async fn accept(
        &self,
        mut io: Stream,
        peer: Option<SocketAddr>,
    ) -> Option<(OpenGuard<'_>, &Mount, WebSocketContext, Box<Conn>)> {
        let shared = &*self.shared;
        let open = shared.stats.open.add(1) + 1;
        Stats::add(&shared.stats.total, 1);
        let guard = OpenGuard(shared);
        if open > shared.config.max_connections as u64 || shared.signal.is_set() {
            event!(warn, "refusing {peer:?}: {open} connections open");
            // Boxed, as below: a rejection's buffers are not carried by every upgrade.
            Box::pin(shared.reject(&mut io, Rejection::new(503, "server busy"))).await;
            return None;
        }
        let deadline = shared.config.handshake_timeout;
        let timeout = async {
            Timer::after(deadline).await;
            Err(Some(Rejection::new(408, "handshake timeout")))
        };
        let accepted = or(shared.handshake(&mut io, peer), timeout).await;
        let (mount, ctx, read_ahead, extensions) = match accepted {
            Ok(accepted) => accepted,
            Err(Some(rejection)) => {
                Box::pin(shared.reject(&mut io, rejection)).await;
                return None;
            }
            Err(None) => return None, // answered (health) or the peer went away
        };
        event!(info, "conn={} connected from {peer:?}", ctx.connection_id());
        let conn = Conn::new(
            io,
            read_ahead,
            extensions,
            Arc::clone(&mount.config),
            Arc::clone(&shared.stats),
            Arc::clone(&shared.signal),
            Arc::clone(&shared.deadlines),
        );
        Some((guard, mount, ctx, Box::new(conn)))
    }

    /// Runs the gateway on the upgraded connection, then closes it.
    async fn run(
        &self,
        _open: OpenGuard<'_>,
        mount: &Mount,
        ctx: WebSocketContext,
        mut conn: Box<Conn>,
    ) {
        let shared = &*self.shared;
        let outbox = Arc::new(Outbox::new(
            mount.config.outbound_queue,
            mount.config.overflow,
        ));
        conn.attach(ctx.connection_id(), Arc::clone(&outbox));
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
        let socket = WebSocket::new(conn, home);
        let future = mount.gateway.on_connect(ctx, socket);
        let panicked = AssertUnwindSafe(future).catch_unwind().await.is_err();
        // The connection stays in the guard while it closes, so that a shutdown deadline
        // that drops this task still reports how it ended.
        guard.conn = lock(&guard.home).take();
        let code = if panicked {
            CloseCode::Error
        } else {
            CloseCode::Normal
        };
        let info = match guard.conn.as_mut() {
            // Boxed: the close's future is carried only while closing.
            Some(conn) => {
                let finish: Once<'_, _> = Box::pin(conn.finish(code));
                finish.await
            }
            // The gateway kept the socket past its future; it is closed when dropped.
            None => CloseInfo::vanished(),
        };
        guard.done = true;
        event!(
            info,
            "conn={} disconnected code={} by_peer={} after {:?}",
            guard.ctx.connection_id(),
            info.code,
            info.by_peer,
            info.duration
        );
        mount.gateway.on_disconnect(&guard.ctx, &info);
    }
}

/// Keeps `open` exact however the connection task ends.
pub(super) struct OpenGuard<'a>(&'a Shared);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if self.0.stats.open.sub(1) == 1 {
            self.0.all_closed.notify(usize::MAX);
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

/// The sizes of what a connection costs: each layer's structures and the connection's
/// future (see `crate::__private::connection_parts`).
pub(crate) fn parts() -> Vec<(&'static str, usize)> {
    let server = Server::new(
        crate::providers::Providers::default(),
        Default::default(),
        Vec::new(),
        super::ServerConfig::default(),
        Vec::new(),
    );
    let stream: Stream = Box::new(crate::rt::AnyStream(futures_lite::io::Cursor::new(
        Vec::new(),
    )));
    let stream2: Stream = Box::new(crate::rt::AnyStream(futures_lite::io::Cursor::new(
        Vec::new(),
    )));
    let upgrade = std::mem::size_of_val(&server.accept(stream2, None));
    let future = server.serve_io(stream, None);
    let mut parts = crate::rt::parts();
    parts.extend(crate::ws::parts());
    parts.extend(crate::context::parts());
    parts.push((
        "api: connection future (boxed task)",
        std::mem::size_of_val(&future),
    ));
    parts.push(("api: upgrade future (boxed while upgrading)", upgrade));
    parts
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
