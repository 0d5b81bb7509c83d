//! The upgrade of an accepted connection: the request head read within its limits, the
//! health endpoint, the mount, origin and guard checks, the `101` or the rejection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::future::{or, poll_fn};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::{Mount, Shared};
use crate::context::{Handshake, RequestId, WebSocketContext};
use crate::log::event;
use crate::rt::{Stream, Timer};
use crate::ws::upgrade::{self, Rejection, Status, UpgradeRequest};
use crate::ws::{Extensions, Stats, WebSocketConfig};

/// The upgraded connection's gateway, context, first bytes (read with the request) and
/// agreed extensions.
pub(super) type Accepted<'a> = (&'a Mount, WebSocketContext, Vec<u8>, Extensions);

impl Shared {
    /// Reads and answers the upgrade. `Err(None)`: nothing more to do.
    pub(super) async fn handshake(
        &self,
        io: &mut Stream,
        peer_addr: Option<SocketAddr>,
    ) -> Result<Accepted<'_>, Option<Rejection>> {
        let max = self.config.max_head_size.max(64);
        let mut buf = Vec::new();
        let request = loop {
            if buf.len() == max {
                return Err(Some(Rejection::new(431, "request head too large")));
            }
            let n = read_arrived(io, &mut buf, max).await.map_err(|_| None)?;
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
            // Counted as a connection accepted, not as one open: it is no WebSocket.
            let mut stats = self.stats.snapshot();
            stats.open_connections = stats.open_connections.saturating_sub(1);
            let mut out = Vec::new();
            upgrade::write_response(
                &mut out,
                200,
                "application/json",
                stats.to_json().as_bytes(),
            );
            let _ = io.write_all(&out).await;
            let _ = Box::pin(linger_close(io)).await;
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
        let extensions = Extensions::negotiate(&mount.config, request.headers());
        let id = self.next_id.add(1);
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            // As u64 (enough for 500 million years): no u128 formatting code in the binary.
            .map_or(0, |d| d.as_millis() as u64);
        let request_id = RequestId::text(millis, id);
        let mut out = Vec::with_capacity(256);
        upgrade::write_switching_protocols(
            &mut out,
            &key,
            protocol.as_deref(),
            extensions.response(),
            &request_id,
        );
        drop(request_id);
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
            identity: identity.map(Arc::new),
            protocol,
        };
        let ctx = WebSocketContext::upgraded(self.providers.clone(), id, millis, handshake);
        Ok((mount, ctx, buf, extensions))
    }

    /// Answers with `rejection`, then closes.
    pub(super) async fn reject(&self, io: &mut Stream, rejection: Rejection) {
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

thread_local! {
    /// The buffer upgrade requests are read into before they are copied out.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads what has arrived (up to `max` bytes in `buf` in all) and appends it to `buf`,
/// through a per-thread buffer: a connection waiting for its request holds none of its own,
/// and one that got it holds its size, not a buffer's (a storm of connections opened before
/// their requests are sent costs no buffers: BENCHMARKS.md#memory-per-connection).
async fn read_arrived(io: &mut Stream, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
    poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.resize(max - buf.len(), 0);
            let read = Pin::new(&mut **io).poll_read(cx, scratch);
            if let Poll::Ready(Ok(n)) = read {
                buf.extend_from_slice(&scratch[..n]);
            }
            read
        })
    })
    .await
}

/// Half-closes, then drains what the peer still sends (bounded) so that unread input does
/// not turn the close into a reset that could destroy the response.
async fn linger_close(io: &mut Stream) -> std::io::Result<()> {
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
