//! How a connection closes: the close record, the codes of failures, what `on_disconnect`
//! is told.

use std::time::Duration;

use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::frame::coding::CloseCode;

/// How a connection ended, as reported to `on_disconnect`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseInfo {
    /// The close code: the peer's (it closed), ours (we closed or failed the connection), or
    /// 1006 when the connection dropped without a close frame.
    pub code: u16,
    /// The reason text that went with the code.
    pub reason: String,
    /// Whether the peer initiated the close.
    pub by_peer: bool,
    /// How long the connection was open (after the upgrade).
    pub duration: Duration,
}

/// Who sent the first Close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closer {
    Peer,
    Us,
}

/// The first close sent or received (or the 1006 of a connection that vanished).
#[derive(Debug)]
pub(super) struct Closing {
    pub(super) code: CloseCode,
    pub(super) reason: String,
    pub(super) by: Closer,
}

impl Closing {
    pub(super) fn new(code: CloseCode, reason: &str, by: Closer) -> Self {
        Closing {
            code,
            reason: reason.into(),
            by,
        }
    }

    /// We closed because the connection failed: the peer's Close is not awaited.
    pub(super) fn failed(&self) -> bool {
        self.by == Closer::Us && !matches!(self.code, CloseCode::Normal | CloseCode::Away)
    }
}

/// The close code a connection sends when reading fails with `error`: 1002 for protocol
/// violations, 1007 for invalid UTF-8, 1009 for a frame or message over the limits, 1008 for
/// a full write buffer, 1011 otherwise; `None` when the connection is gone and no close
/// frame can be sent.
///
/// # Examples
/// ```
/// use tungstenite::error::{Error, ProtocolError};
/// let unmasked = Error::Protocol(ProtocolError::UnmaskedFrameFromClient);
/// assert_eq!(nestforge_edge::close_code(&unmasked), Some(1002));
/// assert_eq!(nestforge_edge::close_code(&Error::ConnectionClosed), None);
/// ```
pub fn close_code(error: &WsError) -> Option<u16> {
    close_code_of(error).map(u16::from)
}

pub(super) fn close_code_of(e: &WsError) -> Option<CloseCode> {
    match e {
        WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)
        | WsError::Io(_)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed => None,
        WsError::Protocol(_) => Some(CloseCode::Protocol),
        WsError::Utf8(_) => Some(CloseCode::Invalid),
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some(CloseCode::Size),
        WsError::WriteBufferFull(_) => Some(CloseCode::Policy),
        _ => Some(CloseCode::Error),
    }
}

pub(super) fn reason_for(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Protocol => "protocol error",
        CloseCode::Invalid => "invalid UTF-8",
        CloseCode::Size => "message too big",
        CloseCode::Policy => "slow consumer",
        CloseCode::Away => "going away",
        CloseCode::Again => "overloaded",
        CloseCode::Error => "internal error",
        _ => "",
    }
}
