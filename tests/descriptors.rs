//! `serve` makes room for its connections' descriptors before the first client (Linux grows
//! the table by doubling, and in a process with more threads each growth waits 13-22 ms
//! inside `accept4`, stalling every connection of the serving thread). Its own test binary:
//! the table only grows, so another test's sockets would hide the effect.

#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use common::*;
use nestforge_edge::prelude::*;

module! { struct AppModule { providers: [] } }

struct Silent;

impl WebSocketGateway for Silent {
    fn on_connect(&self, _ctx: WebSocketContext, _socket: WebSocket) -> WebSocketFuture {
        Box::pin(async {})
    }
}

/// The descriptor table's size (`FDSize` in `/proc/self/status`).
fn fd_table_size() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
    line["FDSize:".len()..].trim().parse().unwrap()
}

/// The soft `RLIMIT_NOFILE` ("Max open files" in `/proc/self/limits`).
fn descriptor_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft = line["Max open files".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    soft.parse().unwrap_or(usize::MAX) // "unlimited"
}

#[test]
fn serve_makes_room_for_max_connections_descriptors_before_the_first_client() {
    // As far as the limit allows (1,024 is a common soft limit).
    let expected = descriptor_limit().min(3000);
    let before = fd_table_size();
    assert!(before < expected, "the table already holds {before}");
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway(Silent)
        .with_server_config(ServerConfig::default().max_connections(3000))
        .into_server()
        .unwrap();
    let running = spawn(server);
    // One upgrade answered: `serve` runs.
    drop(raw_upgrade(running.addr, "/ws"));
    let after = fd_table_size();
    assert!(
        after >= expected,
        "FDSize {before} -> {after}, expected {expected}"
    );
    running.stop();
}
