//! Reply frames, written into one reused buffer in one go when a handler finishes.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::buf::Writer;
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use tungstenite::protocol::frame::Utf8Bytes;

use crate::error::{Error, HandlerError, Request};
use crate::wire::{reply_prefix, reply_suffix, Kind, TransportMetadata};

/// A request's `id` JSON text, owned: inline up to 22 bytes (ids are short numbers or
/// strings as a rule), so that keeping it for the reply costs no allocation.
pub(super) enum IdText {
    Inline(u8, [u8; 22]),
    Heap(Box<[u8]>),
}

impl IdText {
    pub(super) fn new(text: &str) -> Self {
        let mut inline = [0; 22];
        match inline.get_mut(..text.len()) {
            Some(head) => {
                head.copy_from_slice(text.as_bytes());
                IdText::Inline(text.len() as u8, inline)
            }
            None => IdText::Heap(text.as_bytes().into()),
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            IdText::Inline(len, bytes) => &bytes[..usize::from(*len)],
            IdText::Heap(bytes) => bytes,
        }
    }
}

/// What a WebSocket reply frame carries besides the payload, owned by the handler's
/// future so that the whole frame is written in one go when the handler finishes.
pub(super) struct FrameHead {
    /// The request's `id`, verbatim JSON.
    pub(super) id: Option<IdText>,
    /// The registry's copy of the pattern.
    pub(super) pattern: Arc<str>,
    /// The request's metadata, echoed.
    pub(super) metadata: TransportMetadata,
}

pub(super) enum Failure {
    Payload(serde_json::Error),
    Handler(HandlerError),
    Serialize(serde_json::Error),
}

impl Failure {
    /// The error for a request to `pattern` (without id) in the `kind` namespace.
    #[cold]
    pub(super) fn into_error(self, kind: Kind, pattern: &str) -> Error {
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

thread_local! {
    /// Replies are written here and split off as shared bytes: once the previous reply has
    /// been copied into its socket's write buffer, the next one reuses the same allocation.
    static REPLY: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Largest reply buffer kept for reuse.
const KEEP_REPLY_BUFFER: usize = 64 * 1024;

/// Writes with `write` into the reply buffer and splits the result off (one copy of this
/// code for every handler type).
pub(super) fn write_reply(
    reserve: usize,
    write: &mut dyn FnMut(&mut Writer<&mut BytesMut>),
) -> Utf8Bytes {
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
pub(super) fn reply_payload<R: Serialize>(
    payload: &R,
    head: Option<&FrameHead>,
) -> Result<Utf8Bytes, serde_json::Error> {
    reply_with(head, &mut |out| serde_json::to_writer(out, payload))
}

/// [`reply_payload`]'s work (one copy of this code for every handler type).
pub(super) fn reply_with(
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
