//! Requests forwarded to the broker: published, their reply awaited within the timeout.

use std::sync::Arc;
use std::time::Instant;

use event_listener::EventListener;
use futures_lite::future::or;
use serde_json::value::RawValue;

use super::{bump, codec, publishable, Forward, Inner, MqttBridge, Outcome, PendingReply, Sub};
use crate::error::{Error, Request, Result};
use crate::rt::sync::lock;
use crate::rt::Timer;
use crate::wire::Kind;

impl MqttBridge {
    /// Whether `pattern` (a message pattern with no local handler) goes to the broker.
    pub(crate) fn forwards(&self, pattern: &str) -> bool {
        match &self.inner.config.forward {
            Forward::Unknown => true,
            Forward::Patterns(list) => list.iter().any(|p| p == pattern),
            Forward::Off => false,
        }
    }

    /// Sends a request to the broker and waits for its reply's payload.
    pub(super) async fn forward(
        &self,
        request: Request,
        data: Box<RawValue>,
    ) -> Result<Box<RawValue>> {
        let inner = &*self.inner;
        let pattern: &str = &request.pattern;
        let request = || request.clone();
        if !publishable(pattern) {
            return Err(Error::UnknownPattern {
                kind: Kind::Message,
                request: request(),
            });
        }
        let timeout = inner.config.request_timeout;
        let deadline = Instant::now() + timeout;
        let unavailable = |reason: &'static str| {
            bump(&inner.counters.unavailable);
            Error::Unavailable {
                request: request(),
                reason,
            }
        };
        let timed_out = || {
            bump(&inner.counters.timeouts);
            Error::Timeout {
                request: request(),
                after: timeout,
            }
        };
        // The reply topic first, as NestJS does: a reply must not beat the subscription.
        loop {
            let listener = inner.changed.listen();
            {
                let mut state = lock(&inner.state);
                if !state.connected {
                    return Err(unavailable("the broker link is down"));
                }
                match state.replies.get(pattern) {
                    Some(Sub::Active) => break,
                    Some(Sub::Refused) => {
                        return Err(unavailable("the broker refused the reply subscription"))
                    }
                    Some(Sub::Pending) => {}
                    None => {
                        if state.replies.len() >= inner.config.max_remote_patterns {
                            return Err(unavailable("too many remote patterns"));
                        }
                        if state.outbound.len() >= inner.config.outbound_queue {
                            return Err(unavailable("the outbound queue is full"));
                        }
                        state.replies.insert(pattern.into(), Sub::Pending);
                        let pid = state.pid();
                        state.subacks.insert(pid, vec![(0, pattern.into())]);
                        let mut packet = Vec::new();
                        codec::subscribe(&mut packet, inner.level, pid, &[reply_filter(pattern)]);
                        state.outbound.push_back(packet);
                        inner.wake.notify(1);
                    }
                }
            }
            let expired = !notified_before(listener, deadline).await;
            if expired {
                return Err(timed_out());
            }
        }
        let slot = Arc::new(PendingReply::default());
        let id: Box<str> = {
            let mut state = lock(&inner.state);
            if state.pending.len() >= inner.config.max_pending {
                return Err(unavailable("too many pending requests"));
            }
            if state.outbound.len() >= inner.config.outbound_queue {
                return Err(unavailable("the outbound queue is full"));
            }
            state.next_id += 1;
            let id: Box<str> = format!("{}-{}", inner.client_id, state.next_id).into();
            let payload = format!(
                "{{\"pattern\":{},\"data\":{},\"id\":\"{id}\"}}",
                serde_json::Value::from(pattern),
                data.get()
            );
            state.pending.insert(id.clone(), Arc::clone(&slot));
            let mut packet = Vec::with_capacity(payload.len() + pattern.len() + 8);
            codec::publish(&mut packet, inner.level, pattern, payload.as_bytes(), 0, 0);
            state.outbound.push_back(packet);
            inner.wake.notify(1);
            id
        };
        bump(&inner.counters.forwarded);
        // Removes the entry however this future ends (also when the client went away).
        let _entry = PendingEntry { inner, id };
        let outcome = loop {
            let listener = slot.ready.listen();
            if let Some(outcome) = lock(&slot.outcome).take() {
                break outcome;
            }
            let expired = !notified_before(listener, deadline).await;
            if expired {
                if let Some(outcome) = lock(&slot.outcome).take() {
                    break outcome;
                }
                return Err(timed_out());
            }
        };
        match outcome {
            Outcome::Response(response) => {
                bump(&inner.counters.replied);
                Ok(response)
            }
            Outcome::Failed(detail) => Err(Error::Remote {
                request: request(),
                detail: detail
                    .filter(|_| inner.config.expose_remote_errors)
                    .map(Into::into),
            }),
            Outcome::Disconnected => Err(unavailable("the broker link went down")),
        }
    }
}

struct PendingEntry<'a> {
    inner: &'a Inner,
    id: Box<str>,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        lock(&self.inner.state).pending.remove(&self.id);
    }
}

pub(super) fn reply_filter(pattern: &str) -> codec::Filter {
    codec::Filter {
        topic: format!("{pattern}/reply"),
        qos: 0,
        no_local: false,
    }
}

/// Waits for `listener` until `deadline`; `false` when the deadline came first.
pub(super) async fn notified_before(listener: EventListener, deadline: Instant) -> bool {
    or(
        async {
            listener.await;
            true
        },
        async {
            Timer::at(deadline).await;
            false
        },
    )
    .await
}
