//! The client side of `permessage-deflate` for the raw-socket tests: an upgrade that offers
//! it, server frames read with their reserved bits, and (in `codec`, which the bench shares)
//! messages compressed as browsers send them, replies inflated, JSON telemetry.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{raw, read_head};

mod codec;
#[allow(unused_imports)] // each test file uses a different subset
pub use codec::{deflate, inflate, telemetry};

/// The response to every valid offer: both no-context-takeover parameters.
pub const ACCEPTED: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// An upgrade of `path` with these `Sec-WebSocket-Extensions` lines: the socket after the
/// `101`, and the head's extension value (`None`: no extension agreed).
pub fn upgrade_offering(
    addr: SocketAddr,
    path: &str,
    offers: &[&str],
) -> (TcpStream, Option<String>) {
    let mut s = raw(addr);
    let lines: String = offers
        .iter()
        .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
        .collect();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{lines}\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let extensions = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_string())
    });
    (s, extensions)
}

/// A socket upgraded on `path` with `permessage-deflate` agreed.
pub fn compressed_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let (s, agreed) = upgrade_offering(addr, path, &["permessage-deflate; client_max_window_bits"]);
    assert_eq!(agreed.as_deref(), Some(ACCEPTED));
    s
}

/// Reads one server frame: its first byte (FIN, RSV1-3, opcode) and payload.
pub fn read_server_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    Ok((h[0], payload))
}

/// The next message (one frame): its opcode, whether it came compressed, its payload
/// (inflated).
pub fn read_message(s: &mut TcpStream) -> (u8, bool, Vec<u8>) {
    let (first, payload) = read_server_frame(s).expect("a frame");
    assert_eq!(first & 0x80, 0x80, "one frame per message");
    let compressed = first & 0x40 != 0;
    let payload = if compressed {
        inflate(&payload).expect("a valid compressed message")
    } else {
        payload
    };
    (first & 0x0f, compressed, payload)
}
