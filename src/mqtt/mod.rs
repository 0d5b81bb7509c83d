//! Scale-out over an MQTT broker (feature `mqtt`): message patterns served and called across
//! gateway instances and NestJS services with NestJS's MQTT transport convention, events
//! fanned out, broadcasts and pushes that reach every instance.
//!
//! | role | topic | payload |
//! |---|---|---|
//! | request | `P` | `{"pattern":P,"data":..,"id":"<string>"}` |
//! | reply | `P/reply` | `{"id":..,"response":..,"isDisposed":true}` or `{"id":..,"err":..,"isDisposed":true}` |
//! | event | `E` | `{"pattern":E,"data":..}` |
//! | served pattern | subscribed as `$share/<group>/P` | |
//! | broadcast | `<prefix>/broadcast` | `{"origin":<instance>,"data":<text>}` |
//! | push | `<prefix>/push/<instance>` | `{"conn":<id>,"data":<text>}` |
//!
//! **Routing.**
//! - A **local handler always wins**: no broker hop, no broker dependency.
//! - A message pattern without a local handler is **forwarded** (all unknown ones by default,
//!   or a list: `MqttConfig::forward`). The reply goes back to the WebSocket client with the
//!   client's own `id`; the broker id is the instance's client id plus a counter, because WS ids
//!   collide across connections. Error codes: `timeout` (no reply within
//!   `request_timeout`, default 5 s: MQTT has no "no responders" signal, so an unserved
//!   pattern always costs the timeout), `unavailable` (at once while the link is down, or when a
//!   bound is reached), `remote_error` (the remote handler failed; its text goes in `detail`
//!   only with `expose_remote_errors`).
//! - **Events** from WebSocket clients are handled locally *and* published; every instance with
//!   a handler receives them once (MQTT 5 No Local keeps our own copy from coming back; under
//!   3.1.1 the echo is recognised and dropped).
//! - **Broadcast** to every client of every instance: `ctx.resolve::<MqttBridge>()?.broadcast(msg)`
//!   delivers locally at once and publishes with the origin instance; the others deliver it,
//!   the origin drops its echo, so each client receives it exactly once. **Push** to a
//!   connection on another instance: `bridge.send(instance, connection_id, msg)` (text frames;
//!   `bridge.instance_id()` names an instance).
//! - Requests from the broker run the local registry (up to `max_in_flight` at once; then
//!   reading pauses) and are answered on `P/reply`.
//!
//! **Guarantees.**
//!
//! | traffic | semantics |
//! |---|---|
//! | requests and replies | **at most once** (QoS 0, as NestJS): never retried by the gateway; the client gets `timeout` or `unavailable` and decides |
//! | events | at most once (QoS 0) by default; `event_qos(Qos::AtLeastOnce)`: QoS 1 publish and subscription, at least once while connected (duplicates possible) |
//! | broadcasts, pushes | at most once, unconfirmed |
//! | exactly once | not offered (no QoS 2) |
//!
//! **Outages.** Local patterns, local events and local broadcasts keep working while the
//! broker is down. Forwarded requests get `unavailable` immediately, requests in flight when
//! the link drops get `unavailable`, events and cross-instance broadcasts are dropped (counted
//! in `MqttBridge::stats()`). The session reconnects by itself with exponential backoff from
//! 100 ms to 10 s (±20 % jitter, reset after every CONNACK), with a clean session, and
//! resubscribes everything (served patterns, events, broadcast, push, reply topics). A link
//! silent for 1.5 × `keep_alive` (30 s) is declared dead.
//!
//! **Bounds.** Packets from the broker are capped at `max_packet_size` (64 KiB) on their
//! header, before they are buffered (MQTT 5 also announces the cap to the broker); pending
//! forwarded requests at `max_pending` (1024); subscribed remote patterns at
//! `max_remote_patterns` (256); packets queued for the broker at `outbound_queue` (256);
//! concurrent broker requests at `max_in_flight` (32). Malformed broker input is dropped and
//! counted, never a panic. Client ids must be unique per instance (the default is random per
//! process): a duplicate makes the broker drop the other session.
//!
//! **Limitations.** Request `metadata` does not cross the broker (NestJS's packet has no place
//! for it); a streaming remote handler is cut to its first value; a pattern name used both as a
//! message and as an event pattern is received twice (the `$share` and the plain
//! subscription); reply topics stay subscribed once used, so with `Forward::Unknown` a client
//! sending many invented patterns fills `max_remote_patterns` (then `unavailable`): list the
//! remote patterns (`Forward::Patterns`) where clients are not trusted. Handlers serving broker
//! requests see `transport() == "websocket"` and connection id 0.

mod codec;
mod config;
mod forward;
mod inbound;
mod session;
mod stats;

use config::config_error;
pub use config::{Forward, MqttConfig, Protocol, Qos};
use forward::reply_filter;
pub use stats::MqttStats;
use stats::{bump, Counters};

use crate::rt::sync::lock;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use event_listener::Event;
use serde::Deserialize;
use serde_json::value::RawValue;
use tungstenite::Message;

use crate::error::{Error, Request, Result};
use crate::extension::{Extension, ExtensionFuture};
use crate::providers::Providers;
use crate::push::{Broadcast, Connections};
use crate::registry::MicroserviceRegistry;
use crate::ws::PushError;

use codec::Level;

/// A handler run for a broker request or event: its reply packet, if any.
type Handler = Pin<Box<dyn Future<Output = Option<Vec<u8>>>>>;

/// Whether `topic` can be published to: not empty, no wildcard, no NUL, not `$`-prefixed,
/// shorter than 64 KiB.
pub(crate) fn publishable(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() < 65_000
        && !topic.starts_with('$')
        && !topic.contains(['+', '#', '\0'])
}

/// The bridge between this gateway and an MQTT broker. Cheap to clone.
///
/// Mounted with [`NestForgeFactory::with_mqtt`](crate::NestForgeFactory::with_mqtt), which
/// also registers it as a provider: handlers resolve it (`ctx.resolve::<MqttBridge>()`) to
/// broadcast to every instance or push to a connection on another one. [`Server::serve`]
/// runs its session on the server's thread.
///
/// Message patterns not served locally are forwarded by the registry's dispatch
/// ([`Forward`]); WebSocket events are published as well as handled locally.
///
/// [`Server::serve`]: crate::Server::serve
#[derive(Clone)]
pub struct MqttBridge {
    inner: Arc<Inner>,
}

struct Inner {
    config: MqttConfig,
    client_id: String,
    address: String,
    level: Level,
    registry: MicroserviceRegistry,
    broadcast_topic: String,
    push_prefix: String,
    state: Mutex<State>,
    /// Wakes the session task: outbound packets queued.
    wake: Event,
    /// Link or subscription state changed (waiters of forwarded requests).
    changed: Event,
    connections: OnceLock<Arc<Connections>>,
    counters: Counters,
}

#[derive(Default)]
struct State {
    connected: bool,
    outbound: VecDeque<Vec<u8>>,
    next_id: u64,
    next_pid: u16,
    pending: HashMap<Box<str>, Arc<PendingReply>>,
    /// Remote patterns whose `P/reply` is subscribed (or being subscribed).
    replies: HashMap<Box<str>, Sub>,
    /// SUBSCRIBE packet ids awaiting SUBACK, with the remote patterns they carry.
    subacks: HashMap<u16, Vec<(usize, Box<str>)>>,
    /// QoS 1 publishes awaiting PUBACK.
    unacked: HashSet<u16>,
    /// 3.1.1: fingerprints of our own recent events, to drop their echo.
    echoes: VecDeque<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Pending,
    Active,
    Refused,
}

/// A forwarded request's outcome.
#[derive(Default)]
struct PendingReply {
    outcome: Mutex<Option<Outcome>>,
    ready: Event,
}

enum Outcome {
    Response(Box<RawValue>),
    Failed(Option<String>),
    Disconnected,
}

const ECHO_MEMORY: usize = 256;
/// QoS 1 publishes awaiting PUBACK, at most (packet ids are 16-bit).
const MAX_UNACKED: usize = 1024;

impl MqttBridge {
    /// A bridge that serves `registry`'s patterns to the broker in `config`. Fails with
    /// [`Error::MqttConfig`] on an unusable URL, client id, group or prefix.
    pub fn new(config: MqttConfig, registry: MicroserviceRegistry) -> Result<Self> {
        let address = config.address()?;
        let client_id = match &config.client_id {
            Some(id) => id.clone(),
            None => format!("nestforge-{:016x}", random()),
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if client_id.is_empty() || client_id.len() > 128 || !client_id.chars().all(allowed) {
            return Err(config_error(
                "the client id must be 1-128 ASCII letters, digits, `-`, `_`, `.` or `:`",
            ));
        }
        for (what, value) in [("group", &config.group), ("prefix", &config.prefix)] {
            let ok = publishable(value) && (what != "group" || !value.contains('/'));
            if !ok {
                return Err(Error::MqttConfig {
                    reason: format!("invalid {what} `{value}`").into(),
                });
            }
        }
        let level = match config.protocol {
            Protocol::V311 => Level::V311,
            Protocol::V5 => Level::V5,
        };
        Ok(MqttBridge {
            inner: Arc::new(Inner {
                broadcast_topic: format!("{}/broadcast", config.prefix),
                push_prefix: format!("{}/push/", config.prefix),
                config,
                client_id,
                address,
                level,
                registry,
                state: Mutex::default(),
                wake: Event::new(),
                changed: Event::new(),
                connections: OnceLock::new(),
                counters: Counters::default(),
            }),
        })
    }

    /// This instance's name on the broker: the client id.
    pub fn instance_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The settings.
    pub fn config(&self) -> &MqttConfig {
        &self.inner.config
    }

    /// Whether the broker link is up.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.state).connected
    }

    /// The counters.
    pub fn stats(&self) -> MqttStats {
        let c = &self.inner.counters;
        MqttStats {
            connected: self.is_connected(),
            connects: c.connects.get(),
            forwarded: c.forwarded.get(),
            replied: c.replied.get(),
            timeouts: c.timeouts.get(),
            unavailable: c.unavailable.get(),
            served: c.served.get(),
            events_in: c.events_in.get(),
            events_out: c.events_out.get(),
            malformed: c.malformed.get(),
            dropped: c.dropped.get(),
        }
    }

    /// Queues a Text `message` for every WebSocket client of every instance: the local ones
    /// at once (also while the broker is down), the others through the broker (each
    /// instance drops its own echo, so every client receives it once). Binary messages
    /// reach the local clients only. The report counts the local connections.
    pub fn broadcast(&self, message: Message) -> Broadcast {
        let inner = &*self.inner;
        let report = inner
            .connections
            .get()
            .map(|c| c.broadcast(message.clone()))
            .unwrap_or_default();
        if let Message::Text(text) = &message {
            let payload = serde_json::json!({"origin": inner.client_id, "data": text.as_str()});
            if !inner.publish(&inner.broadcast_topic, payload.to_string().as_bytes(), 0) {
                bump(&inner.counters.dropped);
            }
        }
        report
    }

    /// Queues a Text `message` for connection `connection` of instance `instance`
    /// (an [`instance_id`](Self::instance_id)): directly when it is this one, through the
    /// broker otherwise. A remote push is at most once and unconfirmed; it fails with
    /// [`PushError::NotConnected`] while the broker link is down.
    pub fn send(&self, instance: &str, connection: u64, message: Message) -> Result<(), PushError> {
        let inner = &*self.inner;
        if instance == inner.client_id {
            return match inner.connections.get() {
                Some(c) => c.send(connection, message),
                None => Err(PushError::NotConnected),
            };
        }
        let Message::Text(text) = &message else {
            return Err(PushError::NotConnected);
        };
        let topic = format!("{}{instance}", inner.push_prefix);
        if !publishable(&topic) || instance.contains('/') {
            return Err(PushError::NotConnected);
        }
        let payload = serde_json::json!({"conn": connection, "data": text.as_str()});
        if inner.publish(&topic, payload.to_string().as_bytes(), 0) {
            Ok(())
        } else {
            bump(&inner.counters.dropped);
            Err(PushError::NotConnected)
        }
    }

    /// Runs the broker session until the future is dropped: connect, subscribe, serve,
    /// reconnect with backoff. [`Server::serve`](crate::Server::serve) runs it for its
    /// providers; call it yourself only when serving connections without `serve`.
    pub async fn run(&self, providers: Providers) {
        session::run(Arc::clone(&self.inner), providers).await
    }

    /// Publishes an event from a WebSocket client to the broker; `true` when the pattern is
    /// one the bridge carries (whether or not the link is up: events are at most once).
    /// Events from the broker are handled without coming back here.
    fn publish_event(&self, pattern: &str, data: &RawValue) -> bool {
        let inner = &*self.inner;
        if !inner.config.publish_events || !publishable(pattern) {
            return false;
        }
        let payload = format!(
            "{{\"pattern\":{},\"data\":{}}}",
            serde_json::Value::from(pattern),
            data.get()
        );
        let qos = u8::from(inner.config.event_qos == Qos::AtLeastOnce);
        if inner.level == Level::V311 && inner.config.serve && inner.registry.has_event(pattern) {
            let mut state = lock(&inner.state);
            if state.echoes.len() == ECHO_MEMORY {
                state.echoes.pop_front();
            }
            state
                .echoes
                .push_back(fingerprint(pattern, payload.as_bytes()));
        }
        if inner.publish(pattern, payload.as_bytes(), qos) {
            bump(&inner.counters.events_out);
        } else {
            bump(&inner.counters.dropped);
        }
        true
    }
}

impl Extension for MqttBridge {
    fn on_unknown_message(
        &self,
        request: &Request,
        payload: &RawValue,
    ) -> Option<ExtensionFuture<Result<Box<RawValue>>>> {
        if !self.forwards(&request.pattern) {
            return None;
        }
        let (bridge, request, data) = (self.clone(), request.clone(), payload.to_owned());
        Some(Box::pin(async move { bridge.forward(request, data).await }))
    }

    fn on_event(&self, pattern: &str, payload: &RawValue) -> bool {
        self.publish_event(pattern, payload)
    }

    fn background_task(&self, providers: Providers) -> Pin<Box<dyn Future<Output = ()>>> {
        let bridge = self.clone();
        Box::pin(async move { bridge.run(providers).await })
    }
}

impl State {
    /// The next free packet id (never 0, never one awaiting an ack).
    fn pid(&mut self) -> u16 {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1);
            let pid = self.next_pid;
            if pid != 0 && !self.unacked.contains(&pid) && !self.subacks.contains_key(&pid) {
                return pid;
            }
        }
    }
}

impl Inner {
    /// Queues a PUBLISH; `false` when the link is down or the queue is full.
    fn publish(&self, topic: &str, payload: &[u8], qos: u8) -> bool {
        let mut state = lock(&self.state);
        if !state.connected || state.outbound.len() >= self.config.outbound_queue {
            return false;
        }
        let pid = if qos > 0 {
            if state.unacked.len() >= MAX_UNACKED {
                return false;
            }
            let pid = state.pid();
            state.unacked.insert(pid);
            pid
        } else {
            0
        };
        let mut packet = Vec::with_capacity(payload.len() + topic.len() + 8);
        codec::publish(&mut packet, self.level, topic, payload, qos, pid);
        state.outbound.push_back(packet);
        drop(state);
        self.wake.notify(1);
        true
    }
}

/// 64 random bits from the standard library's hasher seeds, the time and the process id.
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish()
}

fn fingerprint(topic: &str, payload: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

/// A NestJS packet as received: request, event or reply.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pattern: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
    #[serde(borrow, default)]
    err: Option<&'a RawValue>,
    #[serde(default)]
    status: Option<&'a RawValue>,
    #[serde(default, rename = "isDisposed")]
    is_disposed: Option<&'a RawValue>,
}

impl fmt::Debug for MqttBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttBridge")
            .field("instance", &self.inner.client_id)
            .field("broker", &self.inner.address)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RequestFrame;

    #[test]
    fn urls() {
        let addr = |u: &str| MqttConfig::new(u).address();
        assert_eq!(addr("mqtt://127.0.0.1:1884").unwrap(), "127.0.0.1:1884");
        assert_eq!(addr("tcp://broker").unwrap(), "broker:1883");
        assert_eq!(addr("localhost:1").unwrap(), "localhost:1");
        assert_eq!(addr("mqtt://[::1]").unwrap(), "[::1]:1883");
        assert_eq!(addr("mqtt://[::1]:9").unwrap(), "[::1]:9");
        assert!(addr("mqtts://x").is_err());
        assert!(addr("mqtt://u@x").is_err());
        assert!(addr("").is_err());
    }

    #[test]
    fn topics_and_ids() {
        assert!(publishable("app.info"));
        assert!(publishable("{\"cmd\":\"sum\"}"));
        for bad in ["", "a/+", "#", "$SYS/x", "a\0b"] {
            assert!(!publishable(bad), "{bad:?}");
        }
        let registry = MicroserviceRegistry::default();
        let bridge = MqttBridge::new(MqttConfig::default(), registry.clone()).unwrap();
        let other = MqttBridge::new(MqttConfig::default(), registry.clone()).unwrap();
        assert_ne!(bridge.instance_id(), other.instance_id());
        assert!(MqttBridge::new(MqttConfig::default().client_id("a/b"), registry.clone()).is_err());
        assert!(MqttBridge::new(MqttConfig::default().group("a/b"), registry).is_err());
    }

    #[test]
    fn forwarding_while_down_is_unavailable_at_once() {
        let bridge =
            MqttBridge::new(MqttConfig::default(), MicroserviceRegistry::default()).unwrap();
        let frame =
            RequestFrame::decode(br#"{"kind":"message","pattern":"remote.p","id":7}"#).unwrap();
        let request = Request::new(frame.id, &frame.pattern);
        let data = RawValue::NULL.to_owned();
        let err = futures_lite::future::block_on(bridge.forward(request, data)).unwrap_err();
        assert_eq!(err.code().as_str(), "unavailable");
        assert_eq!(
            err.to_json(),
            r#"{"id":7,"pattern":"remote.p","error":{"code":"unavailable","message":"Pattern `remote.p` is unavailable: the broker link is down"}}"#
        );
    }
}
