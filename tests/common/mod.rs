//! Shared helpers for the loopback integration tests: a server on its own thread bound to
//! 127.0.0.1:0, WebSocket and raw-TCP clients, and timeouts so no test can hang.
#![allow(dead_code)] // each test file uses a different subset

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::StreamExt;
use nestforge_edge::{Server, ShutdownHandle};

pub type Client = WebSocketStream<smol::net::TcpStream>;

pub mod deflate;

#[allow(dead_code)] // its `main`
#[path = "../../examples/echo.rs"]
mod echo_example;

/// The echo gateway of `examples/echo.rs`: every text and binary message back.
#[allow(unused_imports)] // each test file uses a different subset
pub use echo_example::Echo;

/// How many times slower than native this run is allowed to be: `NESTFORGE_TEST_TIME_SCALE`
/// (a positive integer, default 1). `.ci/cross` sets it when the tests run under qemu-user.
pub fn time_scale() -> u32 {
    static SCALE: OnceLock<u32> = OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var("NESTFORGE_TEST_TIME_SCALE") {
        Err(_) => 1,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => panic!("NESTFORGE_TEST_TIME_SCALE must be a positive integer, not {v:?}"),
        },
    })
}

/// An upper bound on elapsed time (or a deadline that keeps a test from hanging), stretched
/// by [`time_scale`]. Lower bounds and the server's own timeouts are never scaled.
pub fn scaled(bound: Duration) -> Duration {
    bound * time_scale()
}

/// Fails the test if `future` takes longer than `secs` (times [`time_scale`]).
pub async fn within<T>(secs: u64, future: impl Future<Output = T>) -> T {
    let limit = scaled(Duration::from_secs(secs));
    futures_lite::future::or(future, async {
        smol::Timer::after(limit).await;
        panic!("timed out after {limit:?}");
    })
    .await
}

/// A server running on its own thread until dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Server,
    pub handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Shuts down gracefully and waits for `serve` to return.
    pub fn stop(mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `server` on 127.0.0.1:0 on a new thread, under `nestforge_edge::block_on` (the
/// run loop with its own epoll), or under `smol::block_on` (async-io's reactor) when
/// `NESTFORGE_EDGE_TEST_EXECUTOR=smol` (CI runs the loopback suites both ways).
pub fn spawn(server: Server) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = server.shutdown_handle();
    let s = server.clone();
    let smol = std::env::var("NESTFORGE_EDGE_TEST_EXECUTOR").is_ok_and(|v| v == "smol");
    let thread = std::thread::spawn(move || {
        if smol {
            smol::block_on(async {
                assert!(
                    !nestforge_edge::on_own_loop(),
                    "serving on async-io's reactor"
                );
                s.serve(listener).await
            })
            .unwrap()
        } else {
            nestforge_edge::block_on(async {
                // Where the platform has the own loop, its sockets are registered with it.
                let own = cfg!(any(target_os = "linux", target_os = "android"));
                assert_eq!(
                    nestforge_edge::on_own_loop(),
                    own,
                    "serving on the own loop"
                );
                s.serve(listener).await
            })
            .unwrap()
        }
    });
    Running {
        addr,
        server,
        handle,
        thread: Some(thread),
    }
}

/// A WebSocket client connected to `url`.
pub async fn connect(addr: SocketAddr, path: &str) -> Client {
    let stream = smol::net::TcpStream::connect(addr).await.unwrap();
    let (ws, response) = async_tungstenite::client_async(format!("ws://{addr}{path}"), stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// The next text frame (skipping pings), as a String.
pub async fn next_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    loop {
        match within(5, ws.next()).await {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends a text frame.
pub async fn send_text(ws: &mut Client, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// Blocking raw TCP client with a read timeout (10 s, scaled).
pub fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(scaled(Duration::from_secs(10))))
        .unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `request` and reads the whole HTTP answer (until the server closes).
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = raw(addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A valid upgrade request head for `path`.
pub fn upgrade_head(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Completes an upgrade on a raw socket; returns the socket positioned after the 101 head.
pub fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = raw(addr);
    s.write_all(upgrade_head(path).as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads up to and including `\r\n\r\n`, byte by byte (so nothing after the head is lost).
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The header of a masked client frame announcing `len` payload bytes (mask key included).
pub fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out
}

/// A masked client frame: `fin`, `opcode`, `payload` (mask key fixed).
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, opcode, payload.len() as u64);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Reads one server frame (unmasked): `(opcode, payload)`.
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b)?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    Ok((h[0] & 0x0f, payload))
}

/// Reads frames until a Close frame; returns its code (None for an empty close).
pub fn read_close_code(s: &mut TcpStream) -> Option<u16> {
    loop {
        let (op, payload) = read_frame(s).expect("connection ended before a close frame");
        if op == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

/// The path of example `name`: `cargo test` builds the examples next to the test binaries.
#[allow(dead_code)]
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(path.exists(), "build the examples first: {path:?}");
    path
}

/// Example `name` started on a free loopback port (`HOST`, `PORT`) with `env` besides, once
/// it accepts connections (10 s at most, scaled): the process and its address. The caller
/// stops it (`kill`, then `wait`).
#[allow(dead_code)]
pub fn start_example(name: &str, env: &[(&str, String)]) -> (std::process::Child, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(example(name))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = std::time::Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < scaled(Duration::from_secs(10)),
            "{name} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

/// Whether Python's `websockets` is installed; without it an interop test skips, except
/// under `CI`, where a missing client is a failure.
#[allow(dead_code)]
pub fn python_websockets() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install Python websockets"
        );
        eprintln!("skipped: python3 -m pip install websockets to run this test");
    }
    found
}

// ---- processes: descriptor limits, RSS ---------------------------------------------------

/// The soft and hard `RLIMIT_NOFILE` of this process.
pub fn fd_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next()?.parse().ok()?;
    let hard = fields.next()?.parse().unwrap_or(u64::MAX);
    Some((soft, hard))
}

/// Raises this process's soft descriptor limit to `needed`; `false` where it cannot.
pub fn raise_fd_limit(needed: u64) -> bool {
    let Some((soft, hard)) = fd_limits() else {
        return false;
    };
    if soft >= needed {
        return true;
    }
    if hard < needed {
        return false;
    }
    let raised = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={needed}:{hard}"))
        .status()
        .is_ok_and(|s| s.success());
    raised && fd_limits().is_some_and(|(soft, _)| soft >= needed)
}

pub fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// The peak resident set of process `pid` so far, in bytes.
#[allow(dead_code)]
pub fn peak_rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM:")
}

fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect(field);
    kib * 1024
}

/// `child`'s exit status once it exits, within `secs` (scaled); killed past that.
#[allow(dead_code)]
pub fn wait_exit(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + scaled(Duration::from_secs(secs));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within the deadline");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
