//! Received bytes to frames: small reads land in one per-thread scratch buffer and only the
//! bytes received are kept (released once parsed; a read of exactly one frame keeps only its
//! payload); a payload larger than a read is read straight into a buffer of its own, or into
//! its message's reassembly buffer, once half a read of it arrived (so a header alone
//! commits only the bytes sent). That buffer grows with what has arrived, never to a size
//! the peer only announced: by what the socket already holds (`FIONREAD`, when the stream
//! tells, read in place), or else by what a read through the scratch buffer brings (kept as
//! a `Vec` grows), so a frame in progress holds at most about twice its bytes received. The read that completes it also takes the bytes
//! behind it (`readv`), so queued frames take one read each once the socket holds them. A
//! read that starts a frame asks for a whole frame as large as the last one when that is
//! larger than a read (up to 32 KiB), so frames of such a size sent one at a time take one
//! read each too.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};

use bytes::{Buf, Bytes, BytesMut};
use tungstenite::error::{CapacityError, Error, ProtocolError, Result};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::fragments::{too_long, Fragments};
use super::header;
use super::{Ahead, Limits, MAX_HEADER};

thread_local! {
    /// Where reads of small frames land before their bytes are kept.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Largest read asked for a whole frame as large as the connection's last one (see
/// [`first_read`]).
const WHOLE_READ_MAX: usize = 32 * 1024;

#[derive(Default)]
pub(super) struct Input {
    /// Received bytes not parsed yet; holds no allocation when empty.
    buf: BytesMut,
    /// The header of the frame whose payload is being read, and the payload's length.
    header: Option<(FrameHeader, usize)>,
    large: Option<Box<Large>>,
    /// The payload length of the last frame read (sizes the next first read).
    last_len: usize,
}

/// A payload larger than a read, being read into a buffer of its own.
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
pub(super) enum Body {
    Bytes(Bytes),
    /// Appended to the message's reassembly buffer.
    Appended,
}

impl Input {
    pub(super) fn new(read_ahead: &[u8]) -> Self {
        Input {
            buf: BytesMut::from(read_ahead),
            ..Input::default()
        }
    }

    /// Bytes of buffer held.
    pub(super) fn held(&self) -> usize {
        self.buf.capacity() + self.large.as_ref().map_or(0, |l| l.buf.capacity())
    }

    /// Bytes of a frame are buffered, or its payload is being read.
    pub(super) fn partial(&self) -> bool {
        !self.buf.is_empty() || self.header.is_some()
    }

    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame (payload unmasked); `None` at the end of the stream,
    /// `WouldBlock` (as `Error::Io`) while it is incomplete.
    pub(super) fn next_frame(
        &mut self,
        stream: &mut impl Ahead,
        limits: &Limits,
        fragments: &mut Option<Box<Fragments>>,
    ) -> Result<Option<(FrameHeader, Body)>> {
        loop {
            if self.header.is_none() {
                self.parse_header(limits)?;
            }
            if let Some((_, len)) = self.header {
                if let Some(large) = &mut self.large {
                    if large.filled == large.start + len {
                        return Ok(Some(self.finish_large(fragments)));
                    }
                    if large.read(stream, len, &mut self.buf, limits.read_buffer)? == 0 {
                        return Ok(None);
                    }
                    continue;
                }
                if self.buf.len() == len {
                    // The usual case: the read brought one frame; its buffer becomes the
                    // payload (no split, no copy).
                    let payload = std::mem::take(&mut self.buf);
                    return Ok(Some(self.finish(payload)));
                }
                if self.buf.len() > len {
                    let payload = self.buf.split_to(len);
                    return Ok(Some(self.finish(payload)));
                }
                if len > limits.read_buffer && self.buf.len() >= limits.read_buffer / 2 {
                    // Too large for a read: read straight into a buffer of its own, or into
                    // the message's reassembly buffer for a fragment. Only once half a read
                    // of its payload came in: a header alone commits no large buffer.
                    let (mut buf, fragment) = match self.fragment_buffer(len, limits, fragments)? {
                        Some(buf) => (buf, true),
                        None => (Vec::new(), false),
                    };
                    let start = buf.len();
                    // Room for what arrived and what the socket holds (see `Large::read`).
                    let room = (start + len).min(self.buf.len() + stream.available());
                    buf.reserve_exact(room);
                    buf.extend_from_slice(&self.buf);
                    self.buf = BytesMut::new();
                    self.large = Some(Box::new(Large {
                        filled: buf.len(),
                        buf,
                        start,
                        fragment,
                    }));
                    continue;
                }
            }
            match self.fill(stream, limits)? {
                Filled::Bytes(0) => return Ok(None),
                Filled::Bytes(_) => {}
                Filled::Frame(payload) => return Ok(Some(self.finish(payload))),
            }
        }
    }

    /// Parses the next frame header out of `buf` (if complete) and checks it.
    fn parse_header(&mut self, limits: &Limits) -> Result<()> {
        let Some((header, len, used)) = header::decode(&self.buf)? else {
            return Ok(());
        };
        self.buf.advance(used);
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        let len = check(&header, len, limits)?;
        self.header = Some((header, len));
        Ok(())
    }

    /// Unmasks the payload of the frame just read and hands it over.
    fn finish<P: AsMut<[u8]> + Into<Bytes>>(&mut self, mut payload: P) -> (FrameHeader, Body) {
        let (mut header, _) = self.header.take().expect("a frame header");
        self.last_len = payload.as_mut().len();
        if let Some(mask) = header.mask.take() {
            unmask(payload.as_mut(), mask);
        }
        (header, Body::Bytes(payload.into()))
    }

    /// The large payload just read, unmasked.
    fn finish_large(&mut self, fragments: &mut Option<Box<Fragments>>) -> (FrameHeader, Body) {
        let Large {
            mut buf,
            start,
            fragment,
            ..
        } = *self.large.take().expect("a large payload");
        let (mut header, _) = self.header.take().expect("a frame header");
        self.last_len = buf.len() - start;
        if let Some(mask) = header.mask.take() {
            unmask(&mut buf[start..], mask);
        }
        if fragment {
            let fragments = fragments.as_mut().expect("a message being reassembled");
            fragments.data = buf;
            (header, Body::Appended)
        } else {
            (header, Body::Bytes(Bytes::from(buf)))
        }
    }

    /// For a large fragment of a message (the first or a continuation), the message's
    /// reassembly buffer to read it into, once the message limit allows it.
    fn fragment_buffer(
        &mut self,
        len: usize,
        limits: &Limits,
        fragments: &mut Option<Box<Fragments>>,
    ) -> Result<Option<Vec<u8>>> {
        let (header, _) = self.header.as_ref().expect("a frame header");
        let fragments = match (header.opcode, fragments) {
            (OpCode::Data(Data::Continue), Some(fragments)) => fragments,
            (OpCode::Data(data @ (Data::Text | Data::Binary)), slot @ None) if !header.is_final => {
                // Its buffer grows as the fragments arrive (see `Large::read`).
                slot.insert(Box::new(Fragments::new(data == Data::Text, header)))
            }
            _ => return Ok(None),
        };
        too_long(fragments.data.len().saturating_add(len), limits.max_message)?;
        Ok(Some(std::mem::take(&mut fragments.data)))
    }

    /// Reads up to a read buffer of bytes (at least a frame header, see
    /// `Limits::read_buffer`), or [`first_read`]'s whole frame when nothing is buffered, into
    /// `buf`, through the thread's scratch buffer, so that only the bytes received are
    /// allocated. When the read brought exactly one whole frame and
    /// nothing was buffered (the usual case with one request in flight), the frame's header
    /// is taken and its payload alone copied out: [`Filled::Frame`].
    fn fill(&mut self, stream: &mut impl Ahead, limits: &Limits) -> Result<Filled> {
        let want = if self.partial() {
            limits.read_buffer
        } else {
            first_read(limits.read_buffer, self.last_len)
        };
        with_scratch(want, |scratch| {
            let n = stream.read(scratch)?;
            let got = &scratch[..n];
            if !self.buf.is_empty() {
                self.buf.extend_from_slice(got);
                return Ok(Filled::Bytes(n));
            }
            if self.header.is_none() {
                if let Some((header, len, used)) = header::decode(got)? {
                    if len == (n - used) as u64 {
                        let len = check(&header, len, limits)?;
                        self.header = Some((header, len));
                        return Ok(Filled::Frame(got[used..].to_vec()));
                    }
                }
            }
            self.buf = BytesMut::from(got);
            Ok(Filled::Bytes(n))
        })
    }
}

/// What [`Input::fill`] read.
enum Filled {
    /// This many bytes, now in `Input::buf`.
    Bytes(usize),
    /// The payload of a whole frame (still masked), whose header is `Input::header`.
    Frame(Vec<u8>),
}

impl Large {
    /// Reads more of a `len`-byte payload into the buffer, grown (once it is full) to hold
    /// what the socket already holds, or else twice what arrived ([`grown`]): a peer that
    /// only announced a large frame commits no more than it sent. The read that can
    /// complete the payload also takes up to `tail_max` bytes behind it (the next frame's
    /// header and first bytes) into `tail`, through the thread's scratch buffer: the last
    /// read of a payload is also the first of the next frame.
    fn read(
        &mut self,
        stream: &mut impl Ahead,
        len: usize,
        tail: &mut BytesMut,
        tail_max: usize,
    ) -> io::Result<usize> {
        let end = self.start + len;
        if self.buf.len() == self.filled {
            let available = stream.available();
            if available == 0 {
                // Nothing known to be waiting: a read's worth through the scratch buffer,
                // and only what arrives is kept (the buffer grows as a `Vec` does, to at
                // most twice what it holds).
                let want = tail_max.min(end - self.filled);
                return with_scratch(want, |scratch| {
                    let n = stream.read(scratch)?;
                    self.buf.extend_from_slice(&scratch[..n]);
                    self.filled += n;
                    Ok(n)
                });
            }
            // Room for what the socket holds, read in place.
            let room = end.min(self.filled + available);
            self.buf.reserve_exact(room - self.buf.len());
            self.buf.resize(room, 0);
        }
        if self.buf.len() < end {
            let n = stream.read(&mut self.buf[self.filled..])?;
            self.filled += n;
            return Ok(n);
        }
        debug_assert!(
            tail.is_empty(),
            "a large payload is read with nothing buffered"
        );
        with_scratch(tail_max, |scratch| {
            let rest = end - self.filled;
            let mut bufs = [
                IoSliceMut::new(&mut self.buf[self.filled..end]),
                IoSliceMut::new(scratch),
            ];
            let n = stream.read_vectored(&mut bufs)?.min(rest + tail_max);
            self.filled += n.min(rest);
            if n > rest {
                *tail = BytesMut::from(&scratch[..n - rest]);
            }
            Ok(n)
        })
    }
}

/// Checks a client frame's header against RFC 6455 and the limits; its payload length.
fn check(header: &FrameHeader, len: u64, limits: &Limits) -> Result<usize> {
    if len > limits.max_frame as u64 {
        return Err(Error::Capacity(CapacityError::MessageTooLong {
            size: usize::try_from(len).unwrap_or(usize::MAX),
            max_size: limits.max_frame,
        }));
    }
    let reserved = header.rsv1 || header.rsv2 || header.rsv3;
    #[cfg(feature = "deflate")]
    let reserved = reserved && !super::compressed::starts_compressed(header, limits);
    if reserved {
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
    Ok(len as usize)
}

/// The size of a read that starts a frame: a read buffer, or a whole frame as large as the
/// last one when that is larger and at most [`WHOLE_READ_MAX`] (the thread's scratch buffer
/// takes it, and only the bytes received are kept), so that frames of a steady size larger
/// than a read buffer, one at a time, take one read each instead of two.
fn first_read(read_buffer: usize, last_len: usize) -> usize {
    let whole = last_len + MAX_HEADER;
    if whole > read_buffer && whole <= WHOLE_READ_MAX {
        whole
    } else {
        read_buffer
    }
}

/// Runs `read` on the first `want` bytes of the thread's scratch buffer. The buffer is out
/// of its cell meanwhile: a stream whose read drives another connection's framing on this
/// thread (a tunnel) gets a scratch buffer of its own instead of a double borrow.
fn with_scratch<R>(want: usize, read: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut scratch = SCRATCH.take();
    if scratch.len() < want {
        scratch.resize(want, 0);
    }
    let result = read(&mut scratch[..want]);
    SCRATCH.set(scratch);
    result
}

/// XORs `buf` with the 4-byte `mask`: 32 bytes at a time against the mask repeated where
/// the compiler turns that into vector XORs (x86_64's SSE2, aarch64's NEON), eight bytes at
/// a time in a `u64` elsewhere (ARMv7 without NEON, ARMv5, MIPS: a byte loop would be
/// several times slower there).
pub(super) fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let buf = {
        let mut wide = [0u8; 32];
        for (i, b) in wide.iter_mut().enumerate() {
            *b = mask[i & 3];
        }
        let mut blocks = buf.chunks_exact_mut(32);
        for block in &mut blocks {
            for (b, m) in block.iter_mut().zip(wide) {
                *b ^= m;
            }
        }
        // The rest starts at a multiple of 32: the mask's phase is unchanged.
        blocks.into_remainder()
    };
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
