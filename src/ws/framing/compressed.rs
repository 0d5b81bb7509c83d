//! `permessage-deflate` in the framing (RFC 7692 §6), once the upgrade agreed it: what the
//! framing owes the codec (see `ws::deflate`).
//! - Reading: RSV1 is allowed on the first frame of a text or binary message only (on a
//!   continuation or a control frame, or without an agreement, it stays a protocol error,
//!   1002). A compressed message's frames are joined as they came (bounded like any
//!   message), then inflated once, at its last frame, to at most `max_message_size` bytes
//!   (1009 beyond); data that does not inflate is 1007; a text message's UTF-8 is checked
//!   after inflation.
//! - Writing: a text or binary message of at least the gateway's `min_size` is compressed
//!   through the thread's compressor into the thread's scratch buffer, and queued as one
//!   frame with RSV1 set, unless compressing would not make it smaller (then it goes as it
//!   is, RSV1 clear). Control frames are never compressed.

use std::cell::RefCell;

use tungstenite::error::{CapacityError, Error, Result};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{FrameHeader, Utf8Bytes};
use tungstenite::Message;

use super::output::Payload;
use super::{Framing, Limits};
use crate::ws::deflate::{self, InflateError};

/// The compressed payload of the message being queued is kept only up to this capacity
/// between messages.
const SCRATCH_MAX: usize = 64 * 1024;

thread_local! {
    /// Where a message is compressed before its frame is queued.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The error text of a compressed message that does not inflate, reported as tungstenite's
/// `Error::Utf8`: the connection closes with 1007, as for invalid UTF-8 (the payload is not
/// what its RSV1 says it is; RFC 7692 names no code).
pub(super) const CORRUPT: &str = "invalid permessage-deflate data";

/// Whether `header`'s reserved bits mark the first frame of a compressed message (RSV1 alone,
/// on a text or binary frame, with `permessage-deflate` agreed).
pub(super) fn starts_compressed(header: &FrameHeader, limits: &Limits) -> bool {
    limits.deflate.is_some()
        && header.rsv1
        && !header.rsv2
        && !header.rsv3
        && matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary))
}

/// The message a compressed payload (its frames' payloads joined) inflates to: at most
/// `max` bytes (`MessageTooLong` beyond, its `size` one past the limit: the inflation
/// stopped there), valid UTF-8 for a text message. Kept out of line: the plain read path
/// stays as small as without the feature.
#[inline(never)]
pub(super) fn inflate(payload: &[u8], text: bool, max: usize) -> Result<Message> {
    let data = deflate::inflate(payload, max).map_err(|e| match e {
        InflateError::TooBig => Error::Capacity(CapacityError::MessageTooLong {
            size: max.saturating_add(1),
            max_size: max,
        }),
        InflateError::Corrupt => Error::Utf8(CORRUPT.into()),
    })?;
    Ok(if text {
        Message::Text(Utf8Bytes::try_from(bytes::Bytes::from(data))?)
    } else {
        Message::Binary(data.into())
    })
}

impl Framing {
    /// Queues `payload` compressed, as one `opcode` frame with RSV1 set; `false` (nothing
    /// queued) when it is to go as it is: no agreement, a control frame, a payload under the
    /// gateway's `min_size`, or one that does not get smaller.
    #[inline]
    pub(super) fn push_compressed(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        match self.limits.deflate {
            Some(deflating) if payload.len() >= deflating.min_size => {
                let window = deflating.agreement.server_window_bits;
                matches!(opcode, OpCode::Data(_)) && self.compress_and_push(opcode, payload, window)
            }
            _ => false,
        }
    }

    /// [`push_compressed`](Self::push_compressed)'s compression, out of line: the plain
    /// write path stays as small as without the feature.
    #[inline(never)]
    fn compress_and_push(&mut self, opcode: OpCode, payload: &[u8], window: u8) -> bool {
        let mut scratch = SCRATCH.take();
        let compressed = deflate::compress(payload, window, &mut scratch);
        if compressed {
            let header = FrameHeader {
                rsv1: true,
                opcode,
                ..FrameHeader::default()
            };
            self.push(&header, Payload::Borrowed(&scratch));
        }
        scratch.clear();
        if scratch.capacity() <= SCRATCH_MAX {
            SCRATCH.set(scratch);
        }
        compressed
    }
}

#[cfg(test)]
mod tests;
