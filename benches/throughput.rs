//! Loopback throughput, latency and allocation bench for the runtime.
//!
//! ```text
//! cargo bench --bench throughput              # full matrix, ~1.5 min
//! cargo bench --bench throughput -- --quick   # smaller matrix, shorter windows, < 30 s
//! cargo bench --bench throughput -- dispatch  # only the cases whose name contains "dispatch"
//! ```
//!
//! Each case runs twice, back to back: against the gateway (`Server::serve` under
//! `smol::block_on` on its own thread, listener on `127.0.0.1:0`) and against a raw TCP echo
//! baseline (one thread, async-io, every byte reflected verbatim, so the client gets its own
//! masked frames back). The same client drives both; the ratio between the two is the figure
//! to quote, since absolute numbers on a small shared machine mean little.
//!
//! Output: a table on stdout, then one machine-readable line per case:
//! `case=... frames_per_s=... MiB_per_s=... p50_us=... p99_us=... allocs_per_frame=...`
//! followed by the baseline's frames/s and the ratio. Progress goes to stderr.
//!
//! Method
//! - The client is one thread running a busy-polling loop over non-blocking `std` sockets
//!   (hand-written masked frame encoding, a streaming frame decoder, `K` requests kept in
//!   flight on every connection). It deliberately uses no async runtime: async-io's reactor
//!   is process-global, and a client on it would end up polling the server's sockets and
//!   waking the server thread through a futex, which the gateway never pays in production.
//!   Busy polling also keeps the client's own wake-up latency out of the measurement; when a
//!   sweep finds nothing to do the client calls `yield_now`, so it does not starve other
//!   processes on a shared host.
//! - Each server lives only for its case, so two idle async-io threads never compete for
//!   the reactor.
//! - Latency is send-to-reply per message (replies come back in order on a connection); with
//!   `K` in flight it includes queueing behind the other `K - 1`.
//! - Frames and MiB/s count replies received (payload bytes, one direction) during the
//!   measured window, after a warm-up.
//! - `allocs_per_frame`: calls to `alloc`, `alloc_zeroed` and `realloc` made on the server
//!   thread during the measured window (a counting `#[global_allocator]` and a thread-local
//!   flag set by the server thread), divided by the replies received in that window.
//! - Threads are not pinned: the standard library has no affinity API and this bench takes
//!   no new dependency for it. The scheduler keeps two busy threads on two cores; for a
//!   stricter setup run the whole bench under `taskset -c 0,1`.
//! - Echo uses binary frames (as `wsload` does); dispatch sends the text request
//!   `{"kind":"message","pattern":"app.info","payload":null,"id":N}` to a gateway that
//!   forwards it to `handle_websocket_microservice_message`, whose handler resolves a
//!   provider and returns a small `Serialize` struct.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use nestforge_edge::prelude::*;
use nestforge_edge::ShutdownHandle;
use serde::Serialize;
use smol::{Async, LocalExecutor};

// --- allocation counting -----------------------------------------------------------------

/// The global allocator: `System`, plus a count of the allocations made on server threads
/// while a measurement window is open.
struct CountingAlloc;

/// Set by the client around the measured window.
static WINDOW_OPEN: AtomicBool = AtomicBool::new(false);
/// Allocations (`alloc`, `alloc_zeroed`, `realloc`) on server threads inside the window.
static SERVER_ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set once by each server thread. Const-initialised and without a destructor, so
    /// reading it never allocates (no recursion into the allocator).
    static ON_SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
}

#[inline]
fn count_alloc() {
    if WINDOW_OPEN.load(Relaxed) && ON_SERVER_THREAD.try_with(Cell::get).unwrap_or(false) {
        SERVER_ALLOCS.fetch_add(1, Relaxed);
    }
}

// SAFETY: the only `unsafe` in this bench. Every method forwards its arguments unchanged to
// `System`, which upholds the `GlobalAlloc` contract; the counting beside it touches only
// atomics and a const-initialised thread-local `Cell<bool>`, which neither allocate nor
// unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

// --- the gateway under test ----------------------------------------------------------------

/// Echoes text and binary messages (as `examples/echo.rs`).
struct Echo;

impl WebSocketGateway for Echo {
    fn on_connect(&self, _ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            while let Some(Ok(message)) = socket.recv().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err()
                {
                    break;
                }
            }
        })
    }
}

/// Forwards every frame to the pattern registry (as `examples/events_gateway.rs`).
struct Dispatch;

impl WebSocketGateway for Dispatch {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let Ok(patterns) = ctx.resolve::<Patterns>() else {
                return;
            };
            while let Some(Ok(message)) = socket.recv().await {
                let reply =
                    match handle_websocket_microservice_message(&ctx, &patterns.0, message).await {
                        Ok(Some(reply)) => reply,
                        Ok(None) => continue,
                        Err(err) => Message::Text(format!("error:{err}").into()),
                    };
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
        })
    }
}

/// A provider the `app.info` handler resolves.
struct AppConfig {
    app_name: &'static str,
}

/// The `app.info` reply: a plain struct, so the bench measures the runtime, not `json!`.
#[derive(Serialize)]
struct AppInfo {
    app_name: &'static str,
    transport: &'static str,
}

/// The pattern table, as a provider.
struct Patterns(MicroserviceRegistry);

fn patterns() -> Patterns {
    Patterns(
        MicroserviceRegistry::builder()
            .message("app.info", |_: (), ctx: MicroserviceContext| async move {
                let config = ctx.resolve::<AppConfig>()?;
                Ok(AppInfo {
                    app_name: config.app_name,
                    transport: "websocket",
                })
            })
            .build(),
    )
}

module! {
    struct BenchModule {
        providers: [AppConfig { app_name: "nestforge-edge bench" }, patterns()],
    }
}

/// A server running on its own thread for one case.
struct Running {
    addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
    thread: JoinHandle<()>,
}

impl Running {
    fn stop(self) {
        (self.stop)();
        if self.thread.join().is_err() {
            eprintln!("warning: server thread panicked");
        }
    }
}

/// Binds `127.0.0.1:0` and runs `serve` on a new thread marked as a server thread.
fn spawn_server<F>(name: &str, serve: F) -> io::Result<(SocketAddr, JoinHandle<()>)>
where
    F: FnOnce(TcpListener) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            ON_SERVER_THREAD.with(|flag| flag.set(true));
            serve(listener);
        })?;
    Ok((addr, thread))
}

/// The gateway: echo on `/echo`, pattern dispatch on `/rpc`, limits as `examples/echo.rs`.
fn start_gateway() -> Result<Running, Box<dyn std::error::Error>> {
    let config = |endpoint: &str| {
        WebSocketConfig::new(endpoint)
            .max_frame_size(16 << 20)
            .max_message_size(16 << 20)
            .max_write_buffer_size(256 * 1024)
    };
    let server = NestForgeFactory::<BenchModule>::create()?
        .with_websocket_gateway_config(Echo, config("/echo"))
        .with_websocket_gateway_config(Dispatch, config("/rpc"))
        .with_server_config(
            ServerConfig::default()
                .max_connections(1024)
                .shutdown_timeout(Duration::from_secs(2)),
        )
        .into_server()?;
    let handle: ShutdownHandle = server.shutdown_handle();
    let (addr, thread) = spawn_server("gateway", move |listener| {
        if let Err(e) = smol::block_on(server.serve(listener)) {
            eprintln!("warning: gateway stopped with {e}");
        }
    })?;
    Ok(Running {
        addr,
        stop: Box::new(move || handle.shutdown()),
        thread,
    })
}

/// The baseline: a single-thread async-io TCP echo that reflects every byte, handshake
/// included, with one 64 KiB buffer per connection and no per-message work.
fn start_raw_echo() -> io::Result<Running> {
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let (addr, thread) = spawn_server("raw-echo", move |listener| {
        let ex = LocalExecutor::new();
        let serve = async {
            let listener = Async::new(listener)?;
            loop {
                let accept = async { Some(listener.accept().await) };
                let stop = async {
                    let _ = stop_rx.recv().await;
                    None
                };
                match future::or(accept, stop).await {
                    None => return Ok::<(), io::Error>(()),
                    Some(Ok((mut stream, _))) => {
                        stream.get_ref().set_nodelay(true)?;
                        ex.spawn(async move {
                            let mut buf = vec![0u8; 64 * 1024];
                            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        })
                        .detach();
                    }
                    Some(Err(e)) => eprintln!("warning: raw echo accept failed: {e}"),
                }
            }
        };
        if let Err(e) = smol::block_on(ex.run(serve)) {
            eprintln!("warning: raw echo stopped with {e}");
        }
    })?;
    Ok(Running {
        addr,
        stop: Box::new(move || {
            let _ = stop_tx.try_send(());
        }),
        thread,
    })
}

// --- the client ------------------------------------------------------------------------------

/// What a case sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// A binary message of this many bytes, echoed back.
    Echo(usize),
    /// An `app.info` request; the reply is the handler's result.
    Dispatch,
}

/// One row of the matrix.
#[derive(Clone, Copy)]
struct Case {
    workload: Workload,
    conns: usize,
    in_flight: usize,
}

impl Case {
    fn name(&self) -> String {
        let what = match self.workload {
            Workload::Echo(size) => format!("echo/{}", size_label(size)),
            Workload::Dispatch => "dispatch/app.info".into(),
        };
        format!("{what}/{}x{}", self.conns, self.in_flight)
    }

    fn path(&self) -> &'static str {
        match self.workload {
            Workload::Echo(_) => "/echo",
            Workload::Dispatch => "/rpc",
        }
    }
}

fn size_label(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// What the server is expected to send back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Gateway,
    Raw,
}

/// The measured figures of one run.
struct Outcome {
    frames: u64,
    bytes: u64,
    window: Duration,
    /// Send-to-reply latencies in the window, in nanoseconds, sorted.
    latencies: Vec<u64>,
    allocs: u64,
    errors: u64,
}

impl Outcome {
    fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.window.as_secs_f64()
    }

    fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / self.window.as_secs_f64() / (1024.0 * 1024.0)
    }

    fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }

    fn allocs_per_frame(&self) -> f64 {
        self.allocs as f64 / self.frames.max(1) as f64
    }
}

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;

/// Appends a masked client frame (FIN set) to `out`.
fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// A streaming frame decoder: parses headers (masked or not) and skips payloads, so frames
/// of any size need no buffering. Reports each completed frame's opcode and payload length.
#[derive(Default)]
struct Decoder {
    head: [u8; 14],
    head_len: usize,
    opcode: u8,
    len: u64,
    /// Payload bytes of the current frame still to skip; `None` while reading a header.
    remaining: Option<u64>,
}

impl Decoder {
    fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(u8, u64)) {
        while !data.is_empty() {
            if let Some(remaining) = self.remaining {
                let take = remaining.min(data.len() as u64);
                data = &data[take as usize..];
                self.finish_payload(remaining - take, &mut on_frame);
                continue;
            }
            // Header: 2 bytes, then the extended length and the mask key.
            let want = if self.head_len < 2 {
                2
            } else {
                header_len(self.head[1])
            };
            let take = (want - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
            self.head_len += take;
            data = &data[take..];
            if self.head_len < 2 || self.head_len < header_len(self.head[1]) {
                continue;
            }
            self.opcode = self.head[0] & 0x0f;
            self.len = match self.head[1] & 0x7f {
                126 => u16::from_be_bytes([self.head[2], self.head[3]]).into(),
                127 => u64::from_be_bytes(self.head[2..10].try_into().unwrap_or_default()),
                n => n.into(),
            };
            self.head_len = 0;
            self.finish_payload(self.len, &mut on_frame);
        }
    }

    fn finish_payload(&mut self, remaining: u64, on_frame: &mut impl FnMut(u8, u64)) {
        if remaining == 0 {
            self.remaining = None;
            on_frame(self.opcode, self.len);
        } else {
            self.remaining = Some(remaining);
        }
    }
}

/// Header length from its second byte: 2, the extended length, the mask key if any.
fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// Reads one whole frame (blocking) from `stream`, `pending` holding bytes already read;
/// returns its opcode and unmasked payload. Used once per run to check the replies.
fn read_frame(stream: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<(u8, Vec<u8>)> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if pending.len() >= 2 {
            let head = header_len(pending[1]);
            if pending.len() >= head {
                let len = match pending[1] & 0x7f {
                    126 => u16::from_be_bytes([pending[2], pending[3]]) as usize,
                    127 => {
                        u64::from_be_bytes(pending[2..10].try_into().unwrap_or_default()) as usize
                    }
                    n => n as usize,
                };
                if pending.len() >= head + len {
                    let opcode = pending[0] & 0x0f;
                    let mut payload = pending[head..head + len].to_vec();
                    if pending[1] & 0x80 != 0 {
                        let mask = &pending[head - 4..head];
                        payload
                            .iter_mut()
                            .enumerate()
                            .for_each(|(i, b)| *b ^= mask[i & 3]);
                    }
                    pending.drain(..head + len);
                    return Ok((opcode, payload));
                }
            }
        }
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    mask: [u8; 4],
    /// Bytes queued for the socket, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    decoder: Decoder,
    /// Send times of the requests in flight, oldest first.
    sent: VecDeque<Instant>,
    next_id: u64,
    /// Got EOF or an error.
    dead: bool,
}

/// Opens a connection and completes the upgrade (for the raw echo: reads the reflected
/// request). Returns any bytes read past the response head.
fn connect(addr: SocketAddr, path: &str, target: Target, mask: [u8; 4]) -> io::Result<Conn> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    // Byte by byte: the handshake is not measured, and nothing past the head is consumed.
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 || head.len() > 8192 {
            return Err(io::Error::other("no upgrade response"));
        }
        head.push(byte[0]);
    }
    if target == Target::Gateway && !head.starts_with(b"HTTP/1.1 101") {
        let text = String::from_utf8_lossy(&head);
        return Err(io::Error::other(format!("upgrade refused: {text}")));
    }
    Ok(Conn {
        stream,
        mask,
        out: Vec::with_capacity(64 * 1024),
        out_pos: 0,
        decoder: Decoder::default(),
        sent: VecDeque::new(),
        next_id: 0,
        dead: false,
    })
}

/// Builds request frames for a case.
struct Requests {
    workload: Workload,
    /// The masked echo frame, built once per connection mask (it never changes).
    echo_payload: Vec<u8>,
    scratch: Vec<u8>,
}

impl Requests {
    fn new(workload: Workload) -> Self {
        let echo_payload = match workload {
            Workload::Echo(size) => (0..size).map(|i| b'a' + (i % 26) as u8).collect(),
            Workload::Dispatch => Vec::new(),
        };
        Requests {
            workload,
            echo_payload,
            scratch: Vec::with_capacity(128),
        }
    }

    /// The unmasked payload of request `id`.
    fn payload(&mut self, id: u64) -> (u8, &[u8]) {
        match self.workload {
            Workload::Echo(_) => (OP_BINARY, &self.echo_payload),
            Workload::Dispatch => {
                self.scratch.clear();
                let _ = write!(
                    self.scratch,
                    r#"{{"kind":"message","pattern":"app.info","payload":null,"id":{id}}}"#
                );
                (OP_TEXT, &self.scratch)
            }
        }
    }
}

/// Sends one request and checks its reply, before the load starts.
fn probe(conn: &mut Conn, requests: &mut Requests, target: Target) -> io::Result<()> {
    let (opcode, payload) = requests.payload(u64::MAX);
    let payload = payload.to_vec();
    let mut frame = Vec::new();
    encode_frame(&mut frame, opcode, &payload, conn.mask);
    conn.stream.write_all(&frame)?;
    let (got_op, got) = read_frame(&mut conn.stream, &mut Vec::new())?;
    let ok = match (target, requests.workload) {
        (Target::Raw, _) | (Target::Gateway, Workload::Echo(_)) => {
            got_op == opcode && got == payload
        }
        (Target::Gateway, Workload::Dispatch) => {
            let text = String::from_utf8_lossy(&got);
            got_op == OP_TEXT
                && text.starts_with(r#"{"id":18446744073709551615,"pattern":"app.info","#)
                && text.contains(r#""transport":"websocket""#)
        }
    };
    if ok {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&got[..got.len().min(200)]);
        Err(io::Error::other(format!(
            "unexpected reply {got_op:#x}: {text}"
        )))
    }
}

/// Timing of one run.
#[derive(Clone, Copy)]
struct Timing {
    warmup: Duration,
    measure: Duration,
}

/// Drives one case against a running server and measures it.
fn run_case(addr: SocketAddr, case: Case, target: Target, timing: Timing) -> io::Result<Outcome> {
    let mut requests = Requests::new(case.workload);
    let mut conns = Vec::with_capacity(case.conns);
    let mut seed = 0x9e37_79b9_u32;
    for _ in 0..case.conns {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        conns.push(connect(addr, case.path(), target, seed.to_ne_bytes())?);
    }
    probe(&mut conns[0], &mut requests, target)?;
    for conn in &conns {
        conn.stream.set_nonblocking(true)?;
    }
    // Echo frames are identical per connection: mask each once, copy afterwards.
    let templates: Vec<Vec<u8>> = match case.workload {
        Workload::Echo(_) => conns
            .iter()
            .map(|c| {
                let mut frame = Vec::new();
                let (opcode, payload) = requests.payload(0);
                encode_frame(&mut frame, opcode, payload, c.mask);
                frame
            })
            .collect(),
        Workload::Dispatch => Vec::new(),
    };
    let expected_len = match case.workload {
        Workload::Echo(size) => Some(size as u64),
        Workload::Dispatch => None,
    };

    let mut rbuf = vec![0u8; 256 * 1024];
    let mut latencies = Vec::with_capacity(1 << 20);
    let (mut frames, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let window_start = start + timing.warmup;
    let window_end = window_start + timing.measure;
    let drain_deadline = window_end + Duration::from_secs(5);
    let mut measuring = false;
    let mut sending = true;
    let mut allocs_before = 0;
    let mut window = Duration::ZERO;
    let mut allocs = 0;

    loop {
        let now = Instant::now();
        if !measuring && sending && now >= window_start {
            measuring = true;
            allocs_before = SERVER_ALLOCS.load(Relaxed);
            WINDOW_OPEN.store(true, Relaxed);
        }
        if measuring && now >= window_end {
            WINDOW_OPEN.store(false, Relaxed);
            allocs = SERVER_ALLOCS.load(Relaxed) - allocs_before;
            window = now - window_start;
            measuring = false;
            sending = false;
        }
        if !sending && (now >= drain_deadline || conns.iter().all(|c| c.sent.is_empty() || c.dead))
        {
            break;
        }
        let mut busy = false;
        for (i, conn) in conns.iter_mut().enumerate() {
            if conn.dead {
                continue;
            }
            // Replies.
            match conn.stream.read(&mut rbuf) {
                Ok(0) => {
                    conn.dead = true;
                    errors += 1;
                    continue;
                }
                Ok(n) => {
                    busy = true;
                    let at = Instant::now();
                    let sent = &mut conn.sent;
                    conn.decoder.feed(&rbuf[..n], |opcode, len| {
                        if opcode != OP_TEXT && opcode != OP_BINARY {
                            // A ping or a close: not a reply.
                            errors += u64::from(opcode == OP_CLOSE);
                            return;
                        }
                        let Some(t0) = sent.pop_front() else {
                            errors += 1;
                            return;
                        };
                        if expected_len.is_some_and(|want| want != len) {
                            errors += 1;
                        }
                        if measuring {
                            frames += 1;
                            bytes += len;
                            latencies.push((at - t0).as_nanos() as u64);
                        }
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    conn.dead = true;
                    errors += 1;
                    continue;
                }
            }
            // Top up to `in_flight` requests.
            if sending && conn.sent.len() < case.in_flight {
                if conn.out_pos == conn.out.len() {
                    conn.out.clear();
                    conn.out_pos = 0;
                }
                let at = Instant::now();
                while conn.sent.len() < case.in_flight {
                    match case.workload {
                        Workload::Echo(_) => conn.out.extend_from_slice(&templates[i]),
                        Workload::Dispatch => {
                            let (opcode, payload) = requests.payload(conn.next_id);
                            encode_frame(&mut conn.out, opcode, payload, conn.mask);
                        }
                    }
                    conn.next_id += 1;
                    conn.sent.push_back(at);
                }
            }
            // Requests.
            if conn.out_pos < conn.out.len() {
                match conn.stream.write(&conn.out[conn.out_pos..]) {
                    Ok(n) => {
                        busy = true;
                        conn.out_pos += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        conn.dead = true;
                        errors += 1;
                    }
                }
            }
        }
        if !busy {
            std::thread::yield_now();
        }
    }
    if window.is_zero() {
        return Err(io::Error::other("the run ended before its window closed"));
    }
    errors += conns.iter().filter(|c| !c.sent.is_empty()).count() as u64;
    close_all(conns);
    latencies.sort_unstable();
    Ok(Outcome {
        frames,
        bytes,
        window,
        latencies,
        allocs: allocs as u64,
        errors,
    })
}

/// Sends Close (1000) on every connection, half-closes, and waits (bounded) for EOF so the
/// server completes its close handshake before it is stopped.
fn close_all(mut conns: Vec<Conn>) {
    let mut rbuf = [0u8; 16 * 1024];
    for conn in conns.iter_mut().filter(|c| !c.dead) {
        let mut frame = Vec::new();
        encode_frame(&mut frame, OP_CLOSE, &1000u16.to_be_bytes(), conn.mask);
        let _ = conn.stream.set_nonblocking(false);
        let _ = conn.stream.write_all(&frame);
        let _ = conn.stream.shutdown(Shutdown::Write);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for conn in conns.iter_mut().filter(|c| !c.dead) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        while let Ok(1..) = conn.stream.read(&mut rbuf) {}
    }
}

// --- driver ------------------------------------------------------------------------------------

fn matrix(quick: bool) -> Vec<Case> {
    let case = |workload, conns, in_flight| Case {
        workload,
        conns,
        in_flight,
    };
    use Workload::{Dispatch, Echo};
    if quick {
        vec![
            case(Echo(128), 1, 1),
            case(Echo(128), 16, 16),
            case(Echo(128), 256, 1),
            case(Echo(65536), 16, 16),
            case(Dispatch, 1, 1),
            case(Dispatch, 16, 16),
        ]
    } else {
        vec![
            case(Echo(128), 1, 1),
            case(Echo(128), 16, 16),
            case(Echo(128), 256, 1),
            case(Echo(128), 256, 16),
            case(Echo(16), 16, 16),
            case(Echo(1024), 16, 16),
            case(Echo(16384), 16, 16),
            case(Echo(65536), 16, 16),
            case(Echo(65536), 1, 1),
            case(Dispatch, 1, 1),
            case(Dispatch, 16, 16),
            case(Dispatch, 256, 1),
        ]
    }
}

/// Starts the server for `target`, runs `case` against it, stops it.
fn measure(
    case: Case,
    target: Target,
    timing: Timing,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let server = match target {
        Target::Gateway => start_gateway()?,
        Target::Raw => start_raw_echo()?,
    };
    let outcome = run_case(server.addr, case, target, timing);
    server.stop();
    Ok(outcome?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; anything not an option filters cases by name.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let timing = if quick {
        Timing {
            warmup: Duration::from_millis(250),
            measure: Duration::from_secs(1),
        }
    } else {
        Timing {
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
        }
    };
    let cases: Vec<Case> = matrix(quick)
        .into_iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name().contains(f.as_str())))
        .collect();
    eprintln!(
        "throughput: {} cases x (gateway, raw TCP echo), {:?} warm-up + {:?} each{}",
        cases.len(),
        timing.warmup,
        timing.measure,
        if quick { " (quick)" } else { "" }
    );

    let started = Instant::now();
    let mut rows = Vec::new();
    for (i, &case) in cases.iter().enumerate() {
        let name = case.name();
        // Baseline first, then the gateway, back to back, so drift hits both alike.
        let mut results = Vec::new();
        for target in [Target::Raw, Target::Gateway] {
            let label = match target {
                Target::Gateway => "gateway",
                Target::Raw => "raw",
            };
            eprint!("[{}/{}] {name} {label} ... ", i + 1, cases.len());
            match measure(case, target, timing) {
                Ok(o) => {
                    eprintln!(
                        "{:.0} frames/s, p99 {:.0} us{}",
                        o.frames_per_s(),
                        o.percentile_us(0.99),
                        if o.errors > 0 {
                            format!(", {} errors", o.errors)
                        } else {
                            String::new()
                        }
                    );
                    results.push(Some(o));
                }
                Err(e) => {
                    eprintln!("failed: {e}");
                    results.push(None);
                }
            }
        }
        let gateway = results.pop().flatten();
        let raw = results.pop().flatten();
        rows.push((name, gateway, raw));
    }
    eprintln!(
        "throughput: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    println!();
    println!(
        "| {:<26} | {:>10} | {:>8} | {:>7} | {:>8} | {:>12} | {:>10} | {:>9} | {:>6} |",
        "case",
        "frames/s",
        "MiB/s",
        "p50 us",
        "p99 us",
        "allocs/frame",
        "raw fr/s",
        "raw p99",
        "vs raw"
    );
    println!(
        "|{:-<28}|{:->12}|{:->10}|{:->9}|{:->10}|{:->14}|{:->12}|{:->11}|{:->8}|",
        "", "", "", "", "", "", "", "", ""
    );
    for (name, gateway, raw) in &rows {
        let Some(g) = gateway else {
            println!("| {name:<26} | failed |");
            continue;
        };
        let (raw_fps, raw_p99, ratio) = match raw {
            Some(r) => (
                format!("{:.0}", r.frames_per_s()),
                format!("{:.0}", r.percentile_us(0.99)),
                format!("{:.2}", g.frames_per_s() / r.frames_per_s()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {:<26} | {:>10.0} | {:>8.2} | {:>7.1} | {:>8.1} | {:>12.2} | {:>10} | {:>9} | {:>6} |",
            name,
            g.frames_per_s(),
            g.mib_per_s(),
            g.percentile_us(0.5),
            g.percentile_us(0.99),
            g.allocs_per_frame(),
            raw_fps,
            raw_p99,
            ratio
        );
    }
    println!();
    for (name, gateway, raw) in &rows {
        let Some(g) = gateway else {
            println!("case={name} failed=1");
            continue;
        };
        let mut line = format!(
            "case={name} frames_per_s={:.0} MiB_per_s={:.2} p50_us={:.1} p99_us={:.1} allocs_per_frame={:.3}",
            g.frames_per_s(),
            g.mib_per_s(),
            g.percentile_us(0.5),
            g.percentile_us(0.99),
            g.allocs_per_frame()
        );
        if let Some(r) = raw {
            line += &format!(
                " raw_frames_per_s={:.0} raw_p50_us={:.1} raw_p99_us={:.1} raw_allocs_per_frame={:.3} ratio_vs_raw={:.3}",
                r.frames_per_s(),
                r.percentile_us(0.5),
                r.percentile_us(0.99),
                r.allocs_per_frame(),
                g.frames_per_s() / r.frames_per_s()
            );
        }
        let errors = g.errors + raw.as_ref().map_or(0, |r| r.errors);
        line += &format!(" errors={errors}");
        println!("{line}");
    }
    Ok(())
}
