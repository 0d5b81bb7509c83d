//! Message and event patterns (NestForge's `MicroserviceRegistry`) and the frame dispatch.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tungstenite::Message;

use crate::context::{MicroserviceContext, WebSocketContext};
use crate::error::{Error, HandlerError, Request, Result};
use crate::log::event;
use crate::wire::{reply_prefix, reply_suffix, Kind, RequestFrame};

/// Output of a message handler's future: the reply buffer with the payload appended.
type ReplyFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, Failure>> + Send>>;
type EventFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
type MessageRoute = Box<
    dyn Fn(&str, MicroserviceContext, Vec<u8>) -> Result<ReplyFuture, serde_json::Error>
        + Send
        + Sync,
>;
type EventRoute =
    Box<dyn Fn(&str, MicroserviceContext) -> Result<EventFuture, serde_json::Error> + Send + Sync>;

enum Failure {
    Handler(HandlerError),
    Serialize(serde_json::Error),
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
    pub async fn dispatch(&self, ctx: &WebSocketContext, bytes: &[u8]) -> Result<Option<String>> {
        let frame = RequestFrame::decode(bytes)?;
        let request = || Request::new(frame.id, &frame.pattern);
        match frame.kind {
            Kind::Message => {
                let Some((pattern, route)) = self.routes.messages.get_key_value(&*frame.pattern)
                else {
                    return Err(Error::UnknownPattern {
                        kind: Kind::Message,
                        request: request(),
                    });
                };
                let mut out = Vec::with_capacity(128 + 2 * pattern.len());
                reply_prefix(&mut out, frame.id, pattern);
                let mctx = MicroserviceContext::new(
                    ctx.clone(),
                    Arc::clone(pattern),
                    frame.metadata.clone(),
                );
                let future =
                    route(frame.payload_json(), mctx, out).map_err(|source| Error::BadPayload {
                        kind: Kind::Message,
                        request: request(),
                        source,
                    })?;
                let mut out = future.await.map_err(|failure| match failure {
                    Failure::Handler(source) => Error::Handler {
                        request: request(),
                        source,
                    },
                    Failure::Serialize(source) => Error::Serialize {
                        request: request(),
                        source,
                    },
                })?;
                reply_suffix(&mut out, &frame.metadata);
                // Only JSON text was written.
                Ok(Some(String::from_utf8(out).unwrap_or_default()))
            }
            Kind::Event => {
                let Some((pattern, route)) = self.routes.events.get_key_value(&*frame.pattern)
                else {
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
        let route: MessageRoute = Box::new(move |payload, ctx, mut out| {
            let future = handler(serde_json::from_str::<P>(payload)?, ctx);
            Ok(Box::pin(async move {
                let reply = future.await.map_err(Failure::Handler)?;
                serde_json::to_writer(&mut out, &reply).map_err(Failure::Serialize)?;
                Ok(out)
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
        Ok(reply) => Ok(reply.map(|reply| Message::Text(reply.into()))),
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
