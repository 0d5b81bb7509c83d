//! RFC 6455 framing (server side) over a byte stream that may answer `WouldBlock`, with
//! buffers that cost nothing while a connection is idle.
//!
//! Same contract as tungstenite's sans-I/O `WebSocketContext` (same messages, errors and
//! close handshake, its `FrameHeader` type), with a different buffer policy:
//! - `header`: the frame header codec over byte slices (tungstenite's results, tested
//!   against it);
//! - `input`: small reads land in one per-thread scratch buffer and only the bytes received
//!   are kept, released once parsed; a payload larger than `read_buffer_size` is read
//!   straight into a buffer of its own (or, for a fragment, into its message's reassembly
//!   buffer) that grows in doubling steps with the bytes received, the last read also
//!   taking the bytes behind it;
//! - `fragments`: reassembly, the message limit and UTF-8 checked fragment by fragment;
//! - `output`: large payloads are queued by reference and written with `writev`; the write
//!   buffer and the queue of large payloads go back to per-thread spares once the socket took
//!   it all;
//! - `compressed` (feature `deflate`): with `permessage-deflate` agreed, RSV1 on a message's
//!   first frame, the message inflated whole once its last frame arrived, and text and
//!   binary messages compressed on sending.

use std::io::{self, Read, Write};

use bytes::Bytes;
use tungstenite::error::{Error, ProtocolError, Result};
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{FrameHeader, Utf8Bytes};
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::close::{CloseState, Closer, Closing, PeerClose};
#[cfg(feature = "deflate")]
use super::extensions::Deflating;
use super::{Extensions, WebSocketConfig};

mod ahead;
#[cfg(feature = "deflate")]
mod compressed;
mod fragments;
mod header;
mod input;
mod output;

pub(crate) use ahead::Ahead;
use ahead::Untold;
use fragments::{too_long, Fragments};
use input::{Body, Input};
use output::{Output, Payload};

/// The largest frame header (2 + 8 bytes of length + 4 of mask).
const MAX_HEADER: usize = 14;

/// The limits a connection frames under.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Bytes asked of the stream per read while no large payload is being read (at least
    /// `MAX_HEADER`).
    read_buffer: usize,
    /// Largest accepted frame payload.
    max_frame: usize,
    /// Largest accepted message (after reassembly).
    max_message: usize,
    /// Unsent bytes beyond which `write` answers `WriteBufferFull`.
    max_write_buffer: usize,
    /// `permessage-deflate` was agreed: RSV1 may mark a message compressed, and messages
    /// are compressed on sending.
    #[cfg(feature = "deflate")]
    deflate: Option<Deflating>,
}

/// The server side of a WebSocket connection's framing: what each connection runs, public
/// (hidden) for the fuzz targets and the framing tests.
pub struct Framing {
    /// The close handshake, and the first Close.
    state: CloseState,
    limits: Limits,
    /// Received bytes and the frame being read; holds no allocation when idle.
    input: Input,
    /// A fragmented message being reassembled (boxed: rarely there).
    fragments: Option<Box<Fragments>>,
    /// Frames not yet written; holds no allocation once flushed.
    out: Output,
    /// A pong owed while the write buffer was full (a newer ping replaces it).
    pong: Option<Bytes>,
    /// A pong or close reply was queued: `read` tries to write it.
    reply_due: bool,
}

impl Framing {
    /// Framing for a connection whose first bytes (read with the upgrade request) are
    /// `read_ahead`.
    pub fn new(read_ahead: &[u8], config: &WebSocketConfig) -> Self {
        Framing {
            state: CloseState::Open,
            limits: Limits {
                read_buffer: config.read_buffer_size.max(MAX_HEADER),
                max_frame: config.max_frame_size,
                max_message: config.max_message_size,
                // The bound may be passed by one frame, so that a message larger than the
                // bound can still be sent.
                max_write_buffer: config.max_write_buffer_size
                    + config.max_write_buffer_size.max(config.max_message_size)
                    + 16,
                #[cfg(feature = "deflate")]
                deflate: None,
            },
            input: Input::new(read_ahead),
            fragments: None,
            out: Output::default(),
            pong: None,
            reply_due: false,
        }
    }

    /// Frames under the extensions the upgrade agreed (none without the feature `deflate`).
    pub(crate) fn agree(&mut self, extensions: Extensions) {
        #[cfg(feature = "deflate")]
        {
            self.limits.deflate = extensions.deflate;
        }
        #[cfg(not(feature = "deflate"))]
        let Extensions {} = extensions;
    }

    /// Whether messages can still be sent (no Close sent or received).
    pub fn can_write(&self) -> bool {
        self.state.can_write()
    }

    /// Where the close handshake is.
    pub(crate) fn state(&self) -> &CloseState {
        &self.state
    }

    /// The close handshake, for the driver's own transitions (the gateway's reads ending,
    /// an abort).
    pub(crate) fn state_mut(&mut self) -> &mut CloseState {
        &mut self.state
    }

    /// Whether [`read`](Self::read) can only read the stream: nothing buffered to parse, no
    /// reply to flush, the connection still reading (a caller that knows the stream is not
    /// ready can skip the read).
    pub fn waits_for_input(&self) -> bool {
        self.state.can_read() && !self.reply_due && self.input.buffered() == 0
    }

    /// Part of a frame is buffered (a header, or a payload being read), to be read on.
    pub fn holds_partial_frame(&self) -> bool {
        self.state.can_read() && self.input.partial()
    }

    /// Bytes queued for the socket.
    pub fn unsent(&self) -> usize {
        self.out.unsent()
    }

    /// Bytes of buffer held (input, partial payloads, output).
    pub fn held(&self) -> usize {
        self.input.held()
            + self.fragments.as_ref().map_or(0, |f| f.data.capacity())
            + self.out.held()
    }

    /// Reads the next message. `WouldBlock` (as `Error::Io`) when the stream has no more
    /// bytes for now; pongs and close replies are queued (and written by the next flush).
    pub fn read(&mut self, stream: &mut (impl Read + Write)) -> Result<Message> {
        self.read_from(&mut Untold(stream))
    }

    /// [`read`](Self::read) from a stream that may tell how many bytes it holds (sizing the
    /// buffer of a large payload by them).
    pub(crate) fn read_from(&mut self, stream: &mut impl Ahead) -> Result<Message> {
        if matches!(self.state, CloseState::Terminated { .. }) {
            return Err(Error::AlreadyClosed);
        }
        loop {
            if self.reply_due {
                match self.flush(stream) {
                    Ok(()) => {}
                    Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            } else if !self.state.can_read() {
                self.state.terminate(false, None);
                return Err(Error::ConnectionClosed);
            }
            let frame = self
                .input
                .next_frame(stream, &self.limits, &mut self.fragments);
            let (header, payload) = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    // The end of the stream: after the peer's Close, the end of the handshake;
                    // before it, the peer vanished.
                    let vanished = self.state.can_read();
                    self.state.terminate(false, None);
                    return Err(if vanished {
                        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)
                    } else {
                        Error::ConnectionClosed
                    });
                }
                Err(Error::Io(e))
                    if !self.state.can_read() && e.kind() == io::ErrorKind::ConnectionReset =>
                {
                    return Err(Error::ConnectionClosed)
                }
                Err(e) => return Err(e),
            };
            if !self.state.can_read() {
                return Err(Error::Protocol(ProtocolError::ReceivedAfterClosing));
            }
            if let Some(message) = self.message(header, payload)? {
                return Ok(message);
            }
        }
    }

    /// Turns a frame into a message (`None`: a fragment of one not complete yet).
    fn message(&mut self, header: FrameHeader, body: Body) -> Result<Option<Message>> {
        let payload = match body {
            Body::Bytes(payload) => payload,
            Body::Appended => {
                // A fragment read into the reassembly buffer (its opcode and the limit were
                // checked before).
                let fragments = self
                    .fragments
                    .as_mut()
                    .expect("a message being reassembled");
                fragments.check_text()?;
                if !header.is_final {
                    return Ok(None);
                }
                let fragments = self.fragments.take().expect("fragments");
                return fragments.complete(self.limits.max_message).map(Some);
            }
        };
        match header.opcode {
            OpCode::Control(Control::Close) => {
                Ok(self.received_close(payload)?.map(Message::Close))
            }
            OpCode::Control(Control::Ping) => {
                if self.state.can_write() {
                    self.queue_pong(payload.clone());
                }
                Ok(Some(Message::Ping(payload)))
            }
            OpCode::Control(Control::Pong) => Ok(Some(Message::Pong(payload))),
            OpCode::Control(Control::Reserved(i)) => {
                Err(Error::Protocol(ProtocolError::UnknownControlFrameType(i)))
            }
            OpCode::Data(Data::Reserved(i)) => {
                Err(Error::Protocol(ProtocolError::UnknownDataFrameType(i)))
            }
            OpCode::Data(Data::Continue) => {
                let Some(fragments) = &mut self.fragments else {
                    return Err(Error::Protocol(ProtocolError::UnexpectedContinueFrame));
                };
                fragments.extend(&payload, self.limits.max_message)?;
                if !header.is_final {
                    return Ok(None);
                }
                let fragments = self.fragments.take().expect("fragments");
                fragments.complete(self.limits.max_message).map(Some)
            }
            OpCode::Data(data) => {
                if self.fragments.is_some() {
                    return Err(Error::Protocol(ProtocolError::ExpectedFragment(data)));
                }
                let text = data == Data::Text;
                if !header.is_final {
                    let mut fragments = Fragments::new(text, &header);
                    fragments.extend(&payload, self.limits.max_message)?;
                    self.fragments = Some(Box::new(fragments));
                    return Ok(None);
                }
                too_long(payload.len(), self.limits.max_message)?;
                #[cfg(feature = "deflate")]
                if header.rsv1 {
                    return compressed::inflate(&payload, text, self.limits.max_message).map(Some);
                }
                Ok(Some(if text {
                    Message::Text(Utf8Bytes::try_from(payload)?)
                } else {
                    Message::Binary(payload)
                }))
            }
        }
    }

    /// The peer's Close: answers it (once) and says whether to report it.
    #[allow(clippy::option_option)]
    fn received_close(&mut self, payload: Bytes) -> Result<Option<Option<CloseFrame>>> {
        let frame = match payload.len() {
            0 => None,
            1 => return Err(Error::Protocol(ProtocolError::InvalidCloseSequence)),
            _ => Some(CloseFrame {
                code: CloseCode::from(u16::from_be_bytes([payload[0], payload[1]])),
                reason: Utf8Bytes::try_from(payload.slice(2..))?,
            }),
        };
        // A code a peer may not send is answered (and reported) as a protocol violation.
        let frame = frame.map(|f| {
            if f.code.is_allowed() {
                f
            } else {
                CloseFrame {
                    code: CloseCode::Protocol,
                    reason: Utf8Bytes::from_static("Protocol violation"),
                }
            }
        });
        Ok(
            match self
                .state
                .peer_closed(closing(frame.as_ref(), Closer::Peer))
            {
                PeerClose::First => {
                    // The reply goes before anything else owed: a pong is moot now.
                    self.pong = None;
                    self.push_close(frame.as_ref());
                    self.reply_due = true;
                    Some(frame)
                }
                PeerClose::Answer => Some(frame),
                PeerClose::Late => None,
            },
        )
    }

    /// Queues `message`; `WriteBufferFull` (with the message) when the unsent bytes would
    /// pass the bound. Writes nothing to the stream: see [`flush`](Self::flush).
    pub fn write(&mut self, message: Message) -> Result<()> {
        match self.state {
            CloseState::Terminated { .. } => return Err(Error::AlreadyClosed),
            CloseState::Open => {}
            _ => return Err(Error::Protocol(ProtocolError::SendAfterClosing)),
        }
        if let Message::Close(frame) = message {
            self.close(frame);
            return Ok(());
        }
        if self.unsent() + MAX_HEADER + message.len() > self.limits.max_write_buffer {
            return Err(Error::WriteBufferFull(Box::new(message)));
        }
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Data(Data::Text), Bytes::from(text)),
            Message::Binary(data) => (OpCode::Data(Data::Binary), data),
            Message::Ping(data) => (OpCode::Control(Control::Ping), data),
            Message::Pong(data) => (OpCode::Control(Control::Pong), data),
            Message::Frame(frame) => {
                let mut header = frame.header().clone();
                header.mask = None;
                self.push(&header, Payload::Owned(frame.into_payload()));
                return Ok(());
            }
            Message::Close(_) => unreachable!("handled above"),
        };
        #[cfg(feature = "deflate")]
        if self.push_compressed(opcode, &payload) {
            return Ok(());
        }
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        self.push(&header, Payload::Owned(payload));
        Ok(())
    }

    /// Queues our Close (once; later calls do nothing); the application reads on until
    /// the peer's answer. Control frames are not bounded by the write buffer: the close is
    /// never lost.
    pub fn close(&mut self, frame: Option<CloseFrame>) {
        if self
            .state
            .close_by_us(closing(frame.as_ref(), Closer::Us), true)
        {
            self.pong = None;
            self.push_close(frame.as_ref());
        }
    }

    /// Queues the server's Close with `code` (once; later calls do nothing): the
    /// application's reads are over.
    pub(crate) fn close_for_server(&mut self, code: CloseCode) {
        let closing = Closing::by_server(code);
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(closing.reason.clone()),
        };
        if self.state.close_by_us(closing, false) {
            self.pong = None;
            self.push_close(Some(&frame));
        }
        self.state.stop_gateway_reads();
    }

    /// Writes everything queued. `WouldBlock` while the stream takes no more;
    /// `ConnectionClosed` once the close handshake the peer started is answered.
    pub fn flush(&mut self, stream: &mut impl Write) -> Result<()> {
        loop {
            self.out.write_to(stream)?;
            match self.pong.take() {
                Some(data) => self.push_pong(&data),
                None => break,
            }
        }
        self.reply_due = false;
        if !self.state.can_read() {
            self.state.terminate(false, None);
            return Err(Error::ConnectionClosed);
        }
        stream.flush()?;
        Ok(())
    }

    fn queue_pong(&mut self, data: Bytes) {
        if self.unsent() + MAX_HEADER + data.len() > self.limits.max_write_buffer {
            self.pong = Some(data);
        } else {
            self.push_pong(&data);
        }
        self.reply_due = true;
    }

    fn push_pong(&mut self, data: &[u8]) {
        let header = FrameHeader {
            opcode: OpCode::Control(Control::Pong),
            ..FrameHeader::default()
        };
        self.push(&header, Payload::Borrowed(data));
    }

    fn push_close(&mut self, frame: Option<&CloseFrame>) {
        let header = FrameHeader {
            opcode: OpCode::Control(Control::Close),
            ..FrameHeader::default()
        };
        match frame {
            None => self.push(&header, Payload::Borrowed(&[])),
            Some(f) => {
                let mut payload = [0u8; 125];
                let reason = f.reason.as_bytes();
                let len = 2 + reason.len().min(123);
                payload[..2].copy_from_slice(&u16::from(f.code).to_be_bytes());
                payload[2..len].copy_from_slice(&reason[..len - 2]);
                self.push(&header, Payload::Borrowed(&payload[..len]));
            }
        }
    }

    /// Appends a frame to the write queue.
    fn push(&mut self, header: &FrameHeader, payload: Payload<'_>) {
        let len = match &payload {
            Payload::Owned(data) => data.len(),
            Payload::Borrowed(data) => data.len(),
        };
        let mut encoded = [0u8; MAX_HEADER];
        let used = header::encode(header, len as u64, &mut encoded);
        self.out.push(&encoded[..used], payload);
    }
}

/// The record of a Close frame (`None`: a Close without a status, 1005).
fn closing(frame: Option<&CloseFrame>, by: Closer) -> Closing {
    match frame {
        Some(f) => Closing::new(f.code, f.reason.as_str(), by),
        None => Closing::new(CloseCode::Status, "", by),
    }
}

impl std::fmt::Debug for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framing")
            .field("state", &self.state)
            .field("input", &self.input.buffered())
            .field("unsent", &self.unsent())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
