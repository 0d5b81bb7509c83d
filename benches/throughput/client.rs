//! The load client: one thread, non-blocking `std` sockets, blocking in the OS poller
//! (epoll, kqueue) through `polling`, `K` requests kept in flight on every connection.
//!
//! It uses its own `Poller`, not async-io's process-global reactor: a client on that reactor
//! would end up polling the in-process server's sockets and waking the server thread through
//! a futex, which the gateway never pays in production. Blocking in the poller (rather than
//! spinning) leaves the core to the server when both share one, as on a one-core device.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};

use crate::alloc;
use crate::compress::{deflate, RSV1};
use crate::frames::{
    encode_frame, encode_message, Decoder, Frame, KEEP, OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT,
};

/// Frames a connection may send before the first reply (banners) and still count as sane.
const MAX_BANNERS: usize = 4;
/// Bound on connecting, the upgrade, and the first reply.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long replies still in flight are awaited after the window closes.
const DRAIN: Duration = Duration::from_secs(5);

/// Where to connect.
#[derive(Clone)]
pub struct Endpoint {
    /// Tried in order; the first that accepts is used.
    pub addrs: Vec<SocketAddr>,
    /// The `Host` header.
    pub host: String,
    pub path: String,
    /// `false` for the raw TCP echo, which reflects the upgrade request instead of answering.
    pub websocket: bool,
    /// Offer `permessage-deflate` (and fail when the gateway declines it): requests go
    /// compressed, compressed replies are inflated.
    pub deflate: bool,
}

/// What each request is.
#[derive(Clone)]
pub enum Body {
    /// The same message every time.
    Fixed { opcode: u8, payload: Vec<u8> },
    /// `{"kind":"message","pattern":"app.info","payload":null,"id":N}`, `N` counting up.
    NumberedAppInfo,
}

impl Body {
    fn write(&self, id: u64, scratch: &mut Vec<u8>) -> (u8, usize) {
        match self {
            Body::Fixed { opcode, payload } => {
                scratch.clear();
                scratch.extend_from_slice(payload);
                (*opcode, payload.len())
            }
            Body::NumberedAppInfo => {
                scratch.clear();
                let _ = write!(
                    scratch,
                    r#"{{"kind":"message","pattern":"app.info","payload":null,"id":{id}}}"#
                );
                (OP_TEXT, scratch.len())
            }
        }
    }
}

/// How replies are checked.
#[derive(Clone)]
pub enum Expect {
    /// The request back: the same opcode, the same first bytes, and (when `len` is set)
    /// the same length.
    Echo {
        opcode: u8,
        len: Option<u64>,
        prefix: Vec<u8>,
    },
    /// A NestForge reply to a `message` request for `pattern`: the reply shape
    /// `"pattern":P,"payload":` is a reply, `"pattern":P,"error":` or a text starting with
    /// `error:` an error frame; anything else a mismatch.
    Reply { ok: Vec<u8>, error: Vec<u8> },
}

impl Expect {
    /// The reply check for a NestForge `message` request on `pattern`.
    pub fn reply(pattern: &str) -> Expect {
        let literal = serde_json::to_string(pattern).unwrap_or_default();
        Expect::Reply {
            ok: format!(r#""pattern":{literal},"payload":"#).into_bytes(),
            error: format!(r#""pattern":{literal},"error":"#).into_bytes(),
        }
    }

    /// The echo check for `body`.
    pub fn echo(body: &Body) -> Expect {
        match body {
            Body::Fixed { opcode, payload } => Expect::Echo {
                opcode: *opcode,
                len: Some(payload.len() as u64),
                prefix: payload[..payload.len().min(KEEP)].to_vec(),
            },
            // The ids differ: only the part before them is checked.
            Body::NumberedAppInfo => Expect::Echo {
                opcode: OP_TEXT,
                len: None,
                prefix: br#"{"kind":"message","pattern":"app.info","payload":null,"id":"#.to_vec(),
            },
        }
    }

    fn check(&self, opcode: u8, len: u64, prefix: &[u8]) -> Verdict {
        match self {
            Expect::Echo {
                opcode: want_op,
                len: want_len,
                prefix: want,
            } => {
                let n = want.len().min(prefix.len());
                if opcode == *want_op
                    && want_len.is_none_or(|l| l == len)
                    && prefix.len() >= want.len().min(len as usize)
                    && prefix[..n] == want[..n]
                {
                    Verdict::Reply
                } else if is_error_frame(prefix) {
                    Verdict::Error
                } else {
                    Verdict::Mismatch
                }
            }
            Expect::Reply { ok, error } => {
                if is_error_frame(prefix) || object_with(prefix, error) {
                    Verdict::Error
                } else if (opcode == OP_TEXT || opcode == OP_BINARY) && object_with(prefix, ok) {
                    Verdict::Reply
                } else {
                    Verdict::Mismatch
                }
            }
        }
    }
}

/// events_gateway's `error:...` text, or a NestForge error frame
/// `{"id":..,"pattern":..,"error":{"code":..}}` / `{"error":{"code":..}}`.
fn is_error_frame(payload: &[u8]) -> bool {
    payload.starts_with(b"error:")
        || (payload.starts_with(b"{") && contains(payload, br#""error":{"code":"#))
}

/// `payload` is a JSON object whose first key is `marker`'s, or whose first key is `"id"`
/// and whose second is `marker`'s: the order NestForge writes replies in. (A greeting that
/// quotes a request, as events_gateway's does, is not taken for a reply.)
fn object_with(payload: &[u8], marker: &[u8]) -> bool {
    let Some(rest) = payload.strip_prefix(b"{") else {
        return false;
    };
    rest.starts_with(marker)
        || rest.starts_with(br#""id":"#)
            && rest
                .windows(marker.len() + 1)
                .any(|w| w[0] == b',' && &w[1..] == marker)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Reply,
    Error,
    Mismatch,
}

/// The load of one run.
#[derive(Clone)]
pub struct Load {
    pub conns: usize,
    pub in_flight: usize,
    pub body: Body,
    pub expect: Expect,
    /// Split each message into frames of at most this many bytes.
    pub max_frame: Option<usize>,
}

/// Timing of one run.
#[derive(Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
    /// Poll without blocking (a whole core for the client).
    pub spin: bool,
}

/// The measured figures of one run.
pub struct Outcome {
    pub frames: u64,
    pub bytes: u64,
    pub window: Duration,
    /// Send-to-reply latencies in the window, in nanoseconds, sorted.
    pub latencies: Vec<u64>,
    /// Allocations on in-process server threads during the window.
    pub allocs: u64,
    /// Error frames, mismatched or unsolicited replies, missing replies, closed connections.
    pub errors: u64,
    /// What the first error was.
    pub first_error: Option<String>,
    /// Frames each connection sent before its first reply (a greeting), summed.
    pub banners: u64,
    /// The least-served connection's replies in the window over the mean (1.0: even).
    pub min_share: f64,
    /// Bytes read from and written to the sockets in the window (frame headers included).
    pub wire_in: u64,
    pub wire_out: u64,
}

impl Outcome {
    pub fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.window.as_secs_f64()
    }

    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / self.window.as_secs_f64() / (1024.0 * 1024.0)
    }

    pub fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }

    pub fn allocs_per_frame(&self) -> f64 {
        self.allocs as f64 / self.frames.max(1) as f64
    }

    /// Bytes on the wire per echoed message, both ways.
    pub fn wire_per_frame(&self) -> f64 {
        (self.wire_in + self.wire_out) as f64 / self.frames.max(1) as f64
    }
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
    text.escape_debug().to_string()
}

// --- connections -------------------------------------------------------------------------------

/// One client connection.
struct Conn {
    stream: TcpStream,
    mask: [u8; 4],
    /// Bytes queued for the socket, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// The poller watches for writability (output is pending).
    want_write: bool,
    decoder: Decoder,
    /// Send times of the requests in flight, oldest first.
    sent: VecDeque<Instant>,
    next_id: u64,
    /// Replies received in the window.
    replies: u64,
    /// Got EOF, a close or an error.
    dead: bool,
    /// `permessage-deflate` was agreed: requests are sent compressed.
    deflate: bool,
    /// Bytes read and written so far.
    wire_in: u64,
    wire_out: u64,
}

impl Conn {
    /// Appends the request `payload` as a message, compressed when agreed.
    fn encode(&self, out: &mut Vec<u8>, opcode: u8, payload: &[u8], max_frame: Option<usize>) {
        if self.deflate {
            encode_message(out, RSV1 | opcode, &deflate(payload), self.mask, max_frame);
        } else {
            encode_message(out, opcode, payload, self.mask, max_frame);
        }
    }

    /// Queues a pong for a ping's payload.
    fn pong(&mut self, payload: &[u8]) {
        encode_frame(&mut self.out, 0x80 | 0xA, payload, self.mask);
    }
}

/// A TCP connection to the first address that accepts one.
fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::other("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, SETUP_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens a connection and completes the upgrade (for the raw echo: reads the reflected
/// request). Nothing past the response head is consumed.
fn connect(endpoint: &Endpoint, mask: [u8; 4]) -> io::Result<Conn> {
    let mut stream = connect_any(&endpoint.addrs)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
    stream.set_write_timeout(Some(SETUP_TIMEOUT))?;
    let offer = if endpoint.deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
        endpoint.path, endpoint.host
    )?;
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    // Byte by byte: the handshake is not measured, and a greeting frame right behind the
    // head stays in the socket for the decoder.
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 || head.len() > 8192 {
            return Err(io::Error::other(
                "the server closed before the upgrade response",
            ));
        }
        head.push(byte[0]);
    }
    if endpoint.websocket && !head.starts_with(b"HTTP/1.1 101") {
        let text = String::from_utf8_lossy(&head);
        let status = text.lines().next().unwrap_or_default();
        return Err(io::Error::other(format!("upgrade refused: {status}")));
    }
    let agreed = String::from_utf8_lossy(&head).lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("sec-websocket-extensions: permessage-deflate")
    });
    if endpoint.deflate && !agreed {
        return Err(io::Error::other(
            "the gateway declined permessage-deflate (a gateway of this crate accepts it when \
             built with --features deflate)",
        ));
    }
    Ok(Conn {
        stream,
        mask,
        out: Vec::with_capacity(64 * 1024),
        out_pos: 0,
        want_write: false,
        decoder: Decoder::default(),
        sent: VecDeque::new(),
        next_id: 0,
        replies: 0,
        dead: false,
        deflate: agreed,
        wire_in: 0,
        wire_out: 0,
    })
}

/// Sends one request and reads (blocking, bounded) up to its reply; frames before the reply
/// are a greeting and skipped. Returns how many were skipped.
fn probe(conn: &mut Conn, load: &Load) -> io::Result<u64> {
    let mut scratch = Vec::new();
    let (opcode, _) = load.body.write(u64::MAX, &mut scratch);
    let mut frame = Vec::new();
    conn.encode(&mut frame, opcode, &scratch, load.max_frame);
    conn.stream.write_all(&frame)?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut banners = Vec::new();
    let mut outcome: Option<io::Result<()>> = None;
    while outcome.is_none() {
        let n = match conn.stream.read(&mut chunk) {
            Ok(0) => return Err(io::Error::other("the server closed the connection")),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let seen = match banners.last() {
                    Some(b) => format!(" (got only: {b})"),
                    None => String::new(),
                };
                return Err(io::Error::other(format!(
                    "no reply to the first request within {SETUP_TIMEOUT:?}{seen}"
                )));
            }
            Err(e) => return Err(e),
        };
        let mut pongs = Vec::new();
        conn.decoder.feed(&chunk[..n], |frame| match frame {
            Frame::Control(OP_PING, payload) => pongs.push(payload.to_vec()),
            Frame::Control(OP_CLOSE, payload) => {
                outcome.get_or_insert(Err(io::Error::other(format!(
                    "the server closed the connection: {}",
                    close_reason(payload)
                ))));
            }
            Frame::Control(..) => {}
            Frame::Message(op, len, prefix) if outcome.is_none() => {
                match load.expect.check(op, len, prefix) {
                    Verdict::Reply => outcome = Some(Ok(())),
                    Verdict::Error => {
                        let hint = match load.expect {
                            Expect::Echo { .. } => {
                                " (expected the frame back: does the gateway echo? a NestForge request \
                                 is {\"kind\":\"message\",\"pattern\":..})"
                            }
                            Expect::Reply { .. } => "",
                        };
                        outcome = Some(Err(io::Error::other(format!(
                            "the first request got an error frame: {}{hint}",
                            preview(prefix)
                        ))))
                    }
                    Verdict::Mismatch => banners.push(preview(prefix)),
                }
            }
            Frame::Message(_, _, prefix) => {
                outcome = Some(Err(io::Error::other(format!(
                    "an unsolicited frame after the first reply: {}",
                    preview(prefix)
                ))))
            }
        });
        for payload in pongs {
            conn.pong(&payload);
        }
        if !conn.out.is_empty() {
            conn.stream.write_all(&conn.out)?;
            conn.out.clear();
        }
        if banners.len() > MAX_BANNERS {
            return Err(io::Error::other(format!(
                "no matching reply; got: {}",
                banners.last().map_or("", String::as_str)
            )));
        }
    }
    outcome.unwrap_or(Ok(()))?;
    Ok(banners.len() as u64)
}

fn close_reason(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => format!(
            "close {} {}",
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason)
        ),
        _ => "close".into(),
    }
}

/// Opens `load.conns` connections and checks each with one request. Errors name the
/// connection that failed.
fn open_all(endpoint: &Endpoint, load: &Load) -> io::Result<(Vec<Conn>, u64)> {
    let mut conns = Vec::with_capacity(load.conns);
    let mut banners = 0;
    let mut seed = 0x9e37_79b9_u32;
    for n in 1..=load.conns {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let context = |e: io::Error| {
            let hint = if e.raw_os_error() == Some(24) {
                " (raise the open-file limit: ulimit -n)"
            } else {
                ""
            };
            io::Error::new(
                e.kind(),
                format!("connection {n} of {}: {e}{hint}", load.conns),
            )
        };
        let mut conn = connect(endpoint, seed.to_ne_bytes()).map_err(context)?;
        banners += probe(&mut conn, load).map_err(context)?;
        conns.push(conn);
    }
    Ok((conns, banners))
}

// --- the run -------------------------------------------------------------------------------------

/// Counts of one run, filled by [`Run::on_frame`].
struct Tally {
    frames: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    latencies: Vec<u64>,
}

impl Tally {
    fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// Drives `load` against `endpoint` and measures it.
pub fn run(endpoint: &Endpoint, load: &Load, timing: Timing) -> io::Result<Outcome> {
    let (mut conns, banners) = open_all(endpoint, load)?;
    let poller = Poller::new()?;
    for (key, conn) in conns.iter().enumerate() {
        conn.stream.set_nonblocking(true)?;
        // SAFETY: every stream is deleted from the poller (`forget_all`) before it is closed;
        // the poller is dropped after.
        unsafe { poller.add_with_mode(&conn.stream, Event::readable(key), PollMode::Level)? };
    }
    let result = drive(&poller, &mut conns, load, timing);
    forget_all(&poller, &conns);
    close_all(conns);
    let mut outcome = result?;
    outcome.banners = banners;
    Ok(outcome)
}

fn forget_all(poller: &Poller, conns: &[Conn]) {
    for conn in conns {
        let _ = poller.delete(&conn.stream);
    }
}

fn drive(poller: &Poller, conns: &mut [Conn], load: &Load, timing: Timing) -> io::Result<Outcome> {
    // Fixed messages are identical per connection: encode each once, copy afterwards.
    let mut scratch = Vec::with_capacity(256);
    let templates: Vec<Vec<u8>> = match load.body {
        Body::Fixed { .. } => conns
            .iter()
            .map(|c| {
                let mut frame = Vec::new();
                let (opcode, _) = load.body.write(0, &mut scratch);
                c.encode(&mut frame, opcode, &scratch, load.max_frame);
                frame
            })
            .collect(),
        Body::NumberedAppInfo => Vec::new(),
    };
    let mut tally = Tally {
        frames: 0,
        bytes: 0,
        errors: 0,
        first_error: None,
        latencies: Vec::with_capacity(1 << 20),
    };
    let mut rbuf = vec![0u8; 256 * 1024];
    let mut events = Events::new();
    let start = Instant::now();
    let window_start = start + timing.warmup;
    let window_end = window_start + timing.measure;
    let drain_deadline = window_end + DRAIN;
    let mut measuring = false;
    let mut sending = true;
    let mut allocs_before = 0;
    let mut window = Duration::ZERO;
    let mut allocs = 0;
    let wire = |conns: &[Conn]| {
        conns
            .iter()
            .fold((0, 0), |(i, o), c| (i + c.wire_in, o + c.wire_out))
    };
    let mut wire_before = (0, 0);
    let mut wire_in_window = (0, 0);

    // The first requests on every connection.
    for (i, conn) in conns.iter_mut().enumerate() {
        top_up(conn, load, &templates, i, &mut scratch);
        flush(poller, conn, i, &mut tally);
    }
    loop {
        let now = Instant::now();
        if !measuring && sending && now >= window_start {
            measuring = true;
            allocs_before = alloc::open_window();
            wire_before = wire(conns);
        }
        if measuring && now >= window_end {
            allocs = alloc::close_window(allocs_before);
            let after = wire(conns);
            wire_in_window = (after.0 - wire_before.0, after.1 - wire_before.1);
            window = now - window_start;
            measuring = false;
            sending = false;
        }
        if !sending && (now >= drain_deadline || conns.iter().all(|c| c.sent.is_empty() || c.dead))
        {
            break;
        }
        let deadline = if !sending {
            drain_deadline
        } else if measuring {
            window_end
        } else {
            window_start
        };
        let timeout = if timing.spin {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(now)
        };
        events.clear();
        poller.wait(&mut events, Some(timeout))?;
        if timing.spin && events.is_empty() {
            std::thread::yield_now();
        }
        for ev in events.iter() {
            let i = ev.key;
            let Some(conn) = conns.get_mut(i) else {
                continue;
            };
            if conn.dead {
                continue;
            }
            if ev.readable {
                match conn.stream.read(&mut rbuf) {
                    Ok(0) => {
                        kill(poller, conn);
                        tally.error(|| "the server closed a connection".into());
                        continue;
                    }
                    Ok(n) => {
                        let at = Instant::now();
                        conn.wire_in += n as u64;
                        receive(conn, &rbuf[..n], at, measuring, load, &mut tally);
                        if conn.dead {
                            kill(poller, conn);
                            continue;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        kill(poller, conn);
                        tally.error(|| format!("read: {e}"));
                        continue;
                    }
                }
                if sending {
                    top_up(conn, load, &templates, i, &mut scratch);
                }
            }
            flush(poller, conn, i, &mut tally);
        }
    }
    if window.is_zero() {
        return Err(io::Error::other("the run ended before its window closed"));
    }
    let missing: usize = conns.iter().map(|c| c.sent.len()).sum();
    if missing > 0 {
        tally.errors += missing as u64;
        tally
            .first_error
            .get_or_insert_with(|| format!("{missing} replies missing after {DRAIN:?}"));
    }
    tally.latencies.sort_unstable();
    let mean = tally.frames as f64 / conns.len().max(1) as f64;
    let least = conns.iter().map(|c| c.replies).min().unwrap_or(0);
    Ok(Outcome {
        min_share: if mean > 0.0 { least as f64 / mean } else { 0.0 },
        frames: tally.frames,
        bytes: tally.bytes,
        window,
        latencies: tally.latencies,
        allocs: allocs as u64,
        errors: tally.errors,
        first_error: tally.first_error,
        banners: 0,
        wire_in: wire_in_window.0,
        wire_out: wire_in_window.1,
    })
}

/// Decodes replies read at `at`.
fn receive(
    conn: &mut Conn,
    data: &[u8],
    at: Instant,
    measuring: bool,
    load: &Load,
    tally: &mut Tally,
) {
    let mut pongs: Vec<Vec<u8>> = Vec::new();
    let mut closed = false;
    let sent = &mut conn.sent;
    let replies = &mut conn.replies;
    conn.decoder.feed(data, |frame| match frame {
        Frame::Control(OP_PING, payload) => pongs.push(payload.to_vec()),
        Frame::Control(OP_CLOSE, payload) => {
            closed = true;
            tally.error(|| format!("the server closed a connection: {}", close_reason(payload)));
        }
        Frame::Control(..) => {}
        Frame::Message(opcode, len, prefix) => {
            let Some(t0) = sent.pop_front() else {
                tally.error(|| format!("an unsolicited frame: {}", preview(prefix)));
                return;
            };
            match load.expect.check(opcode, len, prefix) {
                Verdict::Reply => {
                    if measuring {
                        *replies += 1;
                        tally.frames += 1;
                        tally.bytes += len;
                        tally.latencies.push((at - t0).as_nanos() as u64);
                    }
                }
                Verdict::Error => tally.error(|| format!("error reply: {}", preview(prefix))),
                Verdict::Mismatch => {
                    tally.error(|| format!("mismatched reply ({len} bytes): {}", preview(prefix)))
                }
            }
        }
    });
    for payload in pongs {
        conn.pong(&payload);
    }
    conn.dead |= closed;
}

/// Queues requests up to `in_flight`.
fn top_up(conn: &mut Conn, load: &Load, templates: &[Vec<u8>], i: usize, scratch: &mut Vec<u8>) {
    if conn.sent.len() >= load.in_flight {
        return;
    }
    if conn.out_pos == conn.out.len() {
        conn.out.clear();
        conn.out_pos = 0;
    }
    let at = Instant::now();
    while conn.sent.len() < load.in_flight {
        match templates.get(i) {
            Some(frame) => conn.out.extend_from_slice(frame),
            None => {
                let (opcode, _) = load.body.write(conn.next_id, scratch);
                let mut out = std::mem::take(&mut conn.out);
                conn.encode(&mut out, opcode, scratch, load.max_frame);
                conn.out = out;
            }
        }
        conn.next_id += 1;
        conn.sent.push_back(at);
    }
}

/// Writes what is queued; watches for writability while some is left.
fn flush(poller: &Poller, conn: &mut Conn, key: usize, tally: &mut Tally) {
    while conn.out_pos < conn.out.len() {
        match conn.stream.write(&conn.out[conn.out_pos..]) {
            Ok(n) => {
                conn.out_pos += n;
                conn.wire_out += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                kill(poller, conn);
                tally.error(|| format!("write: {e}"));
                return;
            }
        }
    }
    let pending = conn.out_pos < conn.out.len();
    if pending != conn.want_write {
        let interest = if pending {
            Event::all(key)
        } else {
            Event::readable(key)
        };
        if poller
            .modify_with_mode(&conn.stream, interest, PollMode::Level)
            .is_ok()
        {
            conn.want_write = pending;
        }
    }
}

fn kill(poller: &Poller, conn: &mut Conn) {
    conn.dead = true;
    let _ = poller.delete(&conn.stream);
}

/// Sends Close (1000) on every connection, half-closes, and waits (bounded) for EOF so the
/// server completes its close handshake before it is stopped.
fn close_all(mut conns: Vec<Conn>) {
    let mut rbuf = [0u8; 16 * 1024];
    for conn in conns.iter_mut().filter(|c| !c.dead) {
        let mut frame = Vec::new();
        encode_frame(
            &mut frame,
            0x80 | OP_CLOSE,
            &1000u16.to_be_bytes(),
            conn.mask,
        );
        let _ = conn.stream.set_nonblocking(false);
        let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(1)));
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
