//! `permessage-deflate` (RFC 7692), sans I/O: choosing the offer to accept from an upgrade
//! request ([`negotiate()`]), and compressing and inflating whole messages ([`compress`],
//! [`inflate`]) with one compressor and one inflater per thread. Feature `deflate`.
//!
//! The agreement is always without context takeover in both directions: a connection
//! holds no compression state, and a message inflates on its own.
//!
//! What the framing owes the codec (RFC 7692 §6 and §7.2):
//! - RSV1 marks a compressed message on its **first frame only**. "An endpoint MUST NOT set
//!   the "Per-Message Compressed" bit of control frames and non-first fragments of a data
//!   message. An endpoint receiving such a frame MUST _Fail the WebSocket Connection_"
//!   (§6.1): RSV1 on a continuation or a control frame is a protocol error (1002); RSV1 on
//!   a first frame without an agreement stays one too (RFC 6455 §5.2).
//! - Control frames are never compressed.
//! - A compressed message may be fragmented: its frames' payloads are joined, then inflated
//!   once, at the final frame (an empty last fragment, or one holding only `00`, is valid:
//!   §7.2.3.6). The joined compressed bytes are bounded like any message, and the inflated
//!   size by [`inflate`]'s limit (the message limit: 1009 beyond it).
//! - The UTF-8 of a compressed text message is checked after inflation, not fragment by
//!   fragment: the frames carry DEFLATE data, not text (§6.1).
//! - Data that does not inflate ([`InflateError::Corrupt`]): RFC 7692 names no close code.
//!   The payload is not what its RSV1 says it is, so 1007: "an endpoint is terminating the
//!   connection because it has received data within a message that was not consistent with
//!   the type of the message" (RFC 6455 §7.4.1; Node's `ws` closes with 1007 there too).
//!   [`InflateError::TooBig`] is 1009, as for any message over the limit.
//! - On sending, [`compress`] returning `false` means: send the payload as it is, RSV1
//!   clear (always allowed).

mod codec;
mod negotiate;

pub(crate) use codec::{compress, inflate, InflateError};
pub(crate) use negotiate::{negotiate, Deflate};
