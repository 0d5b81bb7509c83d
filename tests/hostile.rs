//! Hostile clients over loopback, with raw bytes: slow and oversized upgrade heads, every
//! protocol violation and its close code, size limits checked at the frame header,
//! fragment floods, panicking handlers, the connection cap, peers that never read, floods
//! of bad requests, and memory under hundreds of hostile connections.
//!
//! Every client socket has read and write timeouts, so no test can hang; servers use short
//! timeouts so the whole file runs in a few seconds. Upper bounds on elapsed time are
//! stretched by `NESTFORGE_TEST_TIME_SCALE` under emulation (see `common::scaled`).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use nestforge_edge::prelude::*;
use serde::Deserialize;

// ---- the app: echo, a pattern registry, a panicking gateway -------------------------------

/// NestForge's events gateway loop: dispatch every frame, answer failures with the JSON
/// error frame.
struct Rpc(MicroserviceRegistry);

impl WebSocketGateway for Rpc {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        let registry = self.0.clone();
        Box::pin(async move {
            while let Some(Ok(message)) = socket.recv().await {
                let reply =
                    match handle_websocket_microservice_message(&ctx, &registry, message).await {
                        Ok(Some(reply)) => reply,
                        Ok(None) => continue,
                        Err(err) => err.to_message(),
                    };
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
        })
    }
}

/// Panics on the first message.
struct Panicker;

impl WebSocketGateway for Panicker {
    fn on_connect(&self, _ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            if let Some(Ok(_)) = socket.recv().await {
                panic!("gateway panicked on purpose");
            }
        })
    }
}

/// Answers one message, then returns (the server closes with 1000).
struct Once;

impl WebSocketGateway for Once {
    fn on_connect(&self, _ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            if let Some(Ok(message)) = socket.recv().await {
                let _ = socket.send(message).await;
            }
        })
    }
}

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn explode() -> Result<(), HandlerError> {
    panic!("handler panicked on purpose")
}

fn registry() -> MicroserviceRegistry {
    MicroserviceRegistry::builder()
        .message("app.add", |p: Add, _ctx| async move { Ok(p.a + p.b) })
        .message("app.panic", |_: (), _ctx| async move { explode() })
        .build()
}

module! { struct AppModule { providers: [] } }

/// Frame and message limits small enough to hit with a few bytes.
const MAX_FRAME: usize = 1024;
const MAX_MESSAGE: usize = 4096;

fn limits(endpoint: &str) -> WebSocketConfig {
    WebSocketConfig::new(endpoint)
        .max_frame_size(MAX_FRAME)
        .max_message_size(MAX_MESSAGE)
        .max_write_buffer_size(16 * 1024)
        .send_timeout(Duration::from_millis(300))
        .close_timeout(Duration::from_millis(500))
        .ping_interval(None)
}

fn server_limits() -> ServerConfig {
    ServerConfig::default()
        .handshake_timeout(Duration::from_millis(300))
        .shutdown_timeout(Duration::from_millis(500))
        .max_head_size(1024)
        .max_headers(8)
}

/// `/echo`, `/rpc`, `/panic` and `/once` with [`limits`] (adjusted by `tweak`) under `config`.
fn start_with(config: ServerConfig, tweak: fn(WebSocketConfig) -> WebSocketConfig) -> Running {
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway_config(Echo, tweak(limits("/echo")))
        .with_websocket_gateway_config(Rpc(registry()), tweak(limits("/rpc")))
        .with_websocket_gateway_config(Panicker, tweak(limits("/panic")))
        .with_websocket_gateway_config(Once, tweak(limits("/once")))
        .with_server_config(config)
        .into_server()
        .unwrap();
    spawn(server)
}

fn start() -> Running {
    start_with(server_limits(), |c| c)
}

// ---- test isolation and raw-client helpers ------------------------------------------------

/// Tests that measure the process's memory or load the machine run alone (write lock); the
/// others share.
static MEMORY: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MEMORY.read().unwrap_or_else(PoisonError::into_inner)
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEMORY.write().unwrap_or_else(PoisonError::into_inner)
}

/// Sets 5 s (scaled) read and write timeouts on a raw client.
fn bounded(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(scaled(Duration::from_secs(5))))
        .unwrap();
    s.set_write_timeout(Some(scaled(Duration::from_secs(5))))
        .unwrap();
    s
}

/// A raw client upgraded on `path`.
fn upgraded(addr: SocketAddr, path: &str) -> TcpStream {
    bounded(raw_upgrade(addr, path))
}

/// The first frame the server sends must be a Close with `code`, and the server must then
/// close the TCP connection (EOF): the close frame was flushed before the socket went away.
fn expect_close(s: &mut TcpStream, code: u16) {
    let (opcode, payload) = read_frame(s).expect("connection ended before a close frame");
    assert_eq!(
        opcode, 0x8,
        "expected a close frame, got opcode {opcode:#x}"
    );
    assert!(payload.len() >= 2, "close frame without a code");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
    expect_eof(s);
}

/// Nothing but the end of the stream follows.
fn expect_eof(s: &mut TcpStream) {
    let mut rest = [0u8; 256];
    match s.read(&mut rest) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes after the close frame"),
        Err(e) => panic!("expected EOF after the close frame, got {e}"),
    }
}

/// Sends `bytes` on a fresh `/echo` connection and expects the server's close `code`.
fn violation(bytes: &[u8], code: u16) {
    let _serial = shared();
    let server = start();
    let mut s = upgraded(server.addr, "/echo");
    s.write_all(bytes).unwrap();
    expect_close(&mut s, code);
}

/// One echo round trip.
fn echo(s: &mut TcpStream, text: &str) {
    s.write_all(&frame(true, 0x1, text.as_bytes())).unwrap();
    let (opcode, payload) = read_frame(s).unwrap();
    assert_eq!((opcode, payload.as_slice()), (0x1, text.as_bytes()));
}

/// Waits (at most 3 s, scaled) until `done` holds: the server counts a close only once the
/// close handshake is over.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + scaled(Duration::from_secs(3));
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The process's resident set size, from `/proc/self/status`.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

// ---- the upgrade ------------------------------------------------------------------------

#[test]
fn slowloris_head_gets_408_after_the_handshake_timeout() {
    let _serial = shared();
    let server = start();
    let mut s = bounded(raw(server.addr));
    let started = Instant::now();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Trickle a header byte every 50 ms, never finishing the head.
    let mut writer = s.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        for _ in 0..40 {
            if writer.write_all(b"X").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < scaled(Duration::from_millis(1500)),
        "answered after {elapsed:?}"
    );
    trickle.join().unwrap();

    // A client that sends nothing at all gets the same.
    let mut silent = bounded(raw(server.addr));
    let mut answer = Vec::new();
    let _ = silent.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 408"));
}

#[test]
fn oversized_head_gets_431() {
    let _serial = shared();
    let server = start();
    let head = format!(
        "GET /echo HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let answer = http(server.addr, &head);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[test]
fn too_many_headers_get_431() {
    let _serial = shared();
    let server = start();
    let mut head = String::from("GET /echo HTTP/1.1\r\nHost: x\r\n");
    for i in 0..20 {
        head.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    let answer = http(server.addr, &head);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[test]
fn over_max_connections_gets_503_before_the_upgrade() {
    let _serial = shared();
    let server = start_with(server_limits().max_connections(2), |c| c);
    let mut first = upgraded(server.addr, "/echo");
    let mut second = upgraded(server.addr, "/echo");
    let answer = http(server.addr, &upgrade_head("/echo"));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // The two upgraded connections are unaffected.
    echo(&mut first, "one");
    echo(&mut second, "two");
    // Once one leaves, a new client gets in.
    second
        .write_all(&frame(true, 0x8, &1000u16.to_be_bytes()))
        .unwrap();
    expect_close(&mut second, 1000);
    drop(second);
    let deadline = Instant::now() + scaled(Duration::from_secs(2));
    loop {
        let mut s = bounded(raw(server.addr));
        s.write_all(upgrade_head("/echo").as_bytes()).unwrap();
        let head = read_head(&mut s);
        if head.starts_with("HTTP/1.1 101") {
            echo(&mut s, "three");
            break;
        }
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        thread::sleep(Duration::from_millis(20));
    }
    echo(&mut first, "still here");
}

// ---- protocol violations and their close codes --------------------------------------------

#[test]
fn unmasked_frame_closes_1002() {
    violation(&[0x81, 0x02, b'h', b'i'], 1002);
}

#[test]
fn reserved_bits_close_1002() {
    for rsv in [0x40, 0x20, 0x10] {
        let mut bytes = frame(true, 0x1, b"hi");
        bytes[0] |= rsv;
        violation(&bytes, 1002);
    }
}

#[test]
fn unknown_opcodes_close_1002() {
    // Reserved data (0x3-0x7) and control (0xB-0xF) opcodes.
    for opcode in [0x3, 0x7, 0xB, 0xF] {
        violation(&frame(true, opcode, b"x"), 1002);
    }
}

#[test]
fn control_frame_over_125_bytes_closes_1002() {
    violation(&frame(true, 0x9, &[0u8; 126]), 1002);
}

#[test]
fn fragmented_control_frame_closes_1002() {
    violation(&frame(false, 0x9, b"ping"), 1002);
}

#[test]
fn continuation_without_a_start_closes_1002() {
    violation(&frame(true, 0x0, b"orphan"), 1002);
}

#[test]
fn new_data_frame_inside_a_fragmented_message_closes_1002() {
    let mut bytes = frame(false, 0x1, b"first half");
    bytes.extend(frame(true, 0x1, b"not a continuation"));
    violation(&bytes, 1002);
}

#[test]
fn invalid_utf8_text_closes_1007() {
    violation(&frame(true, 0x1, &[b'o', b'k', 0xff, 0xfe]), 1007);
    // Also when the bad byte is in a later fragment.
    let mut bytes = frame(false, 0x1, b"fine so far");
    bytes.extend(frame(true, 0x0, &[0xc0, 0x80]));
    violation(&bytes, 1007);
}

#[test]
fn oversized_frame_header_closes_1009_without_the_payload() {
    let _serial = shared();
    let server = start();
    for len in [MAX_FRAME as u64 + 1, 1 << 40] {
        let mut s = upgraded(server.addr, "/echo");
        let started = Instant::now();
        // Only the header: the payload is never sent, so the 1009 proves the limit is
        // checked as soon as the header arrives.
        s.write_all(&header(true, 0x2, len)).unwrap();
        expect_close(&mut s, 1009);
        assert!(started.elapsed() < scaled(Duration::from_secs(1)));
    }
}

#[test]
fn message_over_max_size_in_fragments_closes_1009() {
    let _serial = shared();
    let server = start();
    let mut s = upgraded(server.addr, "/echo");
    // Five 1000-byte fragments: each within the frame limit, together over 4096.
    let chunk = [b'x'; 1000];
    let mut bytes = frame(false, 0x1, &chunk);
    for i in 1..5 {
        bytes.extend(frame(i == 4, 0x0, &chunk));
    }
    s.write_all(&bytes).unwrap();
    expect_close(&mut s, 1009);

    // Exactly at the limit is fine.
    let mut s = upgraded(server.addr, "/echo");
    let mut bytes = frame(false, 0x2, &[7u8; MAX_MESSAGE / 4]);
    for i in 1..4 {
        bytes.extend(frame(i == 3, 0x0, &[7u8; MAX_MESSAGE / 4]));
    }
    s.write_all(&bytes).unwrap();
    let (opcode, payload) = read_frame(&mut s).unwrap();
    assert_eq!((opcode, payload.len()), (0x2, MAX_MESSAGE));
}

#[test]
fn fragment_flood_is_bounded_by_max_message_size() {
    let _serial = shared();
    let server = start();
    let mut s = upgraded(server.addr, "/echo");
    // 20,000 one-byte fragments (140 KB on the wire); the message limit (4096) ends it.
    let mut flood = frame(false, 0x2, b"x");
    for _ in 0..20_000 {
        flood.extend(frame(false, 0x0, b"x"));
    }
    let mut writer = s.try_clone().unwrap();
    let flooding = thread::spawn(move || {
        let _ = writer.write_all(&flood);
    });
    let started = Instant::now();
    let (opcode, payload) = read_frame(&mut s).expect("no close frame");
    assert_eq!(opcode, 0x8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    assert!(started.elapsed() < scaled(Duration::from_secs(2)));
    flooding.join().unwrap();
    drop(s);
    eventually("one close with 1009", || {
        server.server.stats().closes_with(1009) == 1
    });
}

#[test]
fn close_frames_are_flushed_before_the_socket_goes() {
    // A violation right behind a good request and followed by a ping: the reply and then
    // the close frame arrive, in order, then EOF; the ping behind the violation is not
    // answered (no pong after our close).
    let _serial = shared();
    let server = start();
    let mut reserved_bits = frame(true, 0x1, b"rsv");
    reserved_bits[0] |= 0x40;
    for violation in [reserved_bits, frame(true, 0x3, b"bad opcode")] {
        let mut s = upgraded(server.addr, "/echo");
        let mut bytes = frame(true, 0x1, b"before");
        bytes.extend(violation);
        bytes.extend(frame(true, 0x9, b"ping after the violation"));
        s.write_all(&bytes).unwrap();
        let (opcode, payload) = read_frame(&mut s).unwrap();
        assert_eq!((opcode, payload.as_slice()), (0x1, &b"before"[..]));
        expect_close(&mut s, 1002);
    }
}

#[test]
fn violation_read_ahead_still_sets_the_close_code() {
    // The gateway answers one message and returns; the violation right behind it was
    // already parsed, so the close says 1002, not 1000.
    let _serial = shared();
    let server = start();
    let mut s = upgraded(server.addr, "/once");
    let mut bytes = frame(true, 0x1, b"only one");
    let mut reserved_bits = frame(true, 0x1, b"rsv");
    reserved_bits[0] |= 0x40;
    bytes.extend(reserved_bits);
    s.write_all(&bytes).unwrap();
    let (opcode, payload) = read_frame(&mut s).unwrap();
    assert_eq!((opcode, payload.as_slice()), (0x1, &b"only one"[..]));
    expect_close(&mut s, 1002);

    // Without a violation the same gateway closes with 1000 and waits for our Close.
    let mut s = upgraded(server.addr, "/once");
    echo(&mut s, "only one");
    assert_eq!(read_close_code(&mut s), Some(1000));
    s.write_all(&frame(true, 0x8, &1000u16.to_be_bytes()))
        .unwrap();
    expect_eof(&mut s);
}

// ---- handlers -----------------------------------------------------------------------------

#[test]
fn panics_close_1011_and_the_server_keeps_serving() {
    let _serial = shared();
    let server = start();
    let mut bystander = upgraded(server.addr, "/echo");
    echo(&mut bystander, "before");

    // The gateway itself panics.
    let mut s = upgraded(server.addr, "/panic");
    s.write_all(&frame(true, 0x1, b"boom")).unwrap();
    expect_close(&mut s, 1011);

    // A pattern handler panics inside the dispatch.
    let mut s = upgraded(server.addr, "/rpc");
    let request = br#"{"kind":"message","pattern":"app.panic","payload":null,"id":1}"#;
    s.write_all(&frame(true, 0x1, request)).unwrap();
    expect_close(&mut s, 1011);

    // Same thread, still serving: the open connection and new ones.
    echo(&mut bystander, "after");
    let mut s = upgraded(server.addr, "/rpc");
    let request = br#"{"kind":"message","pattern":"app.add","payload":{"a":2,"b":3},"id":2}"#;
    s.write_all(&frame(true, 0x1, request)).unwrap();
    let (_, reply) = read_frame(&mut s).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        (reply["id"].as_i64(), reply["payload"].as_i64()),
        (Some(2), Some(5))
    );
    eventually("two closes with 1011", || {
        server.server.stats().closes_with(1011) == 2
    });
}

#[test]
fn thousand_bad_frames_then_a_good_one() {
    let _serial = shared();
    let server = start();
    let mut s = upgraded(server.addr, "/rpc");
    let mut bytes = Vec::new();
    for i in 0..1000 {
        let junk: &[u8] = match i % 4 {
            0 => b"not json",
            1 => b"{\"kind\":\"message\"",
            2 => b"{\"kind\":\"message\",\"pattern\":\"no.such\",\"id\":3}",
            _ => b"[1,2,3]",
        };
        bytes.extend(frame(true, 0x1, junk));
    }
    let good = br#"{"kind":"message","pattern":"app.add","payload":{"a":40,"b":2},"id":1001}"#;
    bytes.extend(frame(true, 0x1, good));
    let mut writer = s.try_clone().unwrap();
    let sending = thread::spawn(move || writer.write_all(&bytes).unwrap());
    for i in 0..1000 {
        let (opcode, payload) = read_frame(&mut s).unwrap();
        assert_eq!(opcode, 0x1);
        let frame: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert!(frame["error"]["code"].is_string(), "frame {i}: {frame}");
    }
    let (_, reply) = read_frame(&mut s).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["id"].as_i64(), Some(1001));
    assert_eq!(reply["payload"].as_i64(), Some(42));
    sending.join().unwrap();
    // The connection is still fine.
    s.write_all(&frame(true, 0x8, &1000u16.to_be_bytes()))
        .unwrap();
    expect_close(&mut s, 1000);
}

// ---- slow and numerous peers ----------------------------------------------------------------

#[test]
fn never_reading_client_does_not_stall_others_and_is_dropped() {
    let _alone = exclusive();
    let server = start();
    let before = rss_kib();
    let flooder = upgraded(server.addr, "/echo");
    let mut writer = flooder.try_clone().unwrap();
    let started = Instant::now();
    // Requests as fast as possible, replies never read: the server's echoes back up.
    let flooding = thread::spawn(move || {
        let request = frame(true, 0x2, &[0u8; 1000]);
        let mut sent = 0usize;
        loop {
            match writer.write_all(&request) {
                Ok(()) => sent += request.len(),
                Err(e) => return (sent, e.kind(), started.elapsed()),
            }
            if started.elapsed() > scaled(Duration::from_secs(10)) {
                return (sent, ErrorKind::TimedOut, started.elapsed());
            }
        }
    });
    thread::sleep(Duration::from_millis(100));

    // Meanwhile, on the same server thread, another client gets prompt echoes.
    let mut other = upgraded(server.addr, "/echo");
    for i in 0..50 {
        let t = Instant::now();
        echo(&mut other, &format!("ping {i}"));
        assert!(
            t.elapsed() < scaled(Duration::from_millis(500)),
            "echo took {:?}",
            t.elapsed()
        );
    }

    let (sent, kind, after) = flooding.join().unwrap();
    assert!(
        matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "flooder not dropped: {kind:?} after {sent} bytes"
    );
    assert!(
        after < scaled(Duration::from_secs(5)),
        "dropped only after {after:?}"
    );
    let grown = rss_kib().saturating_sub(before);
    eprintln!("never-reading client: {sent} bytes sent, dropped after {after:?}, RSS +{grown} KiB");
    assert!(grown < 30 * 1024, "RSS grew by {grown} KiB");
    eventually("one close with 1008", || {
        server.server.stats().closes_with(1008) == 1
    });
    echo(&mut other, "still served");
    drop(flooder);
}

#[test]
fn memory_stays_bounded_under_200_hostile_connections() {
    let _alone = exclusive();
    // Frames up to 1 MiB, so each stalled frame could claim a lot; heads get 10 s.
    let config = server_limits()
        .max_connections(512)
        .handshake_timeout(Duration::from_secs(10));
    let server = start_with(config, |c| {
        c.max_frame_size(1 << 20).max_message_size(1 << 20)
    });
    let mut well_behaved = upgraded(server.addr, "/echo");
    echo(&mut well_behaved, "warm-up");
    let before = rss_kib();

    let mut hostile = Vec::new();
    for i in 0..200 {
        match i % 3 {
            // Announce a 1 MiB frame (the limit), send 1 KiB of it, stall.
            0 => {
                let mut s = upgraded(server.addr, "/echo");
                let mut bytes = header(true, 0x2, 1 << 20);
                bytes.extend_from_slice(&[0u8; 1024]);
                s.write_all(&bytes).unwrap();
                hostile.push(s);
            }
            // Announce an 8 GiB frame: refused at the header.
            1 => {
                let mut s = upgraded(server.addr, "/echo");
                s.write_all(&header(true, 0x2, 1 << 33)).unwrap();
                hostile.push(s);
            }
            // Slowloris: half a head, never finished.
            _ => {
                let mut s = bounded(raw(server.addr));
                s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
                hostile.push(s);
            }
        }
    }
    // The well-behaved client is still served promptly.
    let t = Instant::now();
    echo(&mut well_behaved, "still served");
    assert!(t.elapsed() < scaled(Duration::from_millis(500)));
    // The refused ones are closed once their close handshake times out (500 ms); a
    // connection's close is counted a moment before it leaves the open count.
    // 67 stalled frames + 66 slowloris heads + the well-behaved client stay open.
    eventually("67 closes with 1009, 134 open", || {
        let stats = server.server.stats();
        stats.closes_with(1009) == 67 && stats.open_connections == 134
    });
    let stats = server.server.stats();
    let grown = rss_kib().saturating_sub(before);
    eprintln!(
        "200 hostile connections: RSS {before} KiB -> +{grown} KiB, {} open, {} closed with 1009",
        stats.open_connections,
        stats.closes_with(1009)
    );
    assert!(grown < 30 * 1024, "RSS grew by {grown} KiB");
    assert_eq!(stats.open_connections, 134);
    echo(&mut well_behaved, "done");
    drop(hostile);
}

#[test]
fn empty_fragment_flood_does_not_starve_other_connections() {
    // Empty continuation frames never reach the message limit and never complete a
    // message: the connection must still yield the thread to the others.
    let _alone = exclusive();
    let server = start();
    let flooder = upgraded(server.addr, "/echo");
    let flooding = flood(
        &flooder,
        frame(false, 0x1, b""),
        frame(false, 0x0, b"").repeat(10_000),
    );
    echoes_stay_prompt(server.addr);
    let sent = flooding.join().unwrap();
    eprintln!("empty-fragment flood: {sent} bytes in 1 s");
    drop(flooder);
}

#[test]
fn frames_pipelined_behind_the_upgrade_head_are_served() {
    // The upgrade head and the first frames in one write: nothing after the head is lost.
    let _serial = shared();
    let server = start();
    let mut s = bounded(raw(server.addr));
    let mut bytes = upgrade_head("/echo").into_bytes();
    bytes.extend(frame(true, 0x1, b"first"));
    bytes.extend(frame(true, 0x1, b"second"));
    s.write_all(&bytes).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for text in ["first", "second"] {
        let (opcode, payload) = read_frame(&mut s).unwrap();
        assert_eq!((opcode, payload.as_slice()), (0x1, text.as_bytes()));
    }
}

#[test]
fn ping_flood_from_a_never_reading_client_stays_bounded() {
    // Pings are answered by the transport, not by `send`, so `send_timeout` never fires;
    // the pongs that cannot be written must still not pile up.
    let _alone = exclusive();
    let server = start();
    let before = rss_kib();
    let flooder = upgraded(server.addr, "/echo");
    let flooding = flood(
        &flooder,
        Vec::new(),
        frame(true, 0x9, &[0u8; 125]).repeat(1000),
    );
    echoes_stay_prompt(server.addr);
    let sent = flooding.join().unwrap();
    let grown = rss_kib().saturating_sub(before);
    eprintln!("ping flood: {sent} bytes of pings in 1 s, RSS +{grown} KiB");
    assert!(grown < 30 * 1024, "RSS grew by {grown} KiB");
    drop(flooder);
}

/// Writes `prefix`, then `chunk` over and over for one second, on a clone of `stream`;
/// the thread returns how many bytes went out.
fn flood(stream: &TcpStream, prefix: Vec<u8>, chunk: Vec<u8>) -> thread::JoinHandle<usize> {
    let mut writer = stream.try_clone().unwrap();
    thread::spawn(move || {
        let _ = writer.write_all(&prefix);
        let started = Instant::now();
        let mut sent = 0usize;
        while started.elapsed() < Duration::from_millis(1000) {
            match writer.write_all(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => break,
            }
        }
        sent
    })
}

/// While a flood runs, another client still gets 20 echoes, each within 500 ms (scaled).
fn echoes_stay_prompt(addr: SocketAddr) {
    thread::sleep(Duration::from_millis(200));
    let mut other = upgraded(addr, "/echo");
    for i in 0..20 {
        let t = Instant::now();
        echo(&mut other, &format!("ping {i}"));
        assert!(
            t.elapsed() < scaled(Duration::from_millis(500)),
            "echo took {:?}",
            t.elapsed()
        );
    }
}
