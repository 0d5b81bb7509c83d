//! Memory held for frames in progress, measured as the server's RSS: hundreds of
//! connections to the `echo` example (16 MiB frames allowed), each announcing an 8 MiB frame
//! (or the first fragment of a message), sending part of it and stalling. What each holds
//! beyond a connection that sent 100 bytes stays within 2.5 times what arrived.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::time::Duration;

use common::*;

const CONNECTIONS: usize = 300;

/// The server's RSS growth per connection once `CONNECTIONS` clients each sent `sent`
/// bytes of an 8 MiB binary frame (`fragmented`: of a message's first fragment).
fn held_per_connection(
    child: &Child,
    addr: SocketAddr,
    sent: usize,
    fragmented: bool,
) -> (f64, Vec<TcpStream>) {
    let before = rss_bytes(child.id());
    let first = if fragmented { 0x02 } else { 0x82 };
    let mut head = vec![first, 0x80 | 127];
    head.extend_from_slice(&(8u64 << 20).to_be_bytes());
    head.extend_from_slice(&[0; 4]); // mask key 0
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut client = raw_upgrade(addr, "/ws");
            client.write_all(&head).unwrap();
            client.write_all(&vec![7u8; sent]).unwrap();
            client
        })
        .collect();
    // The server reads what arrived, then waits for the rest.
    std::thread::sleep(scaled(Duration::from_millis(300)));
    let after = rss_bytes(child.id());
    (
        after.saturating_sub(before) as f64 / CONNECTIONS as f64,
        clients,
    )
}

#[test]
fn a_frame_in_progress_holds_at_most_about_twice_what_arrived() {
    if !raise_fd_limit(CONNECTIONS as u64 * 4 + 256) {
        eprintln!("skipped: needs {} descriptors", CONNECTIONS * 4);
        return;
    }
    for fragmented in [false, true] {
        let (mut child, addr) = start_example(
            "echo",
            &[("MAX_CONNECTIONS", (CONNECTIONS * 3).to_string())],
        );
        let (baseline, keep) = held_per_connection(&child, addr, 100, fragmented);
        let (held, keep_too) = held_per_connection(&child, addr, 10 * 1024, fragmented);
        let beyond = held - baseline;
        eprintln!(
            "fragmented {fragmented}: {baseline:.0} bytes per connection that sent 100 B, \
             {held:.0} per connection that sent 10 KiB: {beyond:.0} beyond ({:.2}x)",
            beyond / (10.0 * 1024.0)
        );
        drop((keep, keep_too));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            beyond <= 2.5 * 10.0 * 1024.0,
            "{beyond:.0} bytes held per connection for 10 KiB arrived"
        );
    }
}
