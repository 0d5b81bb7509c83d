//! Packets from the broker: requests and events run by local handlers, broadcasts and
//! pushes for this instance's connections, replies to forwarded requests.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use tungstenite::Message;

use super::codec::{self, Packet};
use super::{bump, fingerprint, lock, Handler, Incoming, Inner, Level, Outcome, Sub};
use crate::context::WebSocketContext;
use crate::log::event;
use crate::wire::{Kind, TransportMetadata};

/// Handles one packet; a broker request or event gives a handler to run.
pub(super) fn handle(
    inner: &Arc<Inner>,
    ctx: &WebSocketContext,
    packet: Packet<'_>,
    wbuf: &mut Vec<u8>,
) -> Result<Option<Handler>, &'static str> {
    match packet {
        Packet::Publish {
            qos,
            pid,
            topic,
            payload,
        } => {
            match qos {
                0 => {}
                1 => codec::puback(wbuf, pid),
                _ => return Err("QoS 2 publish (never subscribed)"),
            }
            Ok(route(inner, ctx, topic, payload))
        }
        Packet::PubAck { pid } => {
            lock(&inner.state).unacked.remove(&pid);
            Ok(None)
        }
        Packet::SubAck { pid, codes } => {
            let mut state = lock(&inner.state);
            let patterns = state.subacks.remove(&pid).unwrap_or_default();
            if codes.iter().any(|&c| c >= 0x80) {
                event!(
                    warn,
                    "mqtt: the broker refused a subscription (SUBACK {codes:?})"
                );
            }
            for (index, pattern) in patterns {
                let granted = codes.get(index).is_some_and(|&c| c < 0x80);
                if let Some(sub) = state.replies.get_mut(&pattern) {
                    *sub = if granted { Sub::Active } else { Sub::Refused };
                }
            }
            drop(state);
            inner.changed.notify(usize::MAX);
            Ok(None)
        }
        Packet::PingResp => Ok(None),
        Packet::ConnAck { .. } => Err("unexpected CONNACK"),
        Packet::Disconnect => Err("DISCONNECT from the broker"),
        Packet::Other(_) => {
            bump(&inner.counters.malformed);
            Ok(None)
        }
    }
}

#[derive(Deserialize)]
struct BroadcastPacket<'a> {
    #[serde(borrow)]
    origin: std::borrow::Cow<'a, str>,
    data: String,
}

#[derive(Deserialize)]
struct PushPacket {
    conn: u64,
    data: String,
}

/// Routes a PUBLISH by its topic.
fn route(
    inner: &Arc<Inner>,
    ctx: &WebSocketContext,
    topic: &str,
    payload: &[u8],
) -> Option<Handler> {
    let malformed = || {
        bump(&inner.counters.malformed);
        None
    };
    if topic == inner.broadcast_topic {
        let Ok(b) = serde_json::from_slice::<BroadcastPacket<'_>>(payload) else {
            return malformed();
        };
        if b.origin != inner.client_id {
            if let Some(connections) = inner.connections.get() {
                connections.broadcast(Message::Text(b.data.into()));
            }
        }
        return None;
    }
    if let Some(instance) = topic.strip_prefix(&*inner.push_prefix) {
        if instance == inner.client_id {
            let Ok(p) = serde_json::from_slice::<PushPacket>(payload) else {
                return malformed();
            };
            if let Some(connections) = inner.connections.get() {
                let _ = connections.send(p.conn, Message::Text(p.data.into()));
            }
        }
        return None;
    }
    if let Some(pattern) = topic.strip_suffix("/reply") {
        if lock(&inner.state).replies.contains_key(pattern) {
            reply(inner, payload);
            return None;
        }
    }
    let whole: Option<&RawValue> = serde_json::from_slice(payload).ok();
    let Some(whole) = whole else {
        return malformed();
    };
    let packet = serde_json::from_str::<Incoming<'_>>(whole.get()).ok();
    // Bare JSON (no `pattern`, no `data`) is the data itself, as NestJS reads it.
    let (id, data) = match &packet {
        Some(p) if p.pattern.is_some() || p.data.is_some() => {
            (p.id, p.data.unwrap_or(RawValue::NULL))
        }
        _ => (None, whole),
    };
    let registry = inner.registry.clone();
    let ctx = ctx.clone();
    let (pattern, data): (Box<str>, Box<RawValue>) = (topic.into(), data.to_owned());
    match id {
        Some(id) if registry.has_message(topic) => {
            if !matches!(id.get().as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9')) {
                return malformed();
            }
            let id = id.get().to_owned();
            let reply_topic = format!("{topic}/reply");
            let inner = Arc::clone(inner);
            Some(Box::pin(async move {
                let metadata = TransportMetadata::default();
                let result = registry
                    .call(Kind::Message, &pattern, &data, metadata, &ctx)
                    .await;
                bump(&inner.counters.served);
                let body = match result {
                    Ok(Some(response)) => {
                        format!("{{\"id\":{id},\"response\":{response},\"isDisposed\":true}}")
                    }
                    Ok(None) => format!("{{\"id\":{id},\"response\":null,\"isDisposed\":true}}"),
                    Err(err) => error_reply(&id, &err.to_string()),
                };
                let mut packet = Vec::with_capacity(body.len() + reply_topic.len() + 8);
                codec::publish(
                    &mut packet,
                    inner.level,
                    &reply_topic,
                    body.as_bytes(),
                    0,
                    0,
                );
                Some(packet)
            }))
        }
        None if registry.has_event(topic) => {
            if inner.level == Level::V311 {
                let print = fingerprint(topic, payload);
                let mut state = lock(&inner.state);
                if let Some(i) = state.echoes.iter().position(|&f| f == print) {
                    state.echoes.remove(i);
                    return None;
                }
            }
            let inner = Arc::clone(inner);
            Some(Box::pin(async move {
                bump(&inner.counters.events_in);
                let metadata = TransportMetadata::default();
                let _ = registry
                    .call(Kind::Event, &pattern, &data, metadata, &ctx)
                    .await;
                None
            }))
        }
        _ => malformed(),
    }
}

fn error_reply(id: &str, message: &str) -> String {
    format!(
        "{{\"id\":{id},\"err\":{{\"status\":\"error\",\"message\":{}}},\"isDisposed\":true}}",
        serde_json::Value::from(message)
    )
}

/// A reply on `P/reply`: completes the pending request with that id, if it is ours.
fn reply(inner: &Inner, payload: &[u8]) {
    let Ok(packet) = serde_json::from_slice::<Incoming<'_>>(payload) else {
        bump(&inner.counters.malformed);
        return;
    };
    let Some(id) = packet
        .id
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    else {
        bump(&inner.counters.malformed);
        return;
    };
    // Other callers' replies share the topic: not ours, not an error.
    let Some(slot) = lock(&inner.state).pending.remove(id.as_str()) else {
        return;
    };
    let failed = packet.err.is_some() || packet.status.is_some_and(|s| s.get() == "\"error\"");
    let outcome = if failed {
        let detail = packet.err.map(
            |e| match serde_json::from_str::<serde_json::Value>(e.get()) {
                Ok(serde_json::Value::String(s)) => s,
                Ok(serde_json::Value::Object(o)) => match o.get("message") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => e.get().to_owned(),
                },
                _ => e.get().to_owned(),
            },
        );
        Outcome::Failed(detail)
    } else if let Some(response) = packet.response {
        Outcome::Response(response.to_owned())
    } else if packet.is_disposed.is_some() {
        Outcome::Response(Box::<RawValue>::default())
    } else {
        match serde_json::from_slice::<Box<RawValue>>(payload) {
            Ok(whole) => Outcome::Response(whole),
            Err(_) => Outcome::Failed(None),
        }
    };
    *lock(&slot.outcome) = Some(outcome);
    slot.ready.notify(usize::MAX);
}
