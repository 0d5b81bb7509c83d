//! The server's memory with `permessage-deflate` (feature `deflate`), measured as the RSS of
//! the `echo` example: compression bombs leave it within 8 MiB of where it was, and 1,000
//! connections that each sent and got a 4 KiB compressed message cost at most 8 KiB more
//! each than 1,000 that did the same uncompressed (no compression state per connection:
//! one compressor and one inflater for the thread).
//!
//! The 1,000 connections need descriptors on each side: the test raises its own soft limit
//! (with `prlimit`, up to the hard limit; the server inherits it) and skips with a message
//! where it cannot.
#![cfg(feature = "deflate")]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Child;

use common::deflate::*;
use common::*;

const CONNECTIONS: usize = 1000;
const MIB: u64 = 1 << 20;

/// The echo example on a free port with `max_message` bytes per frame and message.
fn start_echo(max_message: usize) -> (Child, SocketAddr) {
    start_example(
        "echo",
        &[
            ("MAX_MESSAGE", max_message.to_string()),
            ("MAX_CONNECTIONS", (CONNECTIONS + 64).to_string()),
        ],
    )
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

#[test]
fn compression_bombs_leave_the_server_within_8_mib() {
    // 1 MiB messages; each bomb is 10 MB of zeros in one frame of about 10 KB.
    let (child, addr) = start_echo(1 << 20);
    let bomb = deflate(&vec![0; 10_000_000], 9);
    let bomb_frame = frame(true, 0x40 | 0x2, &bomb);
    // A compressed round trip first: the thread's compressor and inflater exist before.
    let mut warm = compressed_upgrade(addr, "/ws");
    let reading = telemetry(4096);
    warm.write_all(&frame(true, 0x40 | 0x1, &deflate(reading.as_bytes(), 6)))
        .unwrap();
    assert_eq!(read_message(&mut warm), (0x1, true, reading.into_bytes()));
    let before = rss_bytes(child.id());
    let peak_before = peak_rss_bytes(child.id());
    // Twenty bombs on twenty connections at once.
    let mut clients: Vec<TcpStream> = (0..20).map(|_| compressed_upgrade(addr, "/ws")).collect();
    for client in &mut clients {
        client.write_all(&bomb_frame).unwrap();
    }
    for client in &mut clients {
        assert_eq!(read_close_code(client), Some(1009));
    }
    let after = rss_bytes(child.id());
    let peak = peak_rss_bytes(child.id());
    eprintln!(
        "bombs of {} bytes (10 MB inflated) against a 1 MiB limit, 20 at once: server RSS \
         {:.2} MiB before, {:.2} MiB after, peak {:.2} MiB (was {:.2} MiB)",
        bomb.len(),
        mib(before),
        mib(after),
        mib(peak),
        mib(peak_before),
    );
    // The server still answers.
    let reading = telemetry(1000);
    warm.write_all(&frame(true, 0x40 | 0x1, &deflate(reading.as_bytes(), 6)))
        .unwrap();
    assert_eq!(read_message(&mut warm), (0x1, true, reading.into_bytes()));
    stop(child);
    assert!(
        after <= before + 8 * MIB,
        "RSS {after} after, {before} before"
    );
    assert!(peak <= before + 8 * MIB, "peak RSS {peak}, {before} before");
}

/// Opens [`CONNECTIONS`] connections to a fresh echo server, each sending one 4 KiB
/// telemetry message (compressed, after offering `permessage-deflate`, when `compressed`)
/// and reading its reply; the server's RSS growth per connection, all still open.
fn growth_per_connection(compressed: bool) -> f64 {
    let (child, addr) = start_echo(16 << 20);
    let idle = rss_bytes(child.id());
    let message = telemetry(4096).into_bytes();
    let packed = deflate(&message, 6);
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut client = if compressed {
                compressed_upgrade(addr, "/ws")
            } else {
                raw_upgrade(addr, "/ws")
            };
            let request = if compressed {
                frame(true, 0x40 | 0x1, &packed)
            } else {
                frame(true, 0x1, &message)
            };
            client.write_all(&request).unwrap();
            assert_eq!(
                read_message(&mut client),
                (0x1, compressed, message.clone())
            );
            client
        })
        .collect();
    let open = rss_bytes(child.id());
    let peak = peak_rss_bytes(child.id());
    let per_connection = open.saturating_sub(idle) as f64 / CONNECTIONS as f64;
    eprintln!(
        "{CONNECTIONS} connections, {}: server RSS {:.2} MiB idle, {:.2} MiB with all open \
         after one 4 KiB message each (request {} B on the wire), peak {:.2} MiB: \
         {per_connection:.0} bytes per connection",
        if compressed { "compressed" } else { "plain" },
        mib(idle),
        mib(open),
        if compressed {
            packed.len()
        } else {
            message.len()
        },
        mib(peak),
    );
    drop(clients);
    stop(child);
    per_connection
}

#[test]
fn a_thousand_compressed_connections_cost_at_most_8_kib_more_each_than_plain_ones() {
    if !raise_fd_limit(CONNECTIONS as u64 * 2 + 256) {
        eprintln!(
            "skipped: {CONNECTIONS} connections need a descriptor limit above {} (limits: {:?})",
            CONNECTIONS * 2,
            fd_limits()
        );
        return;
    }
    let plain = growth_per_connection(false);
    let compressed = growth_per_connection(true);
    let more = compressed - plain;
    eprintln!(
        "compressed connections: {more:.0} bytes more per connection than plain ones \
         ({compressed:.0} against {plain:.0})"
    );
    assert!(
        more <= 8.0 * 1024.0,
        "{more:.0} bytes more per compressed connection"
    );
}
