//! The client side of `permessage-deflate` for the raw-socket tests: an upgrade that offers
//! it, messages compressed as a browser sends them (raw DEFLATE, a sync flush, its tail
//! removed: RFC 7692 §7.2.1), server frames read with their reserved bits, and inflation.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
};

use super::{raw, read_head};

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

/// `payload` compressed as a message's payload, at `level` (1 to 9).
pub fn deflate(payload: &[u8], level: u8) -> Vec<u8> {
    let flags = create_comp_flags_from_zip_params(i32::from(level), -15, 0);
    let mut compressor = Box::new(CompressorOxide::new(flags));
    let mut out = Vec::new();
    compress_to_output(&mut compressor, payload, TDEFLFlush::Sync, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush");
    out.truncate(out.len() - 4);
    out
}

/// A compressed message's payload inflated (the tail appended, then an empty final block).
pub fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut stream = compressed.to_vec();
    stream.extend_from_slice(&[0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff]);
    miniz_oxide::inflate::decompress_to_vec(&stream).expect("a valid compressed message")
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
        inflate(&payload)
    } else {
        payload
    };
    (first & 0x0f, compressed, payload)
}

/// JSON telemetry of `len` bytes (at least 64): readings of a few sensors, as a device
/// reports them, padded with spaces to the length.
pub fn telemetry(len: usize) -> String {
    let mut out = String::from("{\"device\":\"edge-0042\",\"readings\":[");
    for i in 0u64.. {
        let reading = format!(
            "{}{{\"sensor\":\"s{}\",\"ts\":{},\"celsius\":{}.{}}}",
            if i == 0 { "" } else { "," },
            i % 6,
            1_765_000_000_000 + i * 250,
            18 + (i * 7) % 11,
            (i * 3) % 10
        );
        if out.len() + reading.len() + 2 > len {
            break;
        }
        out += &reading;
    }
    out += "]}";
    while out.len() < len {
        out.push(' ');
    }
    out
}
