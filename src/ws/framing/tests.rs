//! Framing over an in-memory stream: RFC 6455 vectors, the buffer policy (what is held while
//! idle, how large payloads are read), the close handshake and the write bound.

use std::io::{self, IoSliceMut, Read, Write};

use tungstenite::error::{CapacityError, Error, ProtocolError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::{Ahead, Framing};
use crate::ws::WebSocketConfig;

/// Input handed out at most `chunk` bytes per read (`WouldBlock` when empty); records the
/// size of every read asked for and collects what is written.
pub(super) struct Stream {
    pub(super) input: Vec<u8>,
    pub(super) at: usize,
    chunk: usize,
    asked: Vec<usize>,
    pub(super) output: Vec<u8>,
    /// Writes answer `WouldBlock` while `false`.
    writable: bool,
}

impl Stream {
    pub(super) fn new(input: Vec<u8>, chunk: usize) -> Self {
        Stream {
            input,
            at: 0,
            chunk,
            asked: Vec::new(),
            output: Vec::new(),
            writable: true,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_vectored(&mut [IoSliceMut::new(buf)])
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.asked.push(bufs.iter().map(|b| b.len()).sum());
        if self.at == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut left = self.chunk.min(self.input.len() - self.at);
        let mut n = 0;
        for buf in bufs {
            let step = buf.len().min(left);
            buf[..step].copy_from_slice(&self.input[self.at + n..self.at + n + step]);
            n += step;
            left -= step;
        }
        self.at += n;
        Ok(n)
    }
}

/// What has "arrived" of the input, as `FIONREAD` tells a socket's: up to a chunk.
impl Ahead for Stream {
    fn available(&mut self) -> usize {
        self.chunk.min(self.input.len() - self.at)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.writable {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A masked client frame (`opcode` may carry the reserved bits: `0x40` is RSV1).
pub(super) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn framing() -> Framing {
    Framing::new(&[], &WebSocketConfig::default())
}

/// The default configuration with 1 MiB frames and messages (the default read buffer).
fn large_limits() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_frame_size(1 << 20)
        .max_message_size(1 << 20)
}

pub(super) fn would_block(e: &Error) -> bool {
    matches!(e, Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[test]
fn rfc6455_masked_hello_byte_by_byte_and_nothing_held_after() {
    // RFC 6455, section 5.7: a single-frame masked text message containing "Hello".
    let input = vec![
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut ws = framing();
    let mut stream = Stream::new(input, 1);
    let mut result = ws.read_from(&mut stream);
    while matches!(&result, Err(e) if would_block(e)) && stream.at < stream.input.len() {
        result = ws.read_from(&mut stream);
    }
    assert_eq!(result.unwrap(), Message::Text("Hello".into()));
    assert_eq!(ws.held(), 0);
    assert!(would_block(&ws.read_from(&mut stream).unwrap_err()));
    assert_eq!(ws.held(), 0);
}

#[test]
fn a_read_of_exactly_one_frame_gives_its_payload_and_keeps_nothing() {
    // Each read brings one whole frame (the chunk is the frame's size): the payload is
    // copied out of the scratch buffer alone; the limits and the RFC checks still apply.
    let frames = [
        (frame(true, 2, b"binary"), Message::binary(&b"binary"[..])),
        (frame(true, 9, b""), Message::Ping(Default::default())),
        (frame(true, 1, "ünï".as_bytes()), Message::text("ünï")),
    ];
    let mut ws = framing();
    for (bytes, expected) in frames {
        let mut stream = Stream::new(bytes.clone(), bytes.len());
        assert_eq!(ws.read_from(&mut stream).unwrap(), expected);
        assert_eq!(stream.asked.len(), 1);
        assert_eq!(ws.input.buffered(), 0);
    }
    type Check = fn(&Error) -> bool;
    let cases: [(Vec<u8>, Check); 4] = [
        (frame(true, 1, &[0xff]), |e| matches!(e, Error::Utf8(_))),
        (frame(true, 2, &[0; 16 * 1024 + 1]), |e| {
            matches!(e, Error::Capacity(CapacityError::MessageTooLong { .. }))
        }),
        (
            {
                let mut f = frame(true, 2, b"x");
                f[0] |= 0x40;
                f
            },
            |e| matches!(e, Error::Protocol(ProtocolError::NonZeroReservedBits)),
        ),
        (
            {
                let mut f = frame(false, 9, b"x");
                f[0] &= 0x7f;
                f
            },
            |e| matches!(e, Error::Protocol(ProtocolError::FragmentedControlFrame)),
        ),
    ];
    for (bytes, expected) in cases {
        let mut ws = framing();
        let mut stream = Stream::new(bytes.clone(), bytes.len());
        let e = ws.read_from(&mut stream).unwrap_err();
        assert!(expected(&e), "{e:?}");
    }
}

#[test]
fn pipelined_frames_behind_the_upgrade_head_then_in_one_read() {
    let mut ahead = frame(true, 1, b"first");
    ahead.extend(frame(true, 2, b"second"));
    let mut ws = Framing::new(&ahead, &WebSocketConfig::default());
    let mut input = frame(true, 1, b"third");
    input.extend(frame(true, 1, b"fourth"));
    let mut stream = Stream::new(input, usize::MAX);
    let mut got = Vec::new();
    while let Ok(message) = ws.read_from(&mut stream) {
        got.push(message);
    }
    assert_eq!(
        got,
        [
            Message::Text("first".into()),
            Message::Binary(b"second"[..].into()),
            Message::Text("third".into()),
            Message::Text("fourth".into()),
        ]
    );
    assert_eq!(ws.held(), 0);
}

#[test]
fn a_large_payload_is_read_into_its_own_buffer_with_large_reads() {
    let config = WebSocketConfig::default().max_frame_size(1 << 20);
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i * 7) as u8).collect();
    let mut ws = Framing::new(&[], &config);
    let mut stream = Stream::new(frame(true, 2, &payload), usize::MAX);
    assert_eq!(
        ws.read_from(&mut stream).unwrap(),
        Message::Binary(payload.into())
    );
    // One small read brings the header and the start, one more the rest of the payload.
    assert_eq!(stream.asked.len(), 2, "{:?}", stream.asked);
    assert_eq!(stream.asked[0], config.read_buffer_size);
    assert!(stream.asked[1] > 60 * 1024, "{:?}", stream.asked);
    assert_eq!(ws.held(), 0);
}

#[test]
fn large_fragments_are_read_straight_into_the_message() {
    // The default limits: 16 KiB frames, 64 KiB messages, 4 KiB reads.
    let text: String = "añb€".repeat(64 * 1024 / 7);
    let bytes = text.as_bytes();
    let chunks: Vec<&[u8]> = bytes.chunks(16 * 1024).collect();
    let mut input = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { 1 } else { 0 };
        input.extend(frame(i == chunks.len() - 1, opcode, chunk));
    }
    let mut ws = framing();
    let mut stream = Stream::new(input, usize::MAX);
    assert_eq!(
        ws.read_from(&mut stream).unwrap(),
        Message::Text(text.as_str().into())
    );
    // One 4 KiB read (the first header and start), then one per fragment: the rest of its
    // payload and the next header with the start of the next payload.
    assert_eq!(stream.asked.len(), chunks.len() + 1, "{:?}", stream.asked);
    assert_eq!(ws.held(), 0);
}

#[test]
fn frames_as_large_as_the_last_take_one_read_each() {
    // One 16 KiB frame at a time (the next sent after the reply): the first takes two
    // reads, each later one a single read asked for a whole frame of the last one's size.
    let mut ws = framing();
    let mut asked = Vec::new();
    for round in 0..3u8 {
        let payload = vec![round; 16 * 1024];
        let mut stream = Stream::new(frame(true, 2, &payload), usize::MAX);
        assert_eq!(
            ws.read_from(&mut stream).unwrap(),
            Message::Binary(payload.into())
        );
        asked.push(stream.asked);
    }
    assert_eq!(asked[0].len(), 2, "{asked:?}");
    assert_eq!(asked[1], [16 * 1024 + super::MAX_HEADER], "{asked:?}");
    assert_eq!(asked[2], [16 * 1024 + super::MAX_HEADER], "{asked:?}");
    // A small frame after them: read whole from the large read, and the next read is a
    // read buffer again.
    let mut stream = Stream::new([frame(true, 1, b"a"), frame(true, 1, b"b")].concat(), 3);
    assert_eq!(ws.read_from(&mut stream).unwrap(), Message::text("a"));
    assert_eq!(ws.read_from(&mut stream).unwrap(), Message::text("b"));
    assert_eq!(stream.asked[0], 16 * 1024 + super::MAX_HEADER);
    assert!(
        stream.asked[1..].iter().all(|&n| n == 4096),
        "{:?}",
        stream.asked
    );
    assert_eq!(ws.held(), 0);
}

#[test]
fn queued_large_frames_take_one_read_each() {
    let config = large_limits();
    let payloads: Vec<Vec<u8>> = (0..4u8)
        .map(|k| {
            (0..60 * 1024 + k as usize * 1000)
                .map(|i| (i as u8) ^ k)
                .collect()
        })
        .collect();
    let mut input = Vec::new();
    for p in &payloads {
        input.extend(frame(true, 2, p));
    }
    input.extend(frame(true, 1, b"small behind"));
    let mut ws = Framing::new(&[], &config);
    let mut stream = Stream::new(input, usize::MAX);
    for p in &payloads {
        assert_eq!(
            ws.read_from(&mut stream).unwrap(),
            Message::Binary(p.clone().into())
        );
    }
    assert_eq!(
        ws.read_from(&mut stream).unwrap(),
        Message::text("small behind")
    );
    // The first read brings a header and the start of the first payload; each later read
    // the rest of a payload and what follows it, up to one read buffer.
    assert_eq!(stream.asked.len(), 1 + payloads.len(), "{:?}", stream.asked);
    assert_eq!(stream.asked[0], config.read_buffer_size);
    assert!(would_block(&ws.read_from(&mut stream).unwrap_err()));
    assert_eq!(ws.held(), 0);
}

#[test]
fn large_fragments_after_the_first_take_one_read_each() {
    let config = large_limits();
    let data: Vec<u8> = (0..4 * 200_000).map(|i| (i % 251) as u8).collect();
    let mut input = Vec::new();
    for (i, chunk) in data.chunks(200_000).enumerate() {
        input.extend(frame(i == 3, if i == 0 { 2 } else { 0 }, chunk));
    }
    let mut ws = Framing::new(&[], &config);
    let mut stream = Stream::new(input, usize::MAX);
    assert_eq!(
        ws.read_from(&mut stream).unwrap(),
        Message::Binary(data.into())
    );
    // A read buffer, then one read per fragment: into the message's buffer, grown to what
    // the socket holds.
    assert_eq!(stream.asked.len(), 1 + 4, "{:?}", stream.asked);
    assert_eq!(ws.held(), 0);
}

/// A stream whose every read first drives another connection's framing on the same
/// thread (a tunnel): the scratch buffer must not be borrowed twice.
struct Tunnel {
    outer: Stream,
    inner: Framing,
    inner_stream: Stream,
    got: Vec<Message>,
}

impl Read for Tunnel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Ok(message) = self.inner.read(&mut self.inner_stream) {
            self.got.push(message);
        }
        self.outer.read(buf)
    }
}

impl Write for Tunnel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stream_that_reads_another_connection_in_its_read_works() {
    let mut inner_input = frame(true, 1, b"inner");
    inner_input.extend(frame(true, 1, b"again"));
    let mut tunnel = Tunnel {
        outer: Stream::new(frame(true, 2, &[5; 100]), 40),
        inner: framing(),
        inner_stream: Stream::new(inner_input, 7),
        got: Vec::new(),
    };
    let mut ws = framing();
    let mut result = ws.read(&mut tunnel);
    while matches!(&result, Err(e) if would_block(e)) {
        result = ws.read(&mut tunnel);
    }
    assert_eq!(result.unwrap(), Message::binary(vec![5; 100]));
    assert!(!tunnel.got.is_empty(), "the inner connection made progress");
}

#[test]
fn a_large_payload_arriving_in_pieces_ends_on_a_frame_boundary() {
    // Reads of several sizes: the tail read behind a payload's end keeps the bytes of the
    // next frame, however they are cut.
    let config = large_limits();
    let big: Vec<u8> = (0..70_000).map(|i| (i * 13) as u8).collect();
    let mut input = frame(true, 2, &big);
    input.extend(frame(true, 2, &big[..3]));
    input.extend(frame(true, 2, &big));
    let mut ws = Framing::new(&[], &config);
    for chunk in [1024, 4096 + 3, 65_536 - 1, 70_000 + 14 + 5] {
        let mut stream = Stream::new(input.clone(), chunk);
        let mut got = Vec::new();
        while got.len() < 3 {
            match ws.read_from(&mut stream) {
                Ok(m) => got.push(m),
                Err(e) if would_block(&e) => assert!(stream.at < stream.input.len()),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got[0], Message::Binary(big.clone().into()), "chunk {chunk}");
        assert_eq!(
            got[1],
            Message::Binary(big[..3].to_vec().into()),
            "chunk {chunk}"
        );
        assert_eq!(got[2], Message::Binary(big.clone().into()), "chunk {chunk}");
        assert_eq!(ws.held(), 0);
    }
}

#[test]
fn a_fragment_over_the_message_limit_fails_before_its_payload_is_read() {
    let mut input = Vec::new();
    for i in 0..4 {
        input.extend(frame(false, if i == 0 { 2 } else { 0 }, &[7; 16 * 1024]));
    }
    let before = input.len();
    input.extend(frame(true, 0, &[7; 16 * 1024]));
    let mut ws = framing();
    let mut stream = Stream::new(input, usize::MAX);
    assert!(matches!(
        ws.read_from(&mut stream),
        Err(Error::Capacity(CapacityError::MessageTooLong { .. }))
    ));
    assert!(stream.at <= before + 4096, "read {} of {before}", stream.at);
}

#[test]
fn invalid_utf8_in_a_large_fragment_fails_at_that_fragment() {
    let mut input = frame(false, 1, &[b'a'; 8 * 1024]);
    let mut bad = vec![b'b'; 8 * 1024];
    bad[100] = 0xff;
    input.extend(frame(false, 0, &bad));
    input.extend(frame(true, 0, &[b'c'; 8 * 1024]));
    let mut ws = framing();
    let mut stream = Stream::new(input, 6 * 1024);
    let mut result = ws.read_from(&mut stream);
    while matches!(&result, Err(e) if would_block(e)) && stream.at < stream.input.len() {
        result = ws.read_from(&mut stream);
    }
    assert!(matches!(result, Err(Error::Utf8(_))), "{result:?}");
    assert!(stream.at < 3 * 8 * 1024, "failed before the last fragment");
}

#[test]
fn a_large_header_commits_only_the_bytes_sent_until_half_a_read_arrived() {
    let config = WebSocketConfig::default()
        .max_frame_size(16 << 20)
        .max_message_size(16 << 20);
    for first in [true, false] {
        // A whole frame, or the first fragment of a message.
        let mut ws = Framing::new(&[], &config);
        let mut input = frame(first, 2, &vec![0; 16 << 20]);
        input.truncate(14 + 100);
        let mut stream = Stream::new(input, usize::MAX);
        assert!(would_block(&ws.read_from(&mut stream).unwrap_err()));
        assert!(ws.held() <= 1024, "{}", ws.held());
        // Half a read of payload: now a buffer of its own, growing with what arrives.
        let mut ws = Framing::new(&[], &config);
        let mut input = frame(first, 2, &vec![0; 16 << 20]);
        input.truncate(14 + 4000);
        let mut stream = Stream::new(input, usize::MAX);
        assert!(would_block(&ws.read_from(&mut stream).unwrap_err()));
        assert!(ws.held() <= 4 * 64 * 1024, "{}", ws.held());
    }
}

#[test]
fn fragments_reassemble_a_character_split_across_them() {
    let euro = "€".as_bytes(); // three bytes
    let mut input = frame(false, 1, &euro[..1]);
    input.extend(frame(true, 9, b"p")); // a ping between fragments
    input.extend(frame(false, 0, &euro[1..2]));
    input.extend(frame(true, 0, &euro[2..]));
    let mut ws = framing();
    let mut stream = Stream::new(input, 3);
    let mut got = Vec::new();
    loop {
        match ws.read_from(&mut stream) {
            Ok(message) => got.push(message),
            Err(e) if would_block(&e) && stream.at < stream.input.len() => {}
            Err(_) => break,
        }
    }
    assert_eq!(
        got,
        [Message::Ping(b"p"[..].into()), Message::Text("€".into())]
    );
    // The ping was answered.
    ws.flush(&mut stream).unwrap();
    assert_eq!(stream.output, [0x8a, 0x01, b'p']);
}

#[test]
fn invalid_utf8_fails_at_the_first_bad_fragment() {
    let mut input = frame(false, 1, b"ok \xff");
    input.extend(frame(true, 0, b"never read"));
    let mut ws = framing();
    let mut stream = Stream::new(input.clone(), 6 + 4);
    assert!(matches!(ws.read_from(&mut stream), Err(Error::Utf8(_))));
    assert_eq!(stream.at, 10, "failed before reading the next fragment");
    // In a single frame too.
    let mut ws = framing();
    let mut stream = Stream::new(frame(true, 1, b"\xc3\x28"), usize::MAX);
    assert!(matches!(ws.read_from(&mut stream), Err(Error::Utf8(_))));
}

#[test]
fn protocol_violations_and_limits() {
    type Expected = fn(&Error) -> bool;
    let cases: Vec<(Vec<u8>, Expected)> = vec![
        (vec![0x81, 0x02, b'h', b'i'], |e| {
            matches!(e, Error::Protocol(ProtocolError::UnmaskedFrameFromClient))
        }),
        (frame(true, 0x1 | 0x40, b"x"), |e| {
            matches!(e, Error::Protocol(ProtocolError::NonZeroReservedBits))
        }),
        (frame(false, 9, b""), |e| {
            matches!(e, Error::Protocol(ProtocolError::FragmentedControlFrame))
        }),
        (frame(true, 9, &[0; 126]), |e| {
            matches!(e, Error::Protocol(ProtocolError::ControlFrameTooBig))
        }),
        (frame(true, 0, b"x"), |e| {
            matches!(e, Error::Protocol(ProtocolError::UnexpectedContinueFrame))
        }),
        (frame(true, 3, b""), |e| {
            matches!(e, Error::Protocol(ProtocolError::InvalidOpcode(3)))
        }),
        (frame(true, 0xb, b""), |e| {
            matches!(e, Error::Protocol(ProtocolError::InvalidOpcode(11)))
        }),
        (frame(true, 8, b"\x03"), |e| {
            matches!(e, Error::Protocol(ProtocolError::InvalidCloseSequence))
        }),
        (frame(true, 2, &[0; 16 * 1024 + 1]), |e| {
            matches!(
                e,
                Error::Capacity(CapacityError::MessageTooLong {
                    size: 16385,
                    max_size: 16384
                })
            )
        }),
        (
            {
                let mut v = frame(false, 1, b"a");
                v.extend(frame(true, 1, b"b"));
                v
            },
            |e| matches!(e, Error::Protocol(ProtocolError::ExpectedFragment(_))),
        ),
    ];
    for (input, expected) in cases {
        let mut ws = framing();
        let err = ws
            .read(&mut Stream::new(input.clone(), usize::MAX))
            .unwrap_err();
        assert!(expected(&err), "{input:02x?}: {err:?}");
    }
}

#[test]
fn a_peer_close_is_answered_then_the_stream_ends() {
    let mut input = frame(true, 8, &[0x03, 0xe8, b'b', b'y', b'e']);
    input.extend(frame(true, 1, b"after close"));
    let mut ws = framing();
    let mut stream = Stream::new(input, usize::MAX);
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    assert_eq!(
        ws.read_from(&mut stream).unwrap(),
        Message::Close(Some(close))
    );
    assert!(!ws.can_write());
    assert!(matches!(
        ws.write(Message::Text("late".into())),
        Err(Error::Protocol(ProtocolError::SendAfterClosing))
    ));
    // The next read writes the echoed close and ends: nothing after a Close is read.
    assert!(matches!(
        ws.read_from(&mut stream),
        Err(Error::ConnectionClosed)
    ));
    assert_eq!(stream.output, [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
    assert!(matches!(
        ws.read_from(&mut stream),
        Err(Error::AlreadyClosed)
    ));
}

#[test]
fn a_close_with_a_reserved_code_is_answered_with_1002() {
    let mut ws = framing();
    let mut stream = Stream::new(frame(true, 8, &1005u16.to_be_bytes()), usize::MAX);
    let Message::Close(Some(reported)) = ws.read_from(&mut stream).unwrap() else {
        panic!("a close");
    };
    assert_eq!(reported.code, CloseCode::Protocol);
    let _ = ws.flush(&mut stream);
    assert_eq!(&stream.output[..4], [0x88, 20, 0x03, 0xea]);
}

#[test]
fn our_close_then_the_peers_reply() {
    let mut ws = framing();
    ws.close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "".into(),
    }));
    ws.close(None); // once only
    let mut stream = Stream::new(frame(true, 8, &1001u16.to_be_bytes()), usize::MAX);
    ws.flush(&mut stream).unwrap();
    assert_eq!(stream.output, [0x88, 0x02, 0x03, 0xe9]);
    assert!(matches!(
        ws.read_from(&mut stream).unwrap(),
        Message::Close(Some(_))
    ));
    assert!(matches!(
        ws.read_from(&mut stream),
        Err(Error::ConnectionClosed)
    ));
}

#[test]
fn a_full_write_buffer_gives_the_message_back_and_keeps_the_latest_pong() {
    let config = WebSocketConfig::default()
        .max_write_buffer_size(1024)
        .max_message_size(1024);
    // Bound: 1024 + max(1024, 1024) + 16 unsent bytes.
    let mut ws = Framing::new(&[], &config);
    let message = Message::Binary(vec![7; 1000].into());
    ws.write(message.clone()).unwrap();
    ws.write(message.clone()).unwrap();
    match ws.write(message.clone()) {
        Err(Error::WriteBufferFull(back)) => assert_eq!(*back, message),
        other => panic!("{other:?}"),
    }
    let mut pings = frame(true, 9, &[1; 100]);
    pings.extend(frame(true, 9, &[2; 100]));
    let mut stream = Stream::new(pings, usize::MAX);
    stream.writable = false;
    assert!(matches!(
        ws.read_from(&mut stream).unwrap(),
        Message::Ping(_)
    ));
    assert!(matches!(
        ws.read_from(&mut stream).unwrap(),
        Message::Ping(_)
    ));
    stream.writable = true;
    ws.flush(&mut stream).unwrap();
    // Two data frames, then one pong: the newer ping's.
    assert_eq!(stream.output.len(), 2 * (4 + 1000) + 2 + 100);
    assert_eq!(&stream.output[2008..2010], [0x8a, 100]);
    assert_eq!(stream.output[2010], 2);
    assert_eq!(ws.held(), 0);
}

#[test]
fn unmask_matches_the_bytewise_definition_at_every_length_and_offset() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    for len in 0..40 {
        let data: Vec<u8> = (0..len as u8).collect();
        let mut fast = data.clone();
        super::input::unmask(&mut fast, mask);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, slow, "len {len}");
    }
}

/// The bytes a framing holds after `sent` bytes of a frame (or message) announced as much
/// larger arrived, `chunk` bytes per read, through a stream that tells (`hinted`) what it
/// holds or not.
fn held_after(input: &[u8], sent: usize, chunk: usize, hinted: bool) -> usize {
    let limits = WebSocketConfig::default()
        .max_frame_size(16 << 20)
        .max_message_size(16 << 20);
    let mut ws = Framing::new(&[], &limits);
    let mut stream = Stream::new(input[..sent].to_vec(), chunk);
    loop {
        let read = if hinted {
            ws.read_from(&mut stream)
        } else {
            ws.read(&mut stream)
        };
        match read {
            Err(e) if would_block(&e) && stream.at == sent => return ws.held(),
            Err(e) if would_block(&e) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_frame_in_progress_holds_about_twice_what_arrived_of_it() {
    // An 8 MiB frame announced, 10 KB of it sent; a fragmented message likewise (its first
    // fragment announced as 8 MiB); arriving at once, or a kilobyte at a time.
    let big = vec![9u8; 8 << 20];
    let single = frame(true, 2, &big);
    let fragmented = [frame(false, 2, &big), frame(true, 0, b"end")].concat();
    for input in [&single, &fragmented] {
        for (chunk, hinted) in [
            (usize::MAX, false),
            (usize::MAX, true),
            (1024, false),
            (1024, true),
        ] {
            for sent in [100, 1024, 10 * 1024, 100 * 1024] {
                let held = held_after(input, sent, chunk, hinted);
                let bound = (sent * 5 / 2).max(4096 * 2);
                assert!(
                    held <= bound,
                    "{held} bytes held for {sent} sent (chunk {chunk}, hinted {hinted})"
                );
            }
        }
    }
}
