//! RFC 6455 framing (server side) over a byte stream that may answer `WouldBlock`, with
//! buffers that cost nothing while a connection is idle.
//!
//! Same contract as tungstenite's sans-I/O `WebSocketContext` (same messages, errors and
//! close handshake; its frame-header codec is reused), with a different buffer policy:
//! - small reads land in one per-thread scratch buffer and only the bytes received are
//!   kept, in a buffer of their size, released once its frames are parsed;
//! - a payload larger than `read_buffer_size` is read straight into a buffer of its own,
//!   with reads as large as the bytes still missing; the buffer starts at 64 KiB (or the
//!   payload's size, if smaller) and at most doubles as bytes arrive, so that a header alone
//!   does not commit the whole announced size;
//! - the write buffer is released once the socket took it all.

use std::cell::RefCell;
use std::io::{self, Cursor, Read, Write};

use bytes::{Buf, Bytes, BytesMut};
use tungstenite::error::{CapacityError, Error, ProtocolError, Result};
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{FrameHeader, Utf8Bytes};
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::config::WebSocketConfig;

mod output;

use output::{Output, Payload};

/// The largest frame header (2 + 8 bytes of length + 4 of mask).
const MAX_HEADER: usize = 14;

/// Where the close handshake is (tungstenite's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    ClosedByUs,
    ClosedByPeer,
    CloseAcknowledged,
    Terminated,
}

impl State {
    fn can_read(self) -> bool {
        matches!(self, State::Active | State::ClosedByUs)
    }
}

/// The limits a connection frames under.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Bytes asked of the stream per read while no large payload is being read.
    read_buffer: usize,
    /// Largest accepted frame payload.
    max_frame: usize,
    /// Largest accepted message (after reassembly).
    max_message: usize,
    /// Unsent bytes beyond which `write` answers `WriteBufferFull`.
    max_write_buffer: usize,
}

/// A fragmented message being reassembled.
struct Fragments {
    text: bool,
    data: Vec<u8>,
    /// Text: length of the prefix known to be valid UTF-8.
    checked: usize,
}

/// A payload larger than a read, being read into its own buffer.
struct Large {
    /// The payload goes to `buf[start..start + len]`: `start` is 0 for a payload of its
    /// own, the bytes already reassembled for a fragment of a message.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// The buffer is the message's reassembly buffer (it goes back there when complete).
    fragment: bool,
}

/// A frame's payload as read.
enum Body {
    Bytes(Bytes),
    /// Appended to the message's reassembly buffer.
    Appended,
}

/// The server side of a WebSocket connection's framing: what each connection runs, public
/// (hidden) for the fuzz targets and the framing tests.
pub struct Framing {
    state: State,
    limits: Limits,
    /// Received bytes not parsed yet; holds no allocation when empty.
    input: BytesMut,
    /// The header of the frame whose payload is being read, and the payload's length.
    header: Option<(FrameHeader, usize)>,
    large: Option<Large>,
    fragments: Option<Fragments>,
    /// Frames not yet written; holds no allocation once flushed.
    out: Output,
    /// A pong owed while the write buffer was full (a newer ping replaces it).
    pong: Option<Bytes>,
    /// A pong or close reply was queued: `read` tries to write it.
    reply_due: bool,
}

thread_local! {
    /// Where reads of small frames land before their bytes are kept.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Framing {
    /// Framing for a connection whose first bytes (read with the upgrade request) are
    /// `read_ahead`.
    pub fn new(read_ahead: &[u8], config: &WebSocketConfig) -> Self {
        Framing {
            state: State::Active,
            limits: Limits {
                read_buffer: config.read_buffer_size.max(MAX_HEADER),
                max_frame: config.max_frame_size,
                max_message: config.max_message_size,
                // The bound may be passed by one frame, so that a message larger than the
                // bound can still be sent.
                max_write_buffer: config.max_write_buffer_size
                    + config.max_write_buffer_size.max(config.max_message_size)
                    + 16,
            },
            input: if read_ahead.is_empty() {
                BytesMut::new()
            } else {
                BytesMut::from(read_ahead)
            },
            header: None,
            large: None,
            fragments: None,
            out: Output::default(),
            pong: None,
            reply_due: false,
        }
    }

    /// Whether messages can still be sent (no Close sent or received).
    pub fn can_write(&self) -> bool {
        self.state == State::Active
    }

    /// Bytes of buffer held (input, partial payloads, output).
    pub fn held(&self) -> usize {
        self.input.capacity()
            + self.large.as_ref().map_or(0, |l| l.buf.capacity())
            + self.fragments.as_ref().map_or(0, |f| f.data.capacity())
            + self.out.held()
    }

    /// Reads the next message. `WouldBlock` (as `Error::Io`) when the stream has no more
    /// bytes for now; pongs and close replies are queued (and written by the next flush).
    pub fn read(&mut self, stream: &mut (impl Read + Write)) -> Result<Message> {
        if self.state == State::Terminated {
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
                self.state = State::Terminated;
                return Err(Error::ConnectionClosed);
            }
            let (header, payload) = match self.read_frame(stream) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    let state = std::mem::replace(&mut self.state, State::Terminated);
                    return Err(match state {
                        State::ClosedByPeer | State::CloseAcknowledged => Error::ConnectionClosed,
                        _ => Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
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
                return fragments.complete().map(Some);
            }
        };
        match header.opcode {
            OpCode::Control(Control::Close) => {
                Ok(self.received_close(payload)?.map(Message::Close))
            }
            OpCode::Control(Control::Ping) => {
                if self.state == State::Active {
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
                fragments.complete().map(Some)
            }
            OpCode::Data(data) => {
                if self.fragments.is_some() {
                    return Err(Error::Protocol(ProtocolError::ExpectedFragment(data)));
                }
                let text = data == Data::Text;
                if !header.is_final {
                    let mut fragments = Fragments {
                        text,
                        data: Vec::new(),
                        checked: 0,
                    };
                    fragments.extend(&payload, self.limits.max_message)?;
                    self.fragments = Some(fragments);
                    return Ok(None);
                }
                too_long(payload.len(), self.limits.max_message)?;
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
        Ok(match self.state {
            State::Active => {
                self.state = State::ClosedByPeer;
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
                // The reply goes before anything else owed: a pong is moot now.
                self.pong = None;
                self.push_close(frame.as_ref());
                self.reply_due = true;
                Some(frame)
            }
            State::ClosedByUs => {
                self.state = State::CloseAcknowledged;
                Some(frame)
            }
            State::ClosedByPeer | State::CloseAcknowledged | State::Terminated => None,
        })
    }

    /// The next complete frame (payload unmasked); `None` at the end of the stream.
    fn read_frame(&mut self, stream: &mut impl Read) -> Result<Option<(FrameHeader, Body)>> {
        loop {
            if self.header.is_none() {
                self.parse_header()?;
            }
            if let Some((_, len)) = self.header {
                if let Some(large) = &mut self.large {
                    if large.filled == large.start + len {
                        return Ok(Some(self.finish_large()));
                    }
                    let n = large.read(stream, len)?;
                    if n == 0 {
                        return Ok(None);
                    }
                    continue;
                }
                if self.input.len() == len {
                    // The usual case: the read brought one frame; its buffer becomes the
                    // payload (no split, no copy).
                    let payload = std::mem::take(&mut self.input);
                    return Ok(Some(self.finish_frame(payload)));
                }
                if self.input.len() > len {
                    let payload = self.input.split_to(len);
                    return Ok(Some(self.finish_frame(payload)));
                }
                if len > self.limits.read_buffer {
                    // Too large for a read: read straight into a buffer of its own, or into
                    // the message's reassembly buffer for a fragment.
                    let (mut buf, fragment) = match self.fragment_buffer(len)? {
                        Some(buf) => (buf, true),
                        None => (Vec::new(), false),
                    };
                    let start = buf.len();
                    buf.extend_from_slice(&self.input);
                    self.input = BytesMut::new();
                    self.large = Some(Large {
                        filled: buf.len(),
                        buf,
                        start,
                        fragment,
                    });
                    continue;
                }
            }
            if self.fill(stream)? == 0 {
                return Ok(None);
            }
        }
    }

    /// Parses the next frame header out of `input` (if complete) and checks it.
    fn parse_header(&mut self) -> Result<()> {
        let mut cursor = Cursor::new(&self.input[..]);
        let Some((header, len)) = FrameHeader::parse(&mut cursor)? else {
            return Ok(());
        };
        let used = cursor.position() as usize;
        self.input.advance(used);
        if self.input.is_empty() {
            self.input = BytesMut::new();
        }
        if len > self.limits.max_frame as u64 {
            return Err(Error::Capacity(CapacityError::MessageTooLong {
                size: usize::try_from(len).unwrap_or(usize::MAX),
                max_size: self.limits.max_frame,
            }));
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(Error::Protocol(ProtocolError::NonZeroReservedBits));
        }
        if header.mask.is_none() {
            return Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient));
        }
        if let OpCode::Control(_) = header.opcode {
            if !header.is_final {
                return Err(Error::Protocol(ProtocolError::FragmentedControlFrame));
            }
            if len > 125 {
                return Err(Error::Protocol(ProtocolError::ControlFrameTooBig));
            }
        }
        self.header = Some((header, len as usize));
        Ok(())
    }

    /// Unmasks the payload of the frame just read and hands it over.
    fn finish_frame<P: AsMut<[u8]> + Into<Bytes>>(
        &mut self,
        mut payload: P,
    ) -> (FrameHeader, Body) {
        let (mut header, _) = self.header.take().expect("a frame header");
        if let Some(mask) = header.mask.take() {
            unmask(payload.as_mut(), mask);
        }
        (header, Body::Bytes(payload.into()))
    }

    /// The large payload just read, unmasked.
    fn finish_large(&mut self) -> (FrameHeader, Body) {
        let Large {
            mut buf,
            start,
            fragment,
            ..
        } = self.large.take().expect("a large payload");
        let (mut header, _) = self.header.take().expect("a frame header");
        if let Some(mask) = header.mask.take() {
            unmask(&mut buf[start..], mask);
        }
        if fragment {
            let fragments = self
                .fragments
                .as_mut()
                .expect("a message being reassembled");
            fragments.data = buf;
            (header, Body::Appended)
        } else {
            (header, Body::Bytes(Bytes::from(buf)))
        }
    }

    /// For a large fragment of a message (the first or a continuation), the message's
    /// reassembly buffer to read it into, once the message limit allows it.
    fn fragment_buffer(&mut self, len: usize) -> Result<Option<Vec<u8>>> {
        let (header, _) = self.header.as_ref().expect("a frame header");
        let fragments = match (header.opcode, &mut self.fragments) {
            (OpCode::Data(Data::Continue), Some(fragments)) => fragments,
            (OpCode::Data(data @ (Data::Text | Data::Binary)), None) if !header.is_final => {
                // Room for a few fragments of this size up front: fewer reallocations, and
                // memory is committed only as bytes arrive.
                let room = len.saturating_mul(4).min(self.limits.max_message);
                self.fragments.insert(Fragments {
                    text: data == Data::Text,
                    data: Vec::with_capacity(room),
                    checked: 0,
                })
            }
            _ => return Ok(None),
        };
        too_long(
            fragments.data.len().saturating_add(len),
            self.limits.max_message,
        )?;
        Ok(Some(std::mem::take(&mut fragments.data)))
    }

    /// Reads up to `read_buffer` bytes into `input` (through the thread's scratch buffer,
    /// so that only the bytes received are allocated).
    fn fill(&mut self, stream: &mut impl Read) -> io::Result<usize> {
        let want = self.limits.read_buffer.max(MAX_HEADER);
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.len() < want {
                scratch.resize(want, 0);
            }
            let n = stream.read(&mut scratch[..want])?;
            if self.input.is_empty() {
                self.input = BytesMut::from(&scratch[..n]);
            } else {
                self.input.extend_from_slice(&scratch[..n]);
            }
            Ok(n)
        })
    }

    /// Queues `message`; `WriteBufferFull` (with the message) when the unsent bytes would
    /// pass the bound. Writes nothing to the stream: see [`flush`](Self::flush).
    pub fn write(&mut self, message: Message) -> Result<()> {
        match self.state {
            State::Terminated => return Err(Error::AlreadyClosed),
            State::Active => {}
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
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        self.push(&header, Payload::Owned(payload));
        Ok(())
    }

    /// Queues our Close (once; later calls do nothing). Control frames are not bounded by
    /// the write buffer: the close is never lost.
    pub fn close(&mut self, frame: Option<CloseFrame>) {
        if self.state == State::Active {
            self.state = State::ClosedByUs;
            self.pong = None;
            self.push_close(frame.as_ref());
        }
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
            self.state = State::Terminated;
            return Err(Error::ConnectionClosed);
        }
        stream.flush()?;
        Ok(())
    }

    fn unsent(&self) -> usize {
        self.out.unsent()
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
        let mut encoded = Cursor::new([0u8; MAX_HEADER]);
        header
            .format(len as u64, &mut encoded)
            .expect("a header fits in 14 bytes");
        let used = encoded.position() as usize;
        self.out.push(&encoded.get_ref()[..used], payload);
    }
}

impl std::fmt::Debug for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framing")
            .field("state", &self.state)
            .field("input", &self.input.len())
            .field("unsent", &self.unsent())
            .finish_non_exhaustive()
    }
}

impl Large {
    /// Reads more of a `len`-byte payload, growing the buffer with the bytes received (at
    /// most doubling), so that a header alone commits no memory.
    fn read(&mut self, stream: &mut impl Read, len: usize) -> io::Result<usize> {
        if self.buf.len() == self.filled {
            let end = self.start + len;
            let target = end.min((self.filled * 2).max(self.start + 64 * 1024));
            self.buf.resize(target, 0);
        }
        let n = stream.read(&mut self.buf[self.filled..])?;
        self.filled += n;
        Ok(n)
    }
}

impl Fragments {
    /// Appends a continuation, enforcing the message limit and failing fast on bad UTF-8.
    fn extend(&mut self, tail: &[u8], max: usize) -> Result<()> {
        let size = self.data.len();
        if size > max || tail.len() > max - size {
            return Err(Error::Capacity(CapacityError::MessageTooLong {
                size: size + tail.len(),
                max_size: max,
            }));
        }
        self.data.extend_from_slice(tail);
        self.check_text()
    }

    /// Text: checks the bytes appended since the last check (failing fast on bad UTF-8).
    fn check_text(&mut self) -> Result<()> {
        if self.text {
            match std::str::from_utf8(&self.data[self.checked..]) {
                Ok(_) => self.checked = self.data.len(),
                Err(e) if e.error_len().is_some() => return Err(e.into()),
                // An incomplete character at the end: the next fragment may finish it.
                Err(e) => self.checked += e.valid_up_to(),
            }
        }
        Ok(())
    }

    fn complete(self) -> Result<Message> {
        if self.text {
            let text = String::from_utf8(self.data)?;
            Ok(Message::Text(Utf8Bytes::from(text)))
        } else {
            Ok(Message::Binary(Bytes::from(self.data)))
        }
    }
}

fn too_long(size: usize, max_size: usize) -> Result<()> {
    if size > max_size {
        return Err(Error::Capacity(CapacityError::MessageTooLong {
            size,
            max_size,
        }));
    }
    Ok(())
}

/// XORs `buf` with the 4-byte `mask`, eight bytes at a time.
fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests;
