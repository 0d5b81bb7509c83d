//! Message and event patterns (NestForge's `MicroserviceRegistry`) and the frame dispatch.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::Message;

use crate::context::{MicroserviceContext, WebSocketContext};
use crate::error::{Error, HandlerError, Request, Result};
use crate::log::event;
use crate::wire::{reply_prefix, reply_suffix, Kind, RequestFrame, TransportMetadata};

/// Output of a message handler's future: the whole reply frame.
type ReplyFuture = Pin<Box<dyn Future<Output = Result<Utf8Bytes, Failure>> + Send>>;
type EventFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
type MessageRoute = Box<
    dyn Fn(&str, MicroserviceContext, ReplyHead) -> Result<ReplyFuture, serde_json::Error>
        + Send
        + Sync,
>;
type EventRoute =
    Box<dyn Fn(&str, MicroserviceContext) -> Result<EventFuture, serde_json::Error> + Send + Sync>;

enum Failure {
    Handler(HandlerError),
    Serialize(serde_json::Error),
}

/// What a reply needs besides its payload, owned so that the handler's future can carry it
/// without allocating (ids up to 32 bytes stay inline; the pattern is the registry's).
struct ReplyHead {
    id: Option<EchoId>,
    pattern: Arc<str>,
    metadata: TransportMetadata,
}

/// A request id, verbatim JSON.
enum EchoId {
    Inline(u8, [u8; 32]),
    Heap(Box<str>),
}

impl EchoId {
    fn new(raw: &str) -> Self {
        let mut inline = [0u8; 32];
        match inline.get_mut(..raw.len()) {
            Some(slot) => {
                slot.copy_from_slice(raw.as_bytes());
                EchoId::Inline(raw.len() as u8, inline)
            }
            None => EchoId::Heap(raw.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `str`.
            EchoId::Inline(len, bytes) => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or("")
            }
            EchoId::Heap(id) => id,
        }
    }
}

thread_local! {
    /// Replies are written here and split off as shared bytes: once the previous reply has
    /// been copied into its socket's write buffer, the next one reuses the same allocation.
    static REPLY: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Largest reply buffer kept for reuse.
const KEEP_REPLY_BUFFER: usize = 64 * 1024;

impl ReplyHead {
    /// Writes the whole reply frame for `payload`.
    fn compose<R: Serialize>(&self, payload: &R) -> Result<Utf8Bytes, serde_json::Error> {
        REPLY.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.clear();
            buf.reserve(128 + self.pattern.len());
            let mut out = (&mut *buf).writer();
            reply_prefix(
                &mut out,
                self.id.as_ref().map(EchoId::as_str),
                &self.pattern,
            );
            serde_json::to_writer(&mut out, payload)?;
            reply_suffix(&mut out, &self.metadata);
            let reply = buf.split().freeze();
            if buf.capacity() > KEEP_REPLY_BUFFER {
                *buf = BytesMut::new();
            }
            // Only JSON text was written.
            Ok(Utf8Bytes::try_from(reply).unwrap_or_default())
        })
    }
}

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

#[derive(Default)]
struct Routes {
    messages: HashMap<Arc<str>, MessageRoute>,
    events: HashMap<Arc<str>, EventRoute>,
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

    /// Decodes one request frame and runs its handler. See
    /// [`handle_websocket_microservice_message`].
    pub async fn dispatch(
        &self,
        ctx: &WebSocketContext,
        bytes: &[u8],
    ) -> Result<Option<Utf8Bytes>> {
        let mut frame = RequestFrame::decode(bytes)?;
        let request = || Request::new(frame.id, &frame.pattern);
        match frame.kind {
            Kind::Message => {
                let Some((pattern, route)) = self.routes.messages.get_key_value(&*frame.pattern)
                else {
                    #[cfg(feature = "mqtt")]
                    if let Some(bridge) = ctx.providers().get::<crate::mqtt::MqttBridge>() {
                        if bridge.forwards(&frame.pattern) {
                            return bridge.forward(&frame).await.map(Some);
                        }
                    }
                    return Err(Error::UnknownPattern {
                        kind: Kind::Message,
                        request: request(),
                    });
                };
                // The handler owns its context and the reply needs the metadata afterwards:
                // one copy (none when it is empty, as it usually is).
                let metadata = std::mem::take(&mut frame.metadata);
                let head = ReplyHead {
                    id: frame.id.map(|id| EchoId::new(id.get())),
                    pattern: Arc::clone(pattern),
                    metadata: metadata.clone(),
                };
                let mctx = MicroserviceContext::new(ctx.clone(), Arc::clone(pattern), metadata);
                let future = route(frame.payload_json(), mctx, head).map_err(|source| {
                    Error::BadPayload {
                        kind: Kind::Message,
                        request: request(),
                        source,
                    }
                })?;
                let reply = future.await.map_err(|failure| match failure {
                    Failure::Handler(source) => Error::Handler {
                        request: request(),
                        source,
                    },
                    Failure::Serialize(source) => Error::Serialize {
                        request: request(),
                        source,
                    },
                })?;
                Ok(Some(reply))
            }
            Kind::Event => {
                #[cfg(feature = "mqtt")]
                let published = ctx
                    .providers()
                    .get::<crate::mqtt::MqttBridge>()
                    .is_some_and(|bridge| bridge.publish_event(ctx, &frame));
                let Some((pattern, route)) = self.routes.events.get_key_value(&*frame.pattern)
                else {
                    #[cfg(feature = "mqtt")]
                    if published {
                        return Ok(None);
                    }
                    return Err(Error::UnknownPattern {
                        kind: Kind::Event,
                        request: request(),
                    });
                };
                let payload = frame.payload.map_or("null", |raw| raw.get());
                let mctx =
                    MicroserviceContext::new(ctx.clone(), Arc::clone(pattern), frame.metadata);
                let future = route(payload, mctx).map_err(|source| Error::BadPayload {
                    kind: Kind::Event,
                    request: request(),
                    source,
                })?;
                future.await.map_err(|source| Error::Handler {
                    request: request(),
                    source,
                })?;
                Ok(None)
            }
        }
    }
}

impl fmt::Debug for MicroserviceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicroserviceRegistry")
            .field("messages", &self.routes.messages.keys().collect::<Vec<_>>())
            .field("events", &self.routes.events.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Collects handlers; [`build`](Self::build) freezes them.
#[derive(Default)]
pub struct MicroserviceRegistryBuilder {
    routes: Routes,
    duplicate: Option<(Kind, String)>,
}

impl MicroserviceRegistryBuilder {
    /// Registers a message handler: an async closure taking the typed payload and a
    /// [`MicroserviceContext`]; its `Ok` value is serialized as the reply's `payload`.
    ///
    /// The payload is deserialized straight from the frame's bytes into `P`
    /// (`()` accepts `null` or an absent payload).
    pub fn message<P, R, F, Fut>(mut self, pattern: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(P, MicroserviceContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        let route: MessageRoute = Box::new(move |payload, ctx, head| {
            let future = handler(serde_json::from_str::<P>(payload)?, ctx);
            Ok(Box::pin(async move {
                let reply = future.await.map_err(Failure::Handler)?;
                head.compose(&reply).map_err(Failure::Serialize)
            }))
        });
        let pattern: Arc<str> = pattern.into().into();
        if self
            .routes
            .messages
            .insert(Arc::clone(&pattern), route)
            .is_some()
        {
            self.duplicate
                .get_or_insert((Kind::Message, pattern.to_string()));
        }
        self
    }

    /// Registers an event handler: like [`message`](Self::message), but nothing is sent back.
    pub fn event<P, F, Fut>(mut self, pattern: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(P, MicroserviceContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let route: EventRoute = Box::new(move |payload, ctx| {
            Ok(Box::pin(handler(serde_json::from_str::<P>(payload)?, ctx)))
        });
        let pattern: Arc<str> = pattern.into().into();
        if self
            .routes
            .events
            .insert(Arc::clone(&pattern), route)
            .is_some()
        {
            self.duplicate
                .get_or_insert((Kind::Event, pattern.to_string()));
        }
        self
    }

    /// Freezes the table, or reports the first pattern registered twice in one namespace
    /// ([`Error::DuplicatePattern`]).
    pub fn try_build(self) -> Result<MicroserviceRegistry> {
        match self.duplicate {
            Some((kind, pattern)) => Err(Error::DuplicatePattern { kind, pattern }),
            None => Ok(MicroserviceRegistry {
                routes: Arc::new(self.routes),
            }),
        }
    }

    /// Freezes the table.
    ///
    /// # Panics
    /// If a pattern was registered twice in one namespace (NestForge silently keeps the
    /// last one). Use [`try_build`](Self::try_build) to get the error instead.
    pub fn build(self) -> MicroserviceRegistry {
        match self.try_build() {
            Ok(registry) => registry,
            Err(e) => panic!("{e}"),
        }
    }
}

impl fmt::Debug for MicroserviceRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicroserviceRegistryBuilder")
            .finish_non_exhaustive()
    }
}

/// Forwards one WebSocket frame into the registry (NestForge's adapter).
///
/// - a Text or Binary frame holding a request is decoded and dispatched: a `message` gives
///   `Ok(Some(reply))` (always a Text frame), an `event` gives `Ok(None)`;
/// - Ping, Pong and Close give `Ok(None)`: the transport answers pings and closes itself;
/// - every failure is an [`Error`] whose `Display` is NestForge's text (send it as
///   `format!("error:{err}")`) and which renders a JSON error frame with
///   [`Error::to_message`].
///
/// # Examples
/// ```
/// use nestforge_edge::prelude::*;
///
/// let registry = MicroserviceRegistry::builder()
///     .message("app.info", |_: (), ctx: MicroserviceContext| async move {
///         Ok(ctx.transport().to_string())
///     })
///     .build();
/// let ctx = WebSocketContext::detached(Providers::default());
/// let frame = Message::Text(r#"{"kind":"message","pattern":"app.info","payload":null,"id":1}"#.into());
/// let reply = futures_lite::future::block_on(
///     handle_websocket_microservice_message(&ctx, &registry, frame),
/// )?;
/// assert_eq!(
///     reply.unwrap().to_text()?,
///     r#"{"id":1,"pattern":"app.info","payload":"websocket","metadata":{"values":{}}}"#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn handle_websocket_microservice_message(
    ctx: &WebSocketContext,
    registry: &MicroserviceRegistry,
    message: Message,
) -> Result<Option<Message>> {
    let bytes: &[u8] = match &message {
        Message::Text(text) => text.as_bytes(),
        Message::Binary(bytes) => bytes,
        _ => return Ok(None),
    };
    match registry.dispatch(ctx, bytes).await {
        Ok(reply) => Ok(reply.map(Message::Text)),
        Err(err) => {
            event!(
                debug,
                "conn={} dispatch failed ({}): {err:#}",
                ctx.connection_id(),
                err.code()
            );
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Providers;

    fn dispatch(registry: &MicroserviceRegistry, frame: &str) -> Result<Option<Utf8Bytes>> {
        let ctx = WebSocketContext::detached(Providers::default());
        futures_lite::future::block_on(registry.dispatch(&ctx, frame.as_bytes()))
    }

    #[test]
    fn ids_short_and_long_are_echoed_verbatim() {
        let registry = MicroserviceRegistry::builder()
            .message("p", |n: u32, _| async move { Ok(n + 1) })
            .build();
        let long = format!("\"{}\"", "x".repeat(100));
        for id in ["1", "-2.5e3", "\"\\u00e9t\\u00e9\"", long.as_str()] {
            let frame = format!(r#"{{"kind":"message","pattern":"p","payload":1,"id":{id}}}"#);
            let reply = dispatch(&registry, &frame).unwrap().unwrap();
            assert_eq!(
                reply.as_str(),
                format!(r#"{{"id":{id},"pattern":"p","payload":2,"metadata":{{"values":{{}}}}}}"#)
            );
        }
    }

    #[test]
    fn consecutive_replies_do_not_share_bytes() {
        let registry = MicroserviceRegistry::builder()
            .message("echo", |s: String, _| async move { Ok(s) })
            .build();
        let a = dispatch(
            &registry,
            r#"{"kind":"message","pattern":"echo","payload":"a"}"#,
        );
        let big = "b".repeat(100 * 1024);
        let b = dispatch(
            &registry,
            &format!(r#"{{"kind":"message","pattern":"echo","payload":"{big}"}}"#),
        );
        let c = dispatch(
            &registry,
            r#"{"kind":"message","pattern":"echo","payload":"c"}"#,
        );
        assert!(a.unwrap().unwrap().contains(r#""payload":"a""#));
        assert_eq!(b.unwrap().unwrap().len(), big.len() + 56);
        assert!(c.unwrap().unwrap().contains(r#""payload":"c""#));
    }
}
