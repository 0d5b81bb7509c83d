//! RFC 6455 client framing for the bench: masked frame encoding (with optional
//! fragmentation) and a streaming decoder that needs no buffer for large payloads (but for
//! compressed messages, kept whole and inflated at their end).

use crate::compress::inflate;

const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;

/// Bytes of each reply's payload kept (unmasked) for the checks.
pub const KEEP: usize = 256;

/// Appends a masked client message to `out`, split into frames of at most `max_frame`
/// (`opcode` may carry RSV1: the first frame alone has it).
pub fn encode_message(
    out: &mut Vec<u8>,
    opcode: u8,
    payload: &[u8],
    mask: [u8; 4],
    max_frame: Option<usize>,
) {
    let step = max_frame.unwrap_or(usize::MAX).max(1);
    let mut chunks = payload.chunks(step).peekable();
    if chunks.peek().is_none() {
        encode_frame(out, 0x80 | opcode, &[], mask);
        return;
    }
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let fin = if chunks.peek().is_none() { 0x80 } else { 0 };
        let op = if first { opcode } else { OP_CONT };
        encode_frame(out, fin | op, chunk, mask);
        first = false;
    }
}

/// Appends one masked frame; `b0` is the first byte (FIN and opcode).
pub fn encode_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(b0);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// What the decoder found.
pub enum Frame<'a> {
    /// A whole message (fragments joined): opcode, length, first [`KEEP`] bytes.
    Message(u8, u64, &'a [u8]),
    /// A control frame and its payload.
    Control(u8, &'a [u8]),
}

/// A streaming decoder: parses headers (masked or not), keeps the first [`KEEP`] bytes of
/// each message (unmasked) and skips the rest, so messages of any size need no buffering.
/// A compressed message (RSV1 on its first frame) is kept whole and inflated at its end; one
/// that does not inflate is reported with the length 0 and no bytes.
#[derive(Default)]
pub struct Decoder {
    head: [u8; 14],
    head_len: usize,
    /// The current frame: first byte, mask, payload bytes seen, bytes still to come
    /// (`None` while reading a header).
    b0: u8,
    mask: Option<[u8; 4]>,
    pos: u64,
    remaining: Option<u64>,
    /// The current message.
    msg_opcode: u8,
    msg_len: u64,
    msg_keep: Vec<u8>,
    /// The current message is compressed: its payload so far.
    msg_packed: Option<Vec<u8>>,
    /// The current control frame's payload.
    control: Vec<u8>,
}

impl Decoder {
    pub fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        while !data.is_empty() {
            if let Some(remaining) = self.remaining {
                let take = remaining.min(data.len() as u64) as usize;
                self.payload(&data[..take]);
                data = &data[take..];
                self.end_of_payload(remaining - take as u64, &mut on_frame);
                continue;
            }
            // Header: 2 bytes, then the extended length and the mask key.
            let want = if self.head_len < 2 {
                2
            } else {
                header_len(self.head[1])
            };
            let take = (want - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
            self.head_len += take;
            data = &data[take..];
            if self.head_len < 2 || self.head_len < header_len(self.head[1]) {
                continue;
            }
            let head = &self.head[..self.head_len];
            self.b0 = head[0];
            let len: u64 = match head[1] & 0x7f {
                126 => u16::from_be_bytes([head[2], head[3]]).into(),
                127 => u64::from_be_bytes(head[2..10].try_into().unwrap_or_default()),
                n => n.into(),
            };
            self.mask = (head[1] & 0x80 != 0).then(|| {
                let m = &head[head.len() - 4..];
                [m[0], m[1], m[2], m[3]]
            });
            self.pos = 0;
            let opcode = self.b0 & 0x0f;
            if opcode & 0x8 == 0 && opcode != OP_CONT {
                self.msg_opcode = opcode;
                self.msg_len = 0;
                self.msg_keep.clear();
                self.msg_packed = (self.b0 & 0x40 != 0).then(Vec::new);
            }
            self.head_len = 0;
            self.end_of_payload(len, &mut on_frame);
        }
    }

    fn payload(&mut self, chunk: &[u8]) {
        let control = self.b0 & 0x8 != 0;
        let room = if control {
            125usize.saturating_sub(self.control.len())
        } else {
            KEEP.saturating_sub(self.msg_keep.len())
        };
        let (mask, pos) = (self.mask, self.pos);
        if let (false, Some(packed)) = (control, &mut self.msg_packed) {
            packed.extend(chunk.iter().enumerate().map(|(i, b)| match mask {
                Some(m) => b ^ m[(pos as usize + i) & 3],
                None => *b,
            }));
            self.pos += chunk.len() as u64;
            return;
        }
        let kept = &chunk[..chunk.len().min(room)];
        let unmasked = kept.iter().enumerate().map(|(i, b)| match mask {
            Some(m) => b ^ m[(pos as usize + i) & 3],
            None => *b,
        });
        if control {
            self.control.extend(unmasked);
        } else {
            self.msg_keep.extend(unmasked);
            self.msg_len += chunk.len() as u64;
        }
        self.pos += chunk.len() as u64;
    }

    fn end_of_payload(&mut self, remaining: u64, on_frame: &mut impl FnMut(Frame<'_>)) {
        if remaining > 0 {
            self.remaining = Some(remaining);
            return;
        }
        self.remaining = None;
        let opcode = self.b0 & 0x0f;
        if opcode & 0x8 != 0 {
            on_frame(Frame::Control(opcode, &self.control));
            self.control.clear();
        } else if self.b0 & 0x80 != 0 {
            if let Some(packed) = self.msg_packed.take() {
                let inflated = inflate(&packed).unwrap_or_default();
                self.msg_len = inflated.len() as u64;
                self.msg_keep.clear();
                self.msg_keep
                    .extend_from_slice(&inflated[..inflated.len().min(KEEP)]);
            }
            on_frame(Frame::Message(
                self.msg_opcode,
                self.msg_len,
                &self.msg_keep,
            ));
        }
    }
}

/// Header length from its second byte: 2, the extended length, the mask key if any.
fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}
