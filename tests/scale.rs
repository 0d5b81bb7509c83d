//! Many connections on one server thread: 10,000 open WebSockets to the `echo` example, each
//! still answering, within 28 MB of server RSS at its peak (idle connections hold no
//! buffers; about 2 KB each: BENCHMARKS.md#memory-per-connection).
//!
//! Needs 10,000 file descriptors on each side: the test raises its own soft limit (with
//! `prlimit`, up to the hard limit; the server inherits it) and skips with a message where
//! it cannot.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;

const CONNECTIONS: usize = 10_000;
const RSS_BOUND: u64 = 28_000_000;

#[test]
fn ten_thousand_connections_each_answer_within_28_mb() {
    if !raise_fd_limit(CONNECTIONS as u64 + 256) {
        eprintln!(
            "skipped: {CONNECTIONS} connections need a descriptor limit above {CONNECTIONS} \
             (limits: {:?})",
            fd_limits()
        );
        return;
    }
    let (mut child, addr) = start_example(
        "echo",
        &[("MAX_CONNECTIONS", (CONNECTIONS + 16).to_string())],
    );
    let idle = rss_bytes(child.id());
    let mut clients: Vec<TcpStream> = (0..CONNECTIONS).map(|_| raw_upgrade(addr, "/ws")).collect();
    let open = rss_bytes(child.id());
    // Every connection answers: all requests out first, then every reply read.
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .write_all(&frame(true, 2, &(i as u32).to_be_bytes()))
            .unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let (opcode, payload) = read_frame(client).unwrap();
        assert_eq!((opcode, payload), (2, (i as u32).to_be_bytes().to_vec()));
    }
    let answered = rss_bytes(child.id());
    let peak = peak_rss_bytes(child.id());
    eprintln!(
        "{CONNECTIONS} connections: server RSS {:.1} MB idle, {:.1} MB with all open, \
         {:.1} MB after each answered ({:.0} bytes per connection), peak {:.1} MB",
        idle as f64 / 1e6,
        open as f64 / 1e6,
        answered as f64 / 1e6,
        answered.saturating_sub(idle) as f64 / CONNECTIONS as f64,
        peak as f64 / 1e6,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        peak <= RSS_BOUND,
        "server peak RSS {peak} bytes with {CONNECTIONS} connections (bound {RSS_BOUND})"
    );
}
