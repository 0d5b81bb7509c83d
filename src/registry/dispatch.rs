//! A frame into the registry: decoded (borrowed), its handler run, its reply or error.

use std::io::Write;
use std::sync::Arc;

use serde_json::value::RawValue;
use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::Message;

use super::reply::{reply_with, Failure, FrameHead, IdText};
use super::MicroserviceRegistry;
use crate::context::{MicroserviceContext, WebSocketContext};
use crate::error::{Error, Request, Result};
use crate::extension;
use crate::log::event;
use crate::wire::{Kind, RequestFrame, TransportMetadata};

/// A request frame's payload: a text frame's is UTF-8 already.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl MicroserviceRegistry {
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
    pub(super) async fn call_with(
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
/// [`on_error`](crate::MicroserviceRegistryBuilder::on_error) observer (and logged at `debug` with
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
#[inline(never)]
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
#[inline(never)]
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
