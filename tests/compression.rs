//! `permessage-deflate` (RFC 7692, feature `deflate`) over loopback, with raw sockets: the
//! negotiation matrix, compressed round trips (single frames and fragments, text and binary,
//! under and over the gateway's minimum size, replies and pushes), RSV1 where it is not
//! allowed, corrupt data and bombs; Python's `websockets` against the `events_gateway`
//! example. Without the feature, offers are declined and RSV1 stays a protocol error. The
//! server's memory (bombs, 1,000 compressed connections) is measured in
//! `tests/compression_memory.rs`.

mod common;

use std::io::Write;
use std::time::Duration;

use common::deflate::*;
use common::*;
use nestforge_edge::prelude::*;

module! { struct AppModule { providers: [] } }

/// Pushes every message back through the connection's outbox (as server pushes go), then
/// echoes it as a reply.
struct PushBack;

impl WebSocketGateway for PushBack {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let Ok(connections) = ctx.resolve::<Connections>() else {
                return;
            };
            while let Some(Ok(message)) = socket.recv().await {
                if message.is_text() || message.is_binary() {
                    let _ = connections.send(ctx.connection_id(), message.clone());
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
            }
        })
    }
}

fn limits(endpoint: &str) -> WebSocketConfig {
    WebSocketConfig::new(endpoint)
        .max_frame_size(64 * 1024)
        .max_message_size(64 * 1024)
        .close_timeout(Duration::from_millis(500))
        .ping_interval(None)
}

/// `/ws` (echo), `/push` ([`PushBack`]) and, with the feature, `/plain` (echo, compression
/// off) and `/eager` (echo compressing from 1 byte).
fn start() -> Running {
    let factory = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway_config(Echo, limits("/ws"))
        .with_websocket_gateway_config(PushBack, limits("/push"));
    #[cfg(feature = "deflate")]
    let factory = factory
        .with_websocket_gateway_config(Echo, limits("/plain").compression(Compression::Off))
        .with_websocket_gateway_config(
            Echo,
            limits("/eager").compression(Compression::Deflate { min_size: 1 }),
        );
    spawn(factory.into_server().unwrap())
}

const TEXT: u8 = 0x1;
#[cfg(feature = "deflate")]
const BINARY: u8 = 0x2;
const RSV1: u8 = 0x40;

/// The server's Close code, then the end of the stream.
fn expect_close(s: &mut std::net::TcpStream, code: u16) {
    assert_eq!(read_close_code(s), Some(code));
    let mut rest = [0u8; 64];
    assert!(matches!(std::io::Read::read(s, &mut rest), Ok(0)), "EOF");
}

#[cfg(not(feature = "deflate"))]
#[test]
fn without_the_feature_offers_are_declined_and_rsv1_is_1002() {
    let server = start();
    let (mut s, agreed) = upgrade_offering(
        server.addr,
        "/ws",
        &["permessage-deflate; client_max_window_bits"],
    );
    assert_eq!(agreed, None);
    s.write_all(&frame(true, TEXT, b"plain")).unwrap();
    assert_eq!(read_message(&mut s), (TEXT, false, b"plain".to_vec()));
    s.write_all(&frame(true, RSV1 | TEXT, &deflate(b"hello", 6)))
        .unwrap();
    expect_close(&mut s, 1002);
}

#[cfg(feature = "deflate")]
mod with_the_feature {
    use super::*;

    fn window(n: u8) -> String {
        format!("{ACCEPTED}; server_max_window_bits={n}")
    }

    #[test]
    fn the_negotiation_matrix() {
        let server = start();
        let mut cases: Vec<(&str, Vec<String>, Option<String>)> =
            vec![
            ("/ws", vec![], None),
            ("/ws", vec!["permessage-deflate".into()], Some(ACCEPTED.into())),
            // What browsers send.
            (
                "/ws",
                vec!["permessage-deflate; client_max_window_bits".into()],
                Some(ACCEPTED.into()),
            ),
            (
                "/ws",
                vec!["permessage-deflate; client_max_window_bits=10".into()],
                Some(ACCEPTED.into()),
            ),
            (
                "/ws",
                vec!["permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                    .into()],
                Some(ACCEPTED.into()),
            ),
            // An offer that cannot be honoured, then one that can: the second is taken.
            (
                "/ws",
                vec![
                    "permessage-deflate; server_max_window_bits=7, \
                     permessage-deflate; server_max_window_bits=12"
                        .into(),
                ],
                Some(window(12)),
            ),
            (
                "/ws",
                vec![
                    "permessage-deflate; mux".into(),
                    "permessage-deflate; client_max_window_bits".into(),
                ],
                Some(ACCEPTED.into()),
            ),
            // Other extensions, and malformed headers: no extension (RFC 6455 §9.1).
            ("/ws", vec!["x-webkit-deflate-frame".into()], None),
            (
                "/ws",
                vec!["permessage-deflate; server_max_window_bits=".into()],
                None,
            ),
            (
                "/ws",
                vec!["permessage-deflate; server_max_window_bits=\"10".into()],
                None,
            ),
            ("/ws", vec!["permessage-deflate;;".into()], None),
            // Compression off for this gateway.
            ("/plain", vec!["permessage-deflate".into()], None),
        ];
        for n in 8..=15 {
            cases.push((
                "/ws",
                vec![format!(
                    "permessage-deflate; server_max_window_bits={n}; client_max_window_bits"
                )],
                Some(window(n)),
            ));
        }
        for (path, offers, expected) in cases {
            let offers: Vec<&str> = offers.iter().map(String::as_str).collect();
            let (mut s, agreed) = upgrade_offering(server.addr, path, &offers);
            assert_eq!(agreed, expected, "{path} {offers:?}");
            // The connection works either way; compressed replies only with an agreement (a
            // reply within the smallest window, 2^8 bytes).
            let text = telemetry(250);
            s.write_all(&frame(true, TEXT, text.as_bytes())).unwrap();
            let (opcode, compressed, payload) = read_message(&mut s);
            assert_eq!((opcode, payload), (TEXT, text.into_bytes()));
            assert_eq!(compressed, expected.is_some(), "{path} {offers:?}");
        }
    }

    #[test]
    fn compressed_messages_round_trip() {
        let server = start();
        let mut s = compressed_upgrade(server.addr, "/ws");
        for (len, opcode) in [
            (10, TEXT),
            (127, TEXT),
            (128, TEXT),
            (4096, TEXT),
            (60_000, TEXT),
            (500, BINARY),
            (40_000, BINARY),
        ] {
            let message = telemetry(len).into_bytes();
            let packed = deflate(&message, 6);
            // One frame, then the same in fragments of at most 700 bytes (a ping between
            // the first two), then sent plain.
            s.write_all(&frame(true, RSV1 | opcode, &packed)).unwrap();
            let chunks: Vec<&[u8]> = packed.chunks(700).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let op = if i == 0 { RSV1 | opcode } else { 0 };
                s.write_all(&frame(i == chunks.len() - 1, op, chunk))
                    .unwrap();
                if i == 0 {
                    s.write_all(&frame(true, 0x9, b"p")).unwrap();
                }
            }
            s.write_all(&frame(true, opcode, &message)).unwrap();
            let mut replies = Vec::new();
            while replies.len() < 3 {
                let (op, compressed, payload) = read_message(&mut s);
                if op == 0xa {
                    continue; // the ping's pong
                }
                replies.push((op, compressed, payload));
            }
            for (op, compressed, payload) in replies {
                assert_eq!(op, opcode, "{len}");
                assert_eq!(payload, message, "{len}");
                // Replies from 128 bytes on go compressed.
                assert_eq!(compressed, len >= 128, "{len}");
            }
        }
    }

    #[test]
    fn the_minimum_size_is_per_gateway() {
        let server = start();
        let mut s = compressed_upgrade(server.addr, "/eager");
        let text = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        s.write_all(&frame(true, TEXT, text.as_bytes())).unwrap();
        assert_eq!(read_message(&mut s), (TEXT, true, text.as_bytes().to_vec()));
        // Too short to get smaller: sent as it is.
        s.write_all(&frame(true, TEXT, b"ab")).unwrap();
        assert_eq!(read_message(&mut s), (TEXT, false, b"ab".to_vec()));
    }

    #[test]
    fn pushes_and_replies_in_one_batch_are_compressed_alike() {
        let server = start();
        let mut s = compressed_upgrade(server.addr, "/push");
        let large = telemetry(2000);
        s.write_all(&frame(true, RSV1 | TEXT, &deflate(large.as_bytes(), 6)))
            .unwrap();
        s.write_all(&frame(true, TEXT, b"short")).unwrap();
        // Each message comes back twice (pushed and replied), the large compressed.
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(read_message(&mut s));
        }
        got.sort();
        let expected_large = (TEXT, true, large.into_bytes());
        let expected_short = (TEXT, false, b"short".to_vec());
        let mut expected = vec![
            expected_large.clone(),
            expected_large,
            expected_short.clone(),
            expected_short,
        ];
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn rsv1_where_it_is_not_allowed_is_1002() {
        let server = start();
        let packed = deflate(telemetry(500).as_bytes(), 6);
        let cases: Vec<(&str, bool, Vec<u8>)> = vec![
            // On a continuation frame.
            (
                "/ws",
                true,
                [
                    frame(false, RSV1 | TEXT, &packed[..100]),
                    frame(true, RSV1, &packed[100..]),
                ]
                .concat(),
            ),
            // On control frames.
            ("/ws", true, frame(true, RSV1 | 0x9, b"ping")),
            ("/ws", true, frame(true, RSV1 | 0x8, &1000u16.to_be_bytes())),
            // RSV2.
            ("/ws", true, frame(true, 0x20 | BINARY, b"x")),
            // No agreement: no offer, or a gateway with compression off.
            ("/ws", false, frame(true, RSV1 | TEXT, &packed)),
            ("/plain", true, frame(true, RSV1 | TEXT, &packed)),
        ];
        for (path, offer, bytes) in cases {
            let offers: &[&str] = if offer { &["permessage-deflate"] } else { &[] };
            let (mut s, _) = upgrade_offering(server.addr, path, offers);
            s.write_all(&bytes).unwrap();
            expect_close(&mut s, 1002);
        }
    }

    #[test]
    fn data_that_does_not_inflate_closes_with_1007() {
        let server = start();
        let packed = deflate(telemetry(500).as_bytes(), 6);
        for bytes in [
            frame(true, RSV1 | TEXT, b"not deflate at all"),
            frame(true, RSV1 | BINARY, &packed[..packed.len() / 2]),
            [
                frame(false, RSV1 | BINARY, &[0xff, 0xff]),
                frame(true, 0, &packed),
            ]
            .concat(),
            // Valid DEFLATE, but not UTF-8 once inflated.
            frame(true, RSV1 | TEXT, &deflate(&[b'a', 0xff, b'b'], 6)),
        ] {
            let mut s = compressed_upgrade(server.addr, "/ws");
            s.write_all(&bytes).unwrap();
            expect_close(&mut s, 1007);
        }
    }

    #[test]
    fn a_message_that_inflates_past_the_limit_closes_with_1009() {
        // 64 KiB messages: 1 MB of zeros in about a kilobyte, one frame or two.
        let server = start();
        let bomb = deflate(&vec![0; 1_000_000], 9);
        assert!(bomb.len() < 2048, "{}", bomb.len());
        for bytes in [
            frame(true, RSV1 | BINARY, &bomb),
            [
                frame(false, RSV1 | BINARY, &bomb[..500]),
                frame(true, 0, &bomb[500..]),
            ]
            .concat(),
        ] {
            let mut s = compressed_upgrade(server.addr, "/ws");
            s.write_all(&bytes).unwrap();
            expect_close(&mut s, 1009);
        }
        // At the limit exactly, it is echoed (compressed).
        let mut s = compressed_upgrade(server.addr, "/ws");
        let full = vec![b'z'; 64 * 1024];
        s.write_all(&frame(true, RSV1 | BINARY, &deflate(&full, 9)))
            .unwrap();
        assert_eq!(read_message(&mut s), (BINARY, true, full));
    }

    #[test]
    fn python_websockets_negotiates_it_with_the_events_gateway_example() {
        if !python_websockets() {
            return;
        }
        let (mut child, addr) = start_example("events_gateway", &[]);
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/python_deflate.py"
        );
        let limit = (30 * time_scale()).to_string();
        let out = std::process::Command::new("timeout")
            .args([&limit, "python3", script, &format!("ws://{addr}/ws")])
            .output()
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
