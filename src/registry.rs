//! Message and event patterns (NestForge's `MicroserviceRegistry`) and the frame dispatch.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;

use std::io::Write;

use bytes::buf::Writer;
use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::Message;

use crate::context::{MicroserviceContext, WebSocketContext};
use crate::envelope::{EventEnvelope, MessageEnvelope};
use crate::error::{Error, HandlerError, Request, Result};
use crate::extension;
use crate::log::event;
use crate::wire::{reply_prefix, reply_suffix, Kind, RequestFrame, TransportMetadata};

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

/// A request's `id` JSON text, owned: inline up to 22 bytes (ids are short numbers or
/// strings as a rule), so that keeping it for the reply costs no allocation.
enum IdText {
    Inline(u8, [u8; 22]),
    Heap(Box<[u8]>),
}

impl IdText {
    fn new(text: &str) -> Self {
        let mut inline = [0; 22];
        match inline.get_mut(..text.len()) {
            Some(head) => {
                head.copy_from_slice(text.as_bytes());
                IdText::Inline(text.len() as u8, inline)
            }
            None => IdText::Heap(text.as_bytes().into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            IdText::Inline(len, bytes) => &bytes[..usize::from(*len)],
            IdText::Heap(bytes) => bytes,
        }
    }
}

/// What a WebSocket reply frame carries besides the payload, owned by the handler's
/// future so that the whole frame is written in one go when the handler finishes.
struct FrameHead {
    /// The request's `id`, verbatim JSON.
    id: Option<IdText>,
    /// The registry's copy of the pattern.
    pattern: Arc<str>,
    /// The request's metadata, echoed.
    metadata: TransportMetadata,
}

enum Failure {
    Payload(serde_json::Error),
    Handler(HandlerError),
    Serialize(serde_json::Error),
}

impl Failure {
    /// The error for a request to `pattern` (without id) in the `kind` namespace.
    #[cold]
    fn into_error(self, kind: Kind, pattern: &str) -> Error {
        let request = Request::new(None, pattern);
        match self {
            Failure::Payload(source) => Error::BadPayload {
                kind,
                request,
                source,
            },
            Failure::Handler(source) => Error::Handler { request, source },
            Failure::Serialize(source) => Error::Serialize { request, source },
        }
    }
}

/// A request frame's payload: a text frame's is UTF-8 already.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

thread_local! {
    /// Replies are written here and split off as shared bytes: once the previous reply has
    /// been copied into its socket's write buffer, the next one reuses the same allocation.
    static REPLY: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Largest reply buffer kept for reuse.
const KEEP_REPLY_BUFFER: usize = 64 * 1024;

/// Writes with `write` into the reply buffer and splits the result off (one copy of this
/// code for every handler type).
fn write_reply(reserve: usize, write: &mut dyn FnMut(&mut Writer<&mut BytesMut>)) -> Utf8Bytes {
    REPLY.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.clear();
        buf.reserve(reserve);
        write(&mut (&mut *buf).writer());
        let reply = buf.split().freeze();
        if buf.capacity() > KEEP_REPLY_BUFFER {
            *buf = BytesMut::new();
        }
        // Only JSON text is written.
        Utf8Bytes::try_from(reply).unwrap_or_default()
    })
}

/// Serializes a handler's reply payload, inside a reply frame when there is a `head`.
fn reply_payload<R: Serialize>(
    payload: &R,
    head: Option<&FrameHead>,
) -> Result<Utf8Bytes, serde_json::Error> {
    reply_with(head, &mut |out| serde_json::to_writer(out, payload))
}

/// [`reply_payload`]'s work (one copy of this code for every handler type).
fn reply_with(
    head: Option<&FrameHead>,
    payload: &mut dyn FnMut(&mut Writer<&mut BytesMut>) -> Result<(), serde_json::Error>,
) -> Result<Utf8Bytes, serde_json::Error> {
    let mut result = Ok(());
    let reply = write_reply(128, &mut |out| match head {
        None => result = payload(out),
        Some(head) => {
            reply_prefix(out, head.id.as_ref().map(IdText::as_bytes), &head.pattern);
            result = payload(out);
            reply_suffix(out, &head.metadata);
        }
    });
    result.map(|()| reply)
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

/// An observer of dispatch failures (see [`MicroserviceRegistryBuilder::on_error`]).
type ErrorObserver = Box<dyn Fn(&Error, &WebSocketContext) + Send + Sync>;

#[derive(Default)]
struct Routes {
    messages: HashMap<Arc<str>, Route, PatternHash>,
    events: HashMap<Arc<str>, Route, PatternHash>,
    on_error: Option<ErrorObserver>,
}

/// The route tables' hash: eight bytes per step (FxHash's multiply-rotate). The tables
/// hold the application's patterns only, so a client choosing the looked-up name cannot
/// lengthen any probe sequence (no need for SipHash's keyed defence, which costs ~180
/// instructions per `app.info` lookup against ~20).
type PatternHash = BuildHasherDefault<PatternHasher>;

#[derive(Default)]
struct PatternHasher(u64);

impl PatternHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for PatternHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(word) ^ (rest.len() as u64) << 59);
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The multiply leaves its best-mixed bits at the top; hashbrown indexes with the
        // bottom ones.
        self.0.rotate_left(26)
    }
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
    pub(crate) async fn dispatch(
        &self,
        ctx: &WebSocketContext,
        request: Input<'_>,
    ) -> Result<Option<Utf8Bytes>> {
        let frame = match request {
            Input::Text(text) => RequestFrame::decode_str(text)?,
            Input::Binary(bytes) => RequestFrame::decode(bytes)?,
        };
        let payload = frame.payload.unwrap_or(RawValue::NULL);
        let extension = extension::installed(ctx.providers());
        match frame.kind {
            Kind::Message => {
                if let Some(extension) = extension.filter(|_| !self.has_message(&frame.pattern)) {
                    // Not ours: the extension may forward it (to a broker).
                    let request = Request::new(frame.id, &frame.pattern);
                    let Some(forwarded) = extension.on_unknown_message(&request, payload) else {
                        return Err(Error::UnknownPattern {
                            kind: Kind::Message,
                            request,
                        });
                    };
                    let response = forwarded.await?;
                    let head = FrameHead {
                        id: frame.id.map(|id| IdText::new(id.get())),
                        pattern: Arc::from(&*frame.pattern),
                        metadata: frame.metadata,
                    };
                    // The broker's reply is JSON text already: copied in as it is.
                    let reply = reply_with(Some(&head), &mut |out| {
                        out.write_all(response.get().as_bytes())
                            .map_err(serde_json::Error::io)
                    });
                    return reply.map(Some).map_err(|source| Error::Serialize {
                        request: Request::new(frame.id, &head.pattern),
                        source,
                    });
                }
                // The handler's context and the reply frame each carry the metadata: one
                // copy (none when it is empty, as it usually is).
                let (id, metadata) = (frame.id.map(|id| IdText::new(id.get())), frame.metadata);
                let result = self
                    .call_with(Kind::Message, &frame.pattern, payload, |key| {
                        let head = FrameHead {
                            id,
                            pattern: Arc::clone(&key),
                            metadata: metadata.clone(),
                        };
                        let ctx = MicroserviceContext::for_connection(ctx.clone(), key, metadata);
                        (ctx, Some(head))
                    })
                    .await;
                match result {
                    Ok(reply) => Ok(Some(reply.unwrap_or_default())),
                    Err(err) => Err(err.with_request_id(frame.id)),
                }
            }
            Kind::Event => {
                let carried = extension.is_some_and(|e| e.on_event(&frame.pattern, payload));
                let result = self
                    .call(Kind::Event, &frame.pattern, payload, frame.metadata, ctx)
                    .await;
                match result {
                    Err(Error::UnknownPattern { .. }) if carried => Ok(None),
                    result => result.map_err(|err| err.with_request_id(frame.id)),
                }
            }
        }
    }

    /// Runs the handler of `pattern` in the `kind` namespace with `payload`, in a context
    /// over `ctx` with `metadata`: the transport-neutral entry point (WebSocket frames and
    /// broker requests alike). A message gives its reply payload as JSON text, an event
    /// `None`. Errors carry the pattern but no request id.
    pub(crate) async fn call(
        &self,
        kind: Kind,
        pattern: &str,
        payload: &RawValue,
        metadata: TransportMetadata,
        ctx: &WebSocketContext,
    ) -> Result<Option<Utf8Bytes>> {
        self.call_with(kind, pattern, payload, |key| {
            (
                MicroserviceContext::for_connection(ctx.clone(), key, metadata),
                None,
            )
        })
        .await
    }

    /// [`call`](Self::call) with the handler's context, and the head of the reply frame
    /// for a WebSocket request (`None`: the reply is the payload alone), made by `parts`
    /// from the registry's copy of the pattern.
    async fn call_with(
        &self,
        kind: Kind,
        pattern: &str,
        payload: &RawValue,
        parts: impl FnOnce(Arc<str>) -> (MicroserviceContext, Option<FrameHead>),
    ) -> Result<Option<Utf8Bytes>> {
        let routes = match kind {
            Kind::Message => &self.routes.messages,
            Kind::Event => &self.routes.events,
        };
        let Some((key, route)) = routes.get_key_value(pattern) else {
            return Err(Error::UnknownPattern {
                kind,
                request: Request::new(None, pattern),
            });
        };
        let (ctx, head) = parts(Arc::clone(key));
        let future = route(payload.get(), ctx, head)
            .map_err(|source| Failure::Payload(source).into_error(kind, pattern))?;
        future
            .await
            .map_err(|failure| failure.into_error(kind, pattern))
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
        let route: Route = Box::new(move |payload, ctx, head| {
            let future = handler(serde_json::from_str::<P>(payload)?, ctx);
            Ok(Box::pin(async move {
                let reply = future.await.map_err(Failure::Handler)?;
                reply_payload(&reply, head.as_ref())
                    .map(Some)
                    .map_err(Failure::Serialize)
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
        let route: Route = Box::new(move |payload, ctx, _| {
            let future = handler(serde_json::from_str::<P>(payload)?, ctx);
            Ok(Box::pin(async move {
                future.await.map_err(Failure::Handler)?;
                Ok(None)
            }))
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

    /// Calls `observer` with every failure of a frame dispatched through
    /// [`handle_websocket_microservice_message`] (or [`serve_patterns`](crate::serve_patterns)),
    /// before it is returned or answered: the one place that sees them all, including the
    /// failures of requests with an `id`, which are answered with an error frame (`Ok`) rather
    /// than returned as `Err`. For logging and metrics; it runs on the connection's task, so
    /// it should not block. At most one observer: a second call replaces the first.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use nestforge_edge::MicroserviceRegistry;
    ///
    /// let failures = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&failures);
    /// let registry = MicroserviceRegistry::builder()
    ///     .on_error(move |err, ctx| {
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///         eprintln!("conn {}: {} ({})", ctx.connection_id(), err, err.code());
    ///     })
    ///     .build();
    /// # let _ = registry;
    /// ```
    pub fn on_error<F>(mut self, observer: F) -> Self
    where
        F: Fn(&Error, &WebSocketContext) + Send + Sync + 'static,
    {
        self.routes.on_error = Some(Box::new(observer));
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
/// - a failure of a request that carried an `id` is answered: `Ok(Some(frame))` with the
///   JSON error frame `{"id":..,"pattern":..,"error":{"code":..,"message":..}}`
///   ([`Error::to_message`]), so that a client with several requests in flight can tell which
///   one failed, whatever the gateway does with `Err`;
/// - any other failure is an [`Error`] whose `Display` is NestForge's text (send it as
///   `format!("error:{err}")`, byte for byte what NestForge sends) and which renders a JSON
///   error frame with [`Error::to_message`].
///
/// Every failure, answered or returned, is first shown to the registry's
/// [`on_error`](MicroserviceRegistryBuilder::on_error) observer (and logged at `debug` with
/// the feature `log`): a gateway that logs its `Err` arm sees the failures of requests
/// without `id` there, and all of them through the observer.
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
    match dispatch_frame(ctx, registry, &message).await {
        Ok(reply) => Ok(reply),
        Err(err) => match error_reply(&message, &err) {
            Some(frame) => Ok(Some(frame)),
            None => Err(err),
        },
    }
}

/// [`handle_websocket_microservice_message`] without the answer to failed requests that
/// carried an `id`: every failure is returned (after the observer saw it).
pub(crate) async fn dispatch_frame(
    ctx: &WebSocketContext,
    registry: &MicroserviceRegistry,
    message: &Message,
) -> Result<Option<Message>> {
    let request = match message {
        Message::Text(text) => Input::Text(text),
        Message::Binary(bytes) => Input::Binary(bytes),
        _ => return Ok(None),
    };
    match registry.dispatch(ctx, request).await {
        Ok(reply) => Ok(reply.map(Message::Text)),
        Err(err) => Err(observed(ctx, registry, err)),
    }
}

/// Shows a dispatch failure to the log and to the registry's observer.
#[cold]
fn observed(ctx: &WebSocketContext, registry: &MicroserviceRegistry, err: Error) -> Error {
    event!(
        debug,
        "conn={} dispatch failed ({}): {err:#}",
        ctx.connection_id(),
        err.code()
    );
    if let Some(observer) = &registry.routes.on_error {
        observer(&err, ctx);
    }
    err
}

/// The error frame answering `request`'s failure `err` when the request carried an `id`
/// (read again from the frame when it did not decode); `None` without one.
#[cold]
pub(crate) fn error_reply(request: &Message, err: &Error) -> Option<Message> {
    let probed = match err {
        Error::BadFrame { .. } => crate::wire::id_of_bad_frame(match request {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            _ => return None,
        }),
        _ => None,
    };
    let has_id = err.request().is_some_and(|r| r.id.is_some()) || probed.is_some();
    has_id.then(|| Message::Text(crate::wire::error_frame(err, probed.as_deref()).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Providers;

    fn dispatch(registry: &MicroserviceRegistry, frame: &str) -> Result<Option<Utf8Bytes>> {
        let ctx = WebSocketContext::detached(Providers::default());
        futures_lite::future::block_on(registry.dispatch(&ctx, Input::Text(frame)))
    }

    #[test]
    fn ids_short_and_long_are_echoed_verbatim() {
        let registry = MicroserviceRegistry::builder()
            .message("p", |n: u32, _| async move { Ok(n + 1) })
            .build();
        let long = format!("\"{}\"", "x".repeat(100));
        // 22 bytes are kept inline, 23 on the heap.
        let (at_22, at_23) = (
            format!("\"{}\"", "y".repeat(20)),
            format!("\"{}\"", "z".repeat(21)),
        );
        for id in [
            "1",
            "-2.5e3",
            "\"\\u00e9t\\u00e9\"",
            &at_22,
            &at_23,
            long.as_str(),
        ] {
            let frame = format!(r#"{{"kind":"message","pattern":"p","payload":1,"id":{id}}}"#);
            let reply = dispatch(&registry, &frame).unwrap().unwrap();
            assert_eq!(
                reply.as_str(),
                format!(r#"{{"id":{id},"pattern":"p","payload":2,"metadata":{{"values":{{}}}}}}"#)
            );
        }
    }

    #[test]
    fn binary_requests_get_the_whole_reply_frame_with_id_and_metadata() {
        let registry = MicroserviceRegistry::builder()
            .message("p", |n: u32, ctx: MicroserviceContext| async move {
                Ok(format!("{n}:{}", ctx.metadata().get("k").unwrap_or("-")))
            })
            .build();
        let ctx = WebSocketContext::detached(Providers::default());
        let frame = br#"{"id":"r\"1","kind":"message","pattern":"p","payload":7,"metadata":{"values":{"k":"v"}}}"#;
        let reply = futures_lite::future::block_on(registry.dispatch(&ctx, Input::Binary(frame)));
        assert_eq!(
            reply.unwrap().unwrap().as_str(),
            r#"{"id":"r\"1","pattern":"p","payload":"7:v","metadata":{"values":{"k":"v"}}}"#
        );
    }

    #[test]
    fn a_reply_that_cannot_be_serialized_sends_no_partial_frame() {
        let registry = MicroserviceRegistry::builder()
            .message("bad", |_: (), _| async move {
                Ok(std::collections::HashMap::from([((1, 2), 3)]))
            })
            .build();
        let err = dispatch(
            &registry,
            r#"{"kind":"message","pattern":"bad","payload":null,"id":4}"#,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Serialize { .. }), "{err:?}");
        assert_eq!(err.request().unwrap().id.as_ref().unwrap().get(), "4");
        // The next reply starts clean.
        let registry = MicroserviceRegistry::builder()
            .message("ok", |_: (), _| async move { Ok(1) })
            .build();
        let reply = dispatch(
            &registry,
            r#"{"kind":"message","pattern":"ok","payload":null}"#,
        );
        assert_eq!(
            reply.unwrap().unwrap().as_str(),
            r#"{"pattern":"ok","payload":1,"metadata":{"values":{}}}"#
        );
    }

    #[test]
    fn every_pattern_is_found_by_its_own_name_only() {
        // Names of every length around the hasher's 8-byte steps, sharing prefixes.
        let names: Vec<String> = (0..40)
            .flat_map(|len| ["a", "b"].map(|c| format!("{}{c}", &"app.info".repeat(5)[..len])))
            .collect();
        let registry = names
            .iter()
            .fold(MicroserviceRegistry::builder(), |b, name| {
                let reply = name.clone();
                b.message(name.as_str(), move |_: (), _| {
                    let reply = reply.clone();
                    async move { Ok(reply) }
                })
            })
            .build();
        for name in &names {
            let frame = format!(r#"{{"kind":"message","pattern":"{name}","payload":null}}"#);
            let reply = dispatch(&registry, &frame).unwrap().unwrap();
            assert!(reply.contains(&format!(r#""payload":"{name}""#)), "{reply}");
            assert!(!registry.has_message(&format!("{name}x")));
            assert!(!registry.has_event(name));
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
