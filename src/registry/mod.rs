//! Message and event patterns (NestForge's `MicroserviceRegistry`): the table of
//! handlers, frozen once built (`builder`), the frame dispatch (`dispatch`), reply and
//! error frames written in one go (`reply`), the pattern hash (`hash`), and envelope
//! dispatch from code (here).

mod builder;
mod dispatch;
mod hash;
mod reply;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::value::RawValue;
use tungstenite::protocol::frame::Utf8Bytes;

pub use builder::MicroserviceRegistryBuilder;
pub use dispatch::handle_websocket_microservice_message;
pub(crate) use dispatch::{dispatch_frame, error_reply};

use crate::context::{MicroserviceContext, WebSocketContext};
use crate::envelope::{EventEnvelope, MessageEnvelope};
use crate::error::{Error, Request, Result};
use crate::wire::Kind;
use hash::PatternHash;
use reply::{Failure, FrameHead};

/// Output of a handler's future: a message's reply payload (serialized), or `None` for an
/// event.
type RouteFuture = Pin<Box<dyn Future<Output = Result<Option<Utf8Bytes>, Failure>> + Send>>;
/// A handler behind its payload decoding; a message handler's future writes its result
/// into a reply frame around `FrameHead`, or alone without one.
type Route = Box<
    dyn Fn(&str, MicroserviceContext, Option<FrameHead>) -> Result<RouteFuture, serde_json::Error>
        + Send
        + Sync,
>;

/// The pattern table: message handlers (they reply) and event handlers (they do not),
/// in two namespaces, matched exactly. Immutable once built; clones share it.
///
/// # Examples
/// ```
/// use nestforge_edge::{MicroserviceContext, MicroserviceRegistry};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// let registry = MicroserviceRegistry::builder()
///     .message("math.add", |p: Add, _ctx: MicroserviceContext| async move { Ok(p.a + p.b) })
///     .event("app.ping", |_: serde_json::Value, _ctx| async move { Ok(()) })
///     .build();
/// assert!(registry.has_message("math.add"));
/// assert!(registry.has_event("app.ping"));
/// ```
#[derive(Clone, Default)]
pub struct MicroserviceRegistry {
    routes: Arc<Routes>,
}

/// An observer of dispatch failures (see [`MicroserviceRegistryBuilder::on_error`]).
type ErrorObserver = Box<dyn Fn(&Error, &WebSocketContext) + Send + Sync>;

#[derive(Default)]
struct Routes {
    messages: HashMap<Arc<str>, Route, PatternHash>,
    events: HashMap<Arc<str>, Route, PatternHash>,
    on_error: Option<ErrorObserver>,
}

impl MicroserviceRegistry {
    /// Starts a builder.
    pub fn builder() -> MicroserviceRegistryBuilder {
        MicroserviceRegistryBuilder::default()
    }

    /// Whether a message handler serves `pattern`.
    pub fn has_message(&self, pattern: &str) -> bool {
        self.routes.messages.contains_key(pattern)
    }

    /// Whether an event handler serves `pattern`.
    pub fn has_event(&self, pattern: &str) -> bool {
        self.routes.events.contains_key(pattern)
    }

    /// The message patterns, in no particular order.
    pub fn message_patterns(&self) -> impl Iterator<Item = &str> {
        self.routes.messages.keys().map(|k| &**k)
    }

    /// The event patterns, in no particular order.
    pub fn event_patterns(&self) -> impl Iterator<Item = &str> {
        self.routes.events.keys().map(|k| &**k)
    }
}

/// Envelope dispatch (NestForge's): patterns called from code, with a context made by
/// [`MicroserviceContext::new`] or by an [`InProcessMicroserviceClient`](crate::InProcessMicroserviceClient).
/// The same path as frames: the same payload decoding, handlers and errors.
impl MicroserviceRegistry {
    /// Runs the message handler of `envelope.pattern` and returns its reply payload.
    ///
    /// Errors: [`Error::UnknownPattern`] (``No message handler registered for `x` ``),
    /// [`Error::BadPayload`] (`Failed to deserialize message payload`), [`Error::Handler`]
    /// (the handler's error as is: a `bail!` text stays the text), with their codes. The
    /// handler sees `ctx` (its transport, pattern and metadata) as given, as in NestForge.
    ///
    /// # Examples
    /// ```
    /// use nestforge_edge::{MessageEnvelope, MicroserviceContext, MicroserviceRegistry,
    ///     Providers, TransportMetadata};
    ///
    /// let registry = MicroserviceRegistry::builder()
    ///     .message("math.add", |(a, b): (i64, i64), _ctx| async move { Ok(a + b) })
    ///     .build();
    /// let envelope = MessageEnvelope::new("math.add", (2, 3))?;
    /// let ctx = MicroserviceContext::new(Providers::default(), "test", "math.add", TransportMetadata::new());
    /// let reply = futures_lite::future::block_on(registry.dispatch_message(envelope, ctx))?;
    /// assert_eq!(reply, serde_json::json!(5));
    /// # Ok::<(), nestforge_edge::Error>(())
    /// ```
    pub async fn dispatch_message(
        &self,
        envelope: MessageEnvelope,
        ctx: MicroserviceContext,
    ) -> Result<serde_json::Value> {
        let reply = self.call_message(&envelope, ctx).await?;
        serde_json::from_str(reply.as_str()).map_err(|source| Error::Serialize {
            request: Request::new(None, &envelope.pattern),
            source,
        })
    }

    /// Runs the event handler of `envelope.pattern`. Errors as in
    /// [`dispatch_message`](Self::dispatch_message) (``No event handler registered for `x` ``,
    /// `Failed to deserialize event payload`).
    pub async fn dispatch_event(
        &self,
        envelope: EventEnvelope,
        ctx: MicroserviceContext,
    ) -> Result<()> {
        let payload = raw_payload(Kind::Event, &envelope.pattern, &envelope.payload)?;
        self.call_with(Kind::Event, &envelope.pattern, &payload, |_| (ctx, None))
            .await
            .map(drop)
    }

    /// [`dispatch_message`](Self::dispatch_message)'s reply as JSON text (for clients that
    /// decode it into their own type).
    pub(crate) async fn call_message(
        &self,
        envelope: &MessageEnvelope,
        ctx: MicroserviceContext,
    ) -> Result<Utf8Bytes> {
        let payload = raw_payload(Kind::Message, &envelope.pattern, &envelope.payload)?;
        let reply = self
            .call_with(Kind::Message, &envelope.pattern, &payload, |_| (ctx, None))
            .await?;
        Ok(reply.unwrap_or_default())
    }
}

/// An envelope's payload as the JSON text handlers decode from.
fn raw_payload(kind: Kind, pattern: &str, payload: &serde_json::Value) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(payload).map_err(|source| Error::EncodePayload {
        kind,
        request: Request::new(None, pattern),
        source,
    })
}

impl fmt::Debug for MicroserviceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicroserviceRegistry")
            .field("messages", &self.routes.messages.keys().collect::<Vec<_>>())
            .field("events", &self.routes.events.keys().collect::<Vec<_>>())
            .finish()
    }
}
