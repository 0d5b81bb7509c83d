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
    pub(super) async fn serve_io(&self, mut io: Stream, peer: Option<SocketAddr>) {
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
        // connection needs (BENCHMARKS.md#memory-per-connection).
        let handshake: Once<'_, _> = Box::pin(shared.handshake(&mut io, peer));
        let accepted = or(handshake, Box::pin(timeout)).await;
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
        io: Stream,
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
