//! How a connection closes: the close handshake's state, the first Close, the codes of
//! failures, what `on_disconnect` is told.

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

/// Who sent the first Close, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closer {
    Peer,
    /// The gateway, or the server going away (shutdown, idle timeout, the gateway done).
    Us,
    /// The server, because the connection failed (a protocol error, a limit, a slow
    /// consumer, a panic): the peer's Close is not awaited.
    Failure,
}

/// The first close sent or received (or the 1006 of a connection that vanished).
#[derive(Debug)]
pub(crate) struct Closing {
    pub(crate) code: CloseCode,
    pub(crate) reason: String,
    pub(crate) by: Closer,
}

impl Closing {
    pub(crate) fn new(code: CloseCode, reason: &str, by: Closer) -> Self {
        Closing {
            code,
            reason: reason.into(),
            by,
        }
    }

    /// The server's Close with `code`: going away (1000, 1001), or a failure (any other).
    pub(crate) fn by_server(code: CloseCode) -> Self {
        let by = match code {
            CloseCode::Normal | CloseCode::Away => Closer::Us,
            _ => Closer::Failure,
        };
        Closing::new(code, reason_for(code), by)
    }

    /// We closed because the connection failed: the peer's Close is not awaited.
    pub(crate) fn failed(&self) -> bool {
        self.by == Closer::Failure
    }
}

/// The close code a connection sends when reading fails with `error`: 1002 for protocol
/// violations, 1007 for invalid UTF-8 (or, with `permessage-deflate`, a compressed message
/// that does not inflate), 1009 for a frame or message over the limits, 1008 for
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

pub(crate) fn close_code_of(e: &WsError) -> Option<CloseCode> {
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

pub(crate) fn reason_for(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Protocol => "protocol error",
        #[cfg(not(feature = "deflate"))]
        CloseCode::Invalid => "invalid UTF-8",
        // Also a compressed message that does not inflate.
        #[cfg(feature = "deflate")]
        CloseCode::Invalid => "invalid UTF-8 or DEFLATE data",
        CloseCode::Size => "message too big",
        CloseCode::Policy => "slow consumer",
        CloseCode::Away => "going away",
        CloseCode::Again => "overloaded",
        CloseCode::Error => "internal error",
        _ => "",
    }
}

/// Where a connection is in its close handshake (RFC 6455 §7.1), with the first Close sent
/// or received carried along: the one record of the framing (what may be read and written),
/// the driver (whether the gateway still reads) and the report (`on_disconnect`).
/// tungstenite's `WebSocketState`, with the first close and the gateway's reads in it.
#[derive(Debug)]
pub(crate) enum CloseState {
    /// Reading and writing.
    Open,
    /// Our Close is queued (or sent) and the peer's awaited. `gateway_reads`: the gateway
    /// sent it and reads on until the answer; otherwise the server closed (shutdown, idle
    /// timeout, overflow, a failure) and the gateway's reads are over.
    ClosedByUs { first: Closing, gateway_reads: bool },
    /// The peer's Close came first; our answer is queued.
    ClosedByPeer(Closing),
    /// Both Closes went.
    Acknowledged(Closing),
    /// Nothing more is read. `aborted`: nothing more is written either (the stream failed,
    /// ended without a close, or the peer stopped reading); `first` is `None` when no Close
    /// went either way (reported as 1006).
    Terminated {
        first: Option<Closing>,
        aborted: bool,
    },
}

impl CloseState {
    /// Messages may still be sent (no Close sent or received).
    pub(crate) fn can_write(&self) -> bool {
        matches!(self, CloseState::Open)
    }

    /// Frames may still arrive (the peer's Close has not).
    pub(crate) fn can_read(&self) -> bool {
        matches!(self, CloseState::Open | CloseState::ClosedByUs { .. })
    }

    /// The gateway's `recv` may still return messages.
    pub(crate) fn gateway_reads(&self) -> bool {
        matches!(
            self,
            CloseState::Open
                | CloseState::ClosedByUs {
                    gateway_reads: true,
                    ..
                }
        )
    }

    /// Writing is pointless: the connection is dropped without flushing.
    pub(crate) fn aborted(&self) -> bool {
        matches!(self, CloseState::Terminated { aborted: true, .. })
    }

    /// The first Close sent or received, if any.
    pub(crate) fn first(&self) -> Option<&Closing> {
        match self {
            CloseState::Open => None,
            CloseState::ClosedByUs { first, .. }
            | CloseState::ClosedByPeer(first)
            | CloseState::Acknowledged(first) => Some(first),
            CloseState::Terminated { first, .. } => first.as_ref(),
        }
    }

    /// We closed first because the connection failed: the peer's Close is not awaited.
    pub(crate) fn failed(&self) -> bool {
        self.first().is_some_and(Closing::failed)
    }

    /// Our Close (`first`) is queued: from `Open` only (`false` otherwise: a Close already
    /// went one way or the other).
    pub(crate) fn close_by_us(&mut self, first: Closing, gateway_reads: bool) -> bool {
        if !self.can_write() {
            return false;
        }
        *self = CloseState::ClosedByUs {
            first,
            gateway_reads,
        };
        true
    }

    /// The peer's Close arrived: the state it leads to, and whether it is to be answered
    /// (it came first) and reported (it came before the end).
    pub(crate) fn peer_closed(&mut self, close: Closing) -> PeerClose {
        match std::mem::replace(self, CloseState::Open) {
            CloseState::Open => {
                *self = CloseState::ClosedByPeer(close);
                PeerClose::First
            }
            CloseState::ClosedByUs { first, .. } => {
                *self = CloseState::Acknowledged(first);
                PeerClose::Answer
            }
            other => {
                *self = other;
                PeerClose::Late
            }
        }
    }

    /// The gateway's reads are over (the server is closing, or the connection failed).
    pub(crate) fn stop_gateway_reads(&mut self) {
        if let CloseState::ClosedByUs { gateway_reads, .. } = self {
            *gateway_reads = false;
        }
    }

    /// Nothing more is read (`aborted`: nor written); `first` is recorded unless a Close
    /// went already.
    pub(crate) fn terminate(&mut self, aborted: bool, first: Option<Closing>) {
        let first = match std::mem::replace(self, CloseState::Open) {
            CloseState::Open => first,
            CloseState::ClosedByUs { first, .. }
            | CloseState::ClosedByPeer(first)
            | CloseState::Acknowledged(first) => Some(first),
            CloseState::Terminated {
                first: recorded,
                aborted: was,
            } => {
                *self = CloseState::Terminated {
                    first: recorded.or(first),
                    aborted: was || aborted,
                };
                return;
            }
        };
        *self = CloseState::Terminated { first, aborted };
    }

    /// Takes the first Close for the report, leaving the state terminated.
    pub(crate) fn take_first(&mut self) -> Option<Closing> {
        self.terminate(false, None);
        match self {
            CloseState::Terminated { first, .. } => first.take(),
            _ => None,
        }
    }
}

/// What a Close from the peer is, given the state it arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerClose {
    /// It came first: answered, and reported to the gateway.
    First,
    /// It answers ours: reported, not answered.
    Answer,
    /// After the handshake: ignored.
    Late,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closing(code: u16, by: Closer) -> Closing {
        Closing::new(CloseCode::from(code), "", by)
    }

    #[test]
    fn a_close_by_us_then_the_answer() {
        let mut state = CloseState::Open;
        assert!(state.can_write() && state.can_read() && state.gateway_reads());
        assert!(state.close_by_us(closing(1001, Closer::Us), false));
        assert!(!state.can_write() && state.can_read() && !state.gateway_reads());
        // A second close changes nothing.
        assert!(!state.close_by_us(closing(1000, Closer::Us), true));
        assert_eq!(
            state.peer_closed(closing(1000, Closer::Peer)),
            PeerClose::Answer
        );
        assert!(!state.can_read());
        let first = state.take_first().unwrap();
        assert_eq!((u16::from(first.code), first.by), (1001, Closer::Us));
    }

    #[test]
    fn a_close_by_the_peer_first() {
        let mut state = CloseState::Open;
        assert_eq!(
            state.peer_closed(closing(1000, Closer::Peer)),
            PeerClose::First
        );
        assert!(!state.can_write() && !state.can_read() && !state.gateway_reads());
        assert_eq!(
            state.peer_closed(closing(1000, Closer::Peer)),
            PeerClose::Late
        );
        state.terminate(false, None);
        assert_eq!(state.first().unwrap().by, Closer::Peer);
    }

    #[test]
    fn a_gateway_that_closed_reads_until_the_answer_unless_the_server_stops_it() {
        let mut state = CloseState::Open;
        state.close_by_us(closing(1000, Closer::Us), true);
        assert!(state.gateway_reads());
        state.stop_gateway_reads();
        assert!(!state.gateway_reads() && state.can_read());
    }

    #[test]
    fn an_abort_keeps_the_first_close_or_records_1006() {
        let mut state = CloseState::Open;
        state.terminate(true, None);
        assert!(state.aborted() && state.first().is_none());
        let mut state = CloseState::Open;
        state.close_by_us(Closing::by_server(CloseCode::Protocol), false);
        assert!(state.failed());
        state.terminate(true, Some(Closing::by_server(CloseCode::Policy)));
        assert!(state.aborted());
        assert_eq!(u16::from(state.first().unwrap().code), 1002);
        // Aborted stays aborted.
        state.terminate(false, None);
        assert!(state.aborted());
    }
}
