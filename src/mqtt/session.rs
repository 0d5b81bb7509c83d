//! The broker session: one task on the server's thread that connects, subscribes, reads
//! and writes packets, keeps the link alive, serves broker requests with the local
//! registry, and reconnects with exponential backoff and jitter.

use std::future::Future;
use std::net::ToSocketAddrs;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::future::{or, poll_fn};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::codec::{self, Filter, Packet};
use super::inbound;
use super::{bump, lock, publishable, random, reply_filter, Handler, Inner, Outcome, Qos, Sub};
use crate::context::{Handshake, RequestId, WebSocketContext};
use crate::log::event;
use crate::providers::Providers;
use crate::push::Connections;
use crate::rt::{self, Timer};

/// Filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 16;

pub(super) async fn run(inner: Arc<Inner>, providers: Providers) {
    if let Ok(connections) = providers.resolve::<Connections>() {
        let _ = inner.connections.set(connections);
    }
    let request_id = RequestId::new(format!("mqtt-{}", inner.client_id));
    let ctx = WebSocketContext::new(providers, 0, request_id, Handshake::internal("mqtt"));
    let _stop = Stopped(&inner);
    let min = inner.config.reconnect_min.max(Duration::from_millis(1));
    let max = inner.config.reconnect_max.max(min);
    let mut backoff = min;
    loop {
        let why = match session(&inner, &ctx, &mut backoff, min).await {
            Ok(never) => match never {},
            Err(why) => why,
        };
        link_down(&inner);
        event!(
            warn,
            "mqtt: link to {} down ({why}), retrying",
            inner.address
        );
        // ±20 % jitter so that instances restarted together do not reconnect together.
        let spread = (random() % 401) as f64 / 1000.0 + 0.8;
        Timer::after(backoff.mul_f64(spread)).await;
        backoff = (backoff * 2).min(max);
    }
}

/// Clears the session's state when the task ends (server stopped).
struct Stopped<'a>(&'a Inner);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        link_down(self.0);
    }
}

/// The link is down: fail what waits on it, keep the reply patterns for resubscription.
fn link_down(inner: &Inner) {
    let mut state = lock(&inner.state);
    state.connected = false;
    state.outbound.clear();
    state.subacks.clear();
    state.unacked.clear();
    for sub in state.replies.values_mut() {
        *sub = Sub::Pending;
    }
    for (_, slot) in state.pending.drain() {
        *lock(&slot.outcome) = Some(Outcome::Disconnected);
        slot.ready.notify(usize::MAX);
    }
    drop(state);
    inner.changed.notify(usize::MAX);
}

enum Wake {
    Read(std::io::Result<usize>),
    Handler(Option<Vec<u8>>),
    Outbound,
    Tick,
}

async fn deadline<T>(
    at: Instant,
    why: &'static str,
    f: impl Future<Output = Result<T, &'static str>>,
) -> Result<T, &'static str> {
    or(f, async {
        Timer::at(at).await;
        Err(why)
    })
    .await
}

/// One connection, until it fails.
async fn session(
    inner: &Arc<Inner>,
    ctx: &WebSocketContext,
    backoff: &mut Duration,
    min: Duration,
) -> Result<std::convert::Infallible, &'static str> {
    let config = &inner.config;
    let cap = config.max_packet_size.max(128);
    let level = inner.level;
    let connect_by = Instant::now() + config.connect_timeout;
    let addr = inner
        .address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or("cannot resolve the broker address")?;
    let mut stream = deadline(connect_by, "connect timed out", async {
        rt::connect(addr).await.map_err(|_| "connect failed")
    })
    .await?;
    let keep_alive = config
        .keep_alive
        .max(Duration::from_secs(1))
        .min(Duration::from_secs(u16::MAX.into()));
    let mut wbuf = Vec::with_capacity(256);
    codec::connect(
        &mut wbuf,
        level,
        &inner.client_id,
        keep_alive.as_secs() as u16,
        cap.min(u32::MAX as usize) as u32,
    );
    deadline(connect_by, "CONNECT timed out", async {
        stream.write_all(&wbuf).await.map_err(|_| "write failed")
    })
    .await?;
    wbuf.clear();
    let mut rbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    let code = deadline(connect_by, "no CONNACK", async {
        loop {
            if let Some((h, total)) = codec::frame_len(&rbuf, cap).map_err(|_| "bad CONNACK")? {
                if rbuf.len() >= total {
                    let packet =
                        codec::decode(level, &rbuf[..total], h).map_err(|_| "bad CONNACK")?;
                    let Packet::ConnAck { code } = packet else {
                        return Err("expected CONNACK");
                    };
                    rbuf.drain(..total);
                    return Ok(code);
                }
            }
            let n = stream.read(&mut chunk).await.map_err(|_| "read failed")?;
            if n == 0 {
                return Err("closed before CONNACK");
            }
            rbuf.extend_from_slice(&chunk[..n]);
        }
    })
    .await?;
    if code != 0 {
        return Err("connection refused by the broker");
    }
    *backoff = min;
    bump(&inner.counters.connects);
    subscribe_all(inner);
    event!(
        info,
        "mqtt: connected to {} as {}",
        inner.address,
        inner.client_id
    );
    inner.changed.notify(usize::MAX);

    let max_in_flight = config.max_in_flight.max(1);
    let half = keep_alive / 2;
    let dead = keep_alive + keep_alive / 2;
    let mut handlers: Vec<Handler> = Vec::new();
    let mut last_in = Instant::now();
    let mut last_out = Instant::now();
    loop {
        // Packets already buffered, while there is room for their handlers.
        while handlers.len() < max_in_flight {
            let Some((h, total)) = codec::frame_len(&rbuf, cap).map_err(|e| {
                bump(&inner.counters.malformed);
                match e {
                    codec::Malformed::TooLarge => "packet over the size cap",
                    codec::Malformed::Invalid => "malformed packet",
                }
            })?
            else {
                break;
            };
            if rbuf.len() < total {
                break;
            }
            let packet = match codec::decode(level, &rbuf[..total], h) {
                Ok(packet) => packet,
                Err(_) => {
                    bump(&inner.counters.malformed);
                    return Err("malformed packet");
                }
            };
            if let Some(handler) = inbound::handle(inner, ctx, packet, &mut wbuf)? {
                handlers.push(handler);
            }
            rbuf.drain(..total);
        }
        {
            let mut state = lock(&inner.state);
            for packet in state.outbound.drain(..) {
                wbuf.extend_from_slice(&packet);
            }
        }
        let now = Instant::now();
        if now >= last_in + dead {
            return Err("keep-alive expired");
        }
        if wbuf.is_empty() && now >= last_out + half {
            codec::pingreq(&mut wbuf);
        }
        if !wbuf.is_empty() {
            deadline(now + keep_alive, "write timed out", async {
                stream.write_all(&wbuf).await.map_err(|_| "write failed")
            })
            .await?;
            if wbuf.capacity() > 64 * 1024 {
                wbuf = Vec::with_capacity(256);
            } else {
                wbuf.clear();
            }
            last_out = Instant::now();
        }
        let mut listener = inner.wake.listen();
        if !lock(&inner.state).outbound.is_empty() {
            continue;
        }
        let mut timer = Timer::at((last_out + half).min(last_in + dead));
        let wake = poll_fn(|cx| {
            for i in 0..handlers.len() {
                if let Poll::Ready(out) = handlers[i].as_mut().poll(cx) {
                    drop(handlers.swap_remove(i));
                    return Poll::Ready(Wake::Handler(out));
                }
            }
            if handlers.len() < max_in_flight {
                if let Poll::Ready(r) = Pin::new(&mut stream).poll_read(cx, &mut chunk) {
                    return Poll::Ready(Wake::Read(r));
                }
            }
            if Pin::new(&mut listener).poll(cx).is_ready() {
                return Poll::Ready(Wake::Outbound);
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Wake::Tick);
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Read(Ok(0)) => return Err("closed by the broker"),
            Wake::Read(Err(_)) => return Err("read failed"),
            Wake::Read(Ok(n)) => {
                rbuf.extend_from_slice(&chunk[..n]);
                last_in = Instant::now();
            }
            Wake::Handler(Some(packet)) => wbuf.extend_from_slice(&packet),
            Wake::Handler(None) | Wake::Outbound | Wake::Tick => {}
        }
    }
}

/// Queues the subscriptions of a fresh session: served patterns, events, broadcast, push,
/// and the reply topics of remote patterns already in use.
fn subscribe_all(inner: &Inner) {
    let config = &inner.config;
    let mut filters = Vec::new();
    if config.serve {
        for pattern in inner.registry.message_patterns().filter(|p| publishable(p)) {
            filters.push((
                Filter {
                    topic: format!("$share/{}/{pattern}", config.group),
                    qos: 1,
                    no_local: false,
                },
                None,
            ));
        }
        for pattern in inner.registry.event_patterns().filter(|p| publishable(p)) {
            filters.push((
                Filter {
                    topic: pattern.to_owned(),
                    qos: u8::from(config.event_qos == Qos::AtLeastOnce),
                    no_local: true,
                },
                None,
            ));
        }
    }
    for topic in [
        inner.broadcast_topic.clone(),
        format!("{}{}", inner.push_prefix, inner.client_id),
    ] {
        filters.push((
            Filter {
                topic,
                qos: 0,
                no_local: true,
            },
            None,
        ));
    }
    let mut state = lock(&inner.state);
    let replies: Vec<Box<str>> = state.replies.keys().cloned().collect();
    for pattern in replies {
        filters.push((reply_filter(&pattern), Some(pattern)));
    }
    state.connected = true;
    for batch in filters.chunks(FILTERS_PER_SUBSCRIBE) {
        let pid = state.pid();
        let list: Vec<Filter> = batch.iter().map(|(f, _)| f.clone()).collect();
        let patterns = batch
            .iter()
            .enumerate()
            .filter_map(|(i, (_, p))| p.clone().map(|p| (i, p)))
            .collect();
        state.subacks.insert(pid, patterns);
        let mut packet = Vec::new();
        codec::subscribe(&mut packet, inner.level, pid, &list);
        state.outbound.push_back(packet);
    }
}
