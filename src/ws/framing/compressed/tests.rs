//! Framing with `permessage-deflate` agreed, over the in-memory stream of the framing tests:
//! RFC 7692's examples, RSV1 where it is and is not allowed, fragmented and large compressed
//! messages, bombs and corrupt data, and what is compressed on sending.

use tungstenite::error::{CapacityError, Error, ProtocolError};
use tungstenite::Message;

use super::super::tests::{frame, would_block, Stream};
use super::super::Framing;
use super::CORRUPT;
use crate::ws::deflate::{compress, inflate};
use crate::ws::{Compression, Extensions, Headers, WebSocketConfig};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const RSV1: u8 = 0x40;

/// A framing that agreed to `offer` under `config`.
fn agreed_with(config: &WebSocketConfig, offer: &str) -> Framing {
    let mut ws = Framing::new(&[], config);
    let headers = Headers::from_pairs([("Sec-WebSocket-Extensions", offer)]);
    let extensions = Extensions::negotiate(config, &headers);
    assert!(extensions.deflate.is_some(), "{offer} agreed");
    ws.agree(extensions);
    ws
}

/// The default configuration, `permessage-deflate` agreed.
fn agreed() -> Framing {
    agreed_with(&WebSocketConfig::default(), "permessage-deflate")
}

/// Reads every message of `input` (`chunk` bytes per read) until the input is used up or
/// an error other than `WouldBlock`.
fn read_all(ws: &mut Framing, input: Vec<u8>, chunk: usize) -> (Vec<Message>, Option<Error>) {
    let mut stream = Stream::new(input, chunk);
    let mut got = Vec::new();
    loop {
        match ws.read_from(&mut stream) {
            Ok(message) => got.push(message),
            Err(e) if would_block(&e) && stream.at < stream.input.len() => {}
            Err(e) if would_block(&e) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

fn deflated(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(compress(payload, 15, &mut out), "compressible");
    out
}

/// A text message of JSON readings, `len` bytes.
fn readings(len: usize) -> String {
    let mut out = String::new();
    let mut i = 0u32;
    while out.len() < len {
        out += &format!(
            "{{\"sensor\":\"t{}\",\"celsius\":{}.{},\"ok\":true}}",
            i % 7,
            20 + i % 9,
            i % 10
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// The server frames in `bytes`: (first byte, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let [first, second, rest @ ..] = bytes {
        assert_eq!(second & 0x80, 0, "server frames are not masked");
        let (len, rest) = match second & 0x7f {
            126 => (u16::from_be_bytes([rest[0], rest[1]]) as usize, &rest[2..]),
            127 => (
                u64::from_be_bytes(rest[..8].try_into().unwrap()) as usize,
                &rest[8..],
            ),
            n => (n as usize, rest),
        };
        out.push((*first, rest[..len].to_vec()));
        bytes = &rest[len..];
    }
    out
}

#[test]
fn rfc7692_examples_inflate() {
    // §7.2.3.1 (a compressed "Hello", whole and in two fragments), §7.2.3.3 (a stored
    // block), §7.2.3.4 (BFINAL set), §7.2.3.5 (two blocks).
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let inputs = [
        frame(true, RSV1 | TEXT, &hello),
        [
            frame(false, RSV1 | TEXT, &hello[..3]),
            frame(true, 0, &hello[3..]),
        ]
        .concat(),
        frame(
            true,
            RSV1 | TEXT,
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
        ),
        frame(
            true,
            RSV1 | TEXT,
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        ),
        frame(
            true,
            RSV1 | TEXT,
            &[
                0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
            ],
        ),
    ];
    for input in inputs {
        for chunk in [1, 3, usize::MAX] {
            let mut ws = agreed();
            let (got, error) = read_all(&mut ws, input.clone(), chunk);
            assert!(error.is_none(), "{input:02x?}: {error:?}");
            assert_eq!(got, [Message::text("Hello")], "{input:02x?}");
            assert_eq!(ws.held(), 0);
        }
    }
}

#[test]
fn empty_compressed_messages_and_last_fragments() {
    // §7.2.3.6: an empty last fragment, or one holding only the 00 a sync flush leaves
    // once its tail is removed (the data before it not yet flushed); an empty message sent
    // as an empty stored block, or as nothing at all.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let input = [
        frame(false, RSV1 | TEXT, &hello),
        frame(true, 0, &[]),
        frame(false, RSV1 | BINARY, &hello[..6]),
        frame(true, 0, &[0x00]),
        frame(true, RSV1 | TEXT, &[0x00]),
        frame(true, RSV1 | BINARY, &[]),
    ]
    .concat();
    let (got, error) = read_all(&mut agreed(), input, usize::MAX);
    assert!(error.is_none(), "{got:?} {error:?}");
    assert_eq!(
        got,
        [
            Message::text("Hello"),
            Message::binary(&b"Hello"[..]),
            Message::text(""),
            Message::binary(Vec::new()),
        ]
    );
}

#[test]
fn compressed_and_plain_messages_interleave_with_control_frames() {
    let text = readings(3000);
    let data: Vec<u8> = readings(20_000).into_bytes();
    let packed = deflated(&data);
    let mut input = frame(true, RSV1 | TEXT, &deflated(text.as_bytes()));
    input.extend(frame(true, TEXT, b"plain"));
    // A binary message in three fragments, a ping and a pong between them.
    let (a, rest) = packed.split_at(packed.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    input.extend(frame(false, RSV1 | BINARY, a));
    input.extend(frame(true, 0x9, b"p"));
    input.extend(frame(false, 0, b));
    input.extend(frame(true, 0xa, b""));
    input.extend(frame(true, 0, c));
    input.extend(frame(true, BINARY, b"after"));
    for chunk in [7, 1000, usize::MAX] {
        let mut ws = agreed();
        let (got, error) = read_all(&mut ws, input.clone(), chunk);
        assert!(error.is_none(), "chunk {chunk}: {error:?}");
        assert_eq!(
            got,
            [
                Message::text(text.as_str()),
                Message::text("plain"),
                Message::Ping(b"p"[..].into()),
                Message::Pong(Default::default()),
                Message::binary(data.clone()),
                Message::binary(&b"after"[..]),
            ],
            "chunk {chunk}"
        );
        assert_eq!(ws.held(), 0);
    }
}

#[test]
fn large_compressed_fragments_are_read_into_the_message() {
    // Fragments larger than a read go straight into the reassembly buffer; the message is
    // inflated once, whole.
    let config = WebSocketConfig::default()
        .max_frame_size(1 << 20)
        .max_message_size(4 << 20);
    let mut data = Vec::new();
    let mut seed = 1u32;
    for _ in 0..300_000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        data.push(b'a' + (seed >> 16) as u8 % 8);
    }
    let packed = deflated(&data);
    assert!(packed.len() > 3 * 4096, "{} compressed bytes", packed.len());
    let chunks: Vec<&[u8]> = packed.chunks(packed.len() / 3 + 1).collect();
    let mut input = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { RSV1 | BINARY } else { 0 };
        input.extend(frame(i == chunks.len() - 1, opcode, chunk));
    }
    let mut ws = agreed_with(&config, "permessage-deflate");
    let (got, error) = read_all(&mut ws, input, usize::MAX);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, [Message::binary(data)]);
    assert_eq!(ws.held(), 0);
}

#[test]
fn rsv1_only_on_the_first_frame_of_a_data_message_with_an_agreement() {
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let reserved =
        |e: &Option<Error>| matches!(e, Some(Error::Protocol(ProtocolError::NonZeroReservedBits)));
    let cases = [
        // RSV1 on a continuation frame, compressed message or not.
        [
            frame(false, RSV1 | TEXT, &hello[..3]),
            frame(true, RSV1, &hello[3..]),
        ]
        .concat(),
        [frame(false, TEXT, b"a"), frame(true, RSV1, b"b")].concat(),
        // On control frames.
        frame(true, RSV1 | 0x9, b""),
        frame(true, RSV1 | 0xa, b""),
        frame(true, RSV1 | 0x8, &1000u16.to_be_bytes()),
        // RSV2 and RSV3 mean nothing here.
        frame(true, 0x20 | TEXT, b"x"),
        frame(true, 0x10 | BINARY, b"x"),
        frame(true, RSV1 | 0x20 | TEXT, &hello),
    ];
    for input in cases {
        let (got, error) = read_all(&mut agreed(), input.clone(), usize::MAX);
        assert!(
            got.is_empty() && reserved(&error),
            "{input:02x?}: {error:?}"
        );
    }
    // Without an agreement, RSV1 is a protocol error wherever it is.
    let mut plain = Framing::new(&[], &WebSocketConfig::default());
    let (_, error) = read_all(&mut plain, frame(true, RSV1 | TEXT, &hello), usize::MAX);
    assert!(reserved(&error), "{error:?}");
    let mut plain = Framing::new(&[], &WebSocketConfig::default());
    let input = [
        frame(false, RSV1 | BINARY, &hello[..3]),
        frame(true, 0, &hello[3..]),
    ]
    .concat();
    let (_, error) = read_all(&mut plain, input, usize::MAX);
    assert!(reserved(&error), "{error:?}");
}

#[test]
fn data_that_does_not_inflate_is_1007() {
    let cases: [&[u8]; 5] = [
        // §7.2.3.2's second message: it refers to the first one's window, which no context
        // takeover leaves empty.
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
        // A reserved block type, garbage, a message cut inside a block.
        &[0xff, 0xff, 0xff],
        b"plainly not deflate",
        &[0xf2, 0x48, 0xcd],
        // A stored block whose length does not match its complement.
        &[0x00, 0x05, 0x00, 0xfb, 0xff, b'H', b'e', b'l', b'l', b'o'],
    ];
    for payload in cases {
        for fragmented in [false, true] {
            let input = if fragmented {
                let (a, b) = payload.split_at(1);
                [frame(false, RSV1 | BINARY, a), frame(true, 0, b)].concat()
            } else {
                frame(true, RSV1 | BINARY, payload)
            };
            let (got, error) = read_all(&mut agreed(), input, usize::MAX);
            assert!(got.is_empty(), "{payload:02x?}");
            match error {
                Some(Error::Utf8(ref why)) if why == CORRUPT => {}
                other => panic!("{payload:02x?}: {other:?}"),
            }
            let e = error.unwrap();
            assert_eq!(crate::ws::close_code(&e), Some(1007));
        }
    }
}

#[test]
fn compressed_text_is_checked_after_inflation_not_fragment_by_fragment() {
    // Compressed bytes are no text: fragments that are not UTF-8 on their own pass, and the
    // inflated message is checked whole.
    let text = "añb€".repeat(1000);
    let packed = deflated(text.as_bytes());
    assert!(std::str::from_utf8(&packed).is_err());
    let input = [
        frame(false, RSV1 | TEXT, &packed[..packed.len() / 2]),
        frame(true, 0, &packed[packed.len() / 2..]),
    ]
    .concat();
    let (got, error) = read_all(&mut agreed(), input, 5);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, [Message::text(text.as_str())]);
    // Invalid UTF-8 once inflated: 1007 too, after the last fragment.
    let mut bad = text.into_bytes();
    bad[1500] = 0xff;
    let packed = deflated(&bad);
    let input = [
        frame(false, RSV1 | TEXT, &packed[..10]),
        frame(true, 0, &packed[10..]),
    ]
    .concat();
    let (got, error) = read_all(&mut agreed(), input, usize::MAX);
    assert!(got.is_empty());
    assert!(
        matches!(&error, Some(Error::Utf8(why)) if why != CORRUPT),
        "{error:?}"
    );
}

#[test]
fn a_bomb_stops_at_the_message_limit() {
    // 10 MB of zeros in one frame of a few tens of KB (the compressor's fastest level), or
    // fragmented, against a 1 MiB limit.
    let config = WebSocketConfig::default()
        .max_frame_size(1 << 20)
        .max_message_size(1 << 20);
    let bomb = deflated(&vec![0; 10_000_000]);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let fragmented = [
        frame(false, RSV1 | BINARY, &bomb[..5000]),
        frame(true, 0, &bomb[5000..]),
    ]
    .concat();
    for input in [frame(true, RSV1 | BINARY, &bomb), fragmented] {
        let mut ws = agreed_with(&config, "permessage-deflate");
        let (got, error) = read_all(&mut ws, input, usize::MAX);
        assert!(got.is_empty());
        match error {
            Some(Error::Capacity(CapacityError::MessageTooLong { max_size, .. })) => {
                assert_eq!(max_size, 1 << 20)
            }
            other => panic!("{other:?}"),
        }
        assert!(ws.held() <= 64 * 1024, "{} held", ws.held());
    }
    // Exactly at the limit it inflates.
    let exact = deflated(&vec![0; 1 << 20]);
    let mut ws = agreed_with(&config, "permessage-deflate");
    let (got, error) = read_all(&mut ws, frame(true, RSV1 | BINARY, &exact), usize::MAX);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, [Message::binary(vec![0; 1 << 20])]);
}

#[test]
fn the_compressed_bytes_count_against_the_message_limit() {
    // Incompressible data sent as a compressed message (stored blocks): the joined frames
    // pass the limit before the last one arrives.
    let config = WebSocketConfig::default().max_message_size(20_000);
    let mut stored = Vec::new();
    for _ in 0..4 {
        stored.extend([0x00, 0x88, 0x13, 0x77, 0xec]); // a stored block of 5,000 bytes
        stored.extend(std::iter::repeat_n(b'x', 5000));
    }
    let input = [
        frame(false, RSV1 | BINARY, &stored[..10_010]),
        frame(false, 0, &stored[10_010..]),
        frame(true, 0, &[0x00]),
    ]
    .concat();
    let mut ws = agreed_with(&config, "permessage-deflate");
    let (got, error) = read_all(&mut ws, input, usize::MAX);
    assert!(got.is_empty());
    assert!(
        matches!(
            error,
            Some(Error::Capacity(CapacityError::MessageTooLong {
                size: 20_020,
                ..
            }))
        ),
        "{error:?}"
    );
}

#[test]
fn a_compressed_message_in_progress_holds_about_twice_what_arrived_of_it() {
    // A compressed message whose first fragment is announced as 8 MiB: what is held grows
    // with what arrived, as for any message.
    let config = WebSocketConfig::default()
        .max_frame_size(16 << 20)
        .max_message_size(16 << 20);
    let announced = frame(false, RSV1 | BINARY, &vec![0; 8 << 20]);
    for sent in [100, 1024, 10 * 1024, 100 * 1024] {
        let input = &announced[..14 + sent];
        for chunk in [1024, usize::MAX] {
            let mut ws = agreed_with(&config, "permessage-deflate");
            let (got, error) = read_all(&mut ws, input.to_vec(), chunk);
            assert!(got.is_empty() && error.is_none(), "{error:?}");
            let bound = (sent * 5 / 2).max(4096 * 2);
            assert!(ws.held() <= bound, "{} held for {sent} sent", ws.held());
        }
    }
}

#[test]
fn messages_from_the_minimum_size_go_compressed_in_one_frame() {
    let mut ws = agreed();
    let small = readings(127);
    let large = readings(4096);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..1000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 32) as u8
        })
        .collect();
    ws.write(Message::text(small.as_str())).unwrap();
    ws.write(Message::text(large.as_str())).unwrap();
    ws.write(Message::Ping(b"ping"[..].into())).unwrap();
    ws.write(Message::binary(large.clone().into_bytes()))
        .unwrap();
    ws.write(Message::binary(noise.clone())).unwrap();
    ws.write(Message::text(readings(128).as_str())).unwrap();
    ws.write(Message::Close(None)).unwrap();
    let mut stream = Stream::new(Vec::new(), 1);
    ws.flush(&mut stream).unwrap();
    let frames = server_frames(&stream.output);
    let firsts: Vec<u8> = frames.iter().map(|f| f.0).collect();
    // A batch mixing compressed (RSV1) and plain frames; control frames never compressed.
    assert_eq!(firsts, [0x81, 0xc1, 0x89, 0xc2, 0x82, 0xc1, 0x88]);
    assert_eq!(frames[0].1, small.as_bytes());
    let inflated = |i: usize| inflate(&frames[i].1, 1 << 20).unwrap();
    assert!(frames[1].1.len() < large.len() / 3, "{}", frames[1].1.len());
    assert_eq!(inflated(1), large.as_bytes());
    assert_eq!(inflated(3), large.as_bytes());
    assert_eq!(frames[4].1, noise, "noise does not get smaller");
    assert_eq!(inflated(5), readings(128).as_bytes());
    assert_eq!(ws.held(), 0);
}

#[test]
fn the_minimum_size_and_the_window_the_client_asked_for() {
    let message = readings(2000);
    let first_bytes = |ws: &mut Framing| {
        ws.write(Message::text(message.as_str())).unwrap();
        let mut stream = Stream::new(Vec::new(), 1);
        ws.flush(&mut stream).unwrap();
        server_frames(&stream.output)[0].0
    };
    // A threshold above the message: plain.
    let config = WebSocketConfig::default().compression(Compression::Deflate { min_size: 2001 });
    assert_eq!(
        first_bytes(&mut agreed_with(&config, "permessage-deflate")),
        0x81
    );
    // A 2 KiB window fits it; a 1 KiB one does not (a message longer than the window the
    // client inflates with goes plain).
    for (bits, first) in [(11, 0xc1), (10, 0x81), (8, 0x81), (15, 0xc1)] {
        let offer = format!("permessage-deflate; server_max_window_bits={bits}");
        let mut ws = agreed_with(&WebSocketConfig::default(), &offer);
        assert_eq!(first_bytes(&mut ws), first, "window {bits}");
    }
    // No agreement: never compressed.
    let mut plain = Framing::new(&[], &WebSocketConfig::default());
    assert_eq!(first_bytes(&mut plain), 0x81);
}
