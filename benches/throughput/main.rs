//! Throughput, latency and allocation bench for the runtime, and a load tool for a gateway
//! running elsewhere (a device on the network, another process).
//!
//! ```text
//! cargo bench --bench throughput -- --help      # every option and its default
//! cargo bench --bench throughput                # built-in matrix, in-process, ~2 min
//! cargo bench --bench throughput -- --quick     # smaller matrix, shorter windows, ~30 s
//! cargo bench --bench throughput -- dispatch    # only the cases whose name contains "dispatch"
//! cargo bench --bench throughput -- --url ws://192.168.1.20:3002/ws --conns 16 --in-flight 16
//! cargo bench --bench throughput -- --url ws://127.0.0.1:3002/ws \
//!     --frame '{"kind":"message","pattern":"app.info","payload":null}'
//! cargo bench --bench throughput --features deflate -- --compress   # permessage-deflate
//! ```
//!
//! In-process (no `--url`), each case runs twice, back to back: against the gateway
//! (`Server::serve` under `smol::block_on` on its own thread, listener on `127.0.0.1:0`)
//! and against a raw TCP echo baseline (one thread, async-io, every byte reflected verbatim,
//! so the client gets its own masked frames back). The same client drives both; the ratio
//! between the two is the figure to quote, since absolute numbers on a small shared machine
//! mean little. With `--url` the same client drives one case against the given gateway.
//!
//! Output: a table on stdout, then one machine-readable line per case:
//! `case=... frames_per_s=... MiB_per_s=... p50_us=... p99_us=... errors=...` (in-process
//! followed by `allocs_per_frame`, the baseline's figures and the ratio). Progress goes to
//! stderr. The exit status is 1 when a case had errors or could not connect, 2 for bad
//! arguments.
//!
//! Method
//! - The client (`client.rs`) is one thread: non-blocking `std` sockets registered in its own
//!   `polling::Poller` (epoll, kqueue), level-triggered, blocking in `wait` until a socket is
//!   ready or a phase ends. It deliberately does not use async-io's process-global reactor:
//!   a client on it would end up polling the server's sockets and waking the server thread
//!   through a futex, which the gateway never pays in production. Blocking rather than
//!   spinning leaves the core to the server when both share one (`taskset -c 0` for both,
//!   or a one-core device); `--spin` polls without blocking instead.
//! - Hand-written masked frame encoding and a streaming decoder (`frames.rs`) that keeps
//!   only the first 256 bytes of each reply (for the checks); `K` requests kept in flight
//!   per connection.
//! - Before the load, every connection sends one request and reads up to its reply: frames
//!   before it (a greeting such as events_gateway's `connected:...`) are skipped and counted,
//!   an error frame fails the case. Under load a reply must match (echo: opcode, length,
//!   first bytes; a NestForge request: the reply shape for its pattern); error frames,
//!   mismatches, unsolicited frames, closes and replies missing 5 s after the window count as
//!   errors. Pings are answered.
//! - Each in-process server lives only for its case, so two idle async-io threads never
//!   compete for the reactor.
//! - `min share`: the least-served connection's replies in the window over the mean per
//!   connection (1.0 = even; wsload's `min_conn_share`). A low share with a low p50 and a
//!   high p99 means some connections are served in a hot loop while others wait.
//! - Latency is send-to-reply per message (replies come back in order on a connection); with
//!   `K` in flight it includes queueing behind the other `K - 1`.
//! - Frames and MiB/s count replies received (payload bytes, one direction) during the
//!   measured window, after a warm-up.
//! - `allocs_per_frame` (in-process): calls to `alloc`, `alloc_zeroed` and `realloc` made on
//!   the server thread during the measured window (a counting `#[global_allocator]` and a
//!   thread-local flag set by the server thread), divided by the replies received in that
//!   window.
//! - Threads are not pinned; for a stricter setup run the whole bench under `taskset`.
//! - Echo uses binary frames (as `wsload` does); dispatch sends the text request
//!   `{"kind":"message","pattern":"app.info","payload":null,"id":N}` to a gateway that
//!   forwards it to `handle_websocket_microservice_message`, whose handler resolves a
//!   provider and returns a small `Serialize` struct. `echo-default` cases talk to an echo
//!   gateway with `WebSocketConfig::default()` (16 KiB frames, 64 KiB messages, 4 KiB read
//!   buffer), so the client sends 64 KiB as four 16 KiB fragments.

mod alloc;
mod args;
mod client;
mod compress;
mod frames;
mod report;
mod server;

use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use args::{Args, Url};
use client::{Body, Endpoint, Expect, Load, Timing};
use frames::{OP_BINARY, OP_TEXT};
use report::Row;

/// One case: the load and, in-process, the gateway endpoint it talks to.
struct Case {
    name: String,
    load: Load,
    path: &'static str,
}

fn size_label(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

fn echo_body(size: usize) -> Body {
    Body::Fixed {
        opcode: OP_BINARY,
        payload: (0..size).map(|i| b'a' + (i % 26) as u8).collect(),
    }
}

fn echo(size: usize, conns: usize, in_flight: usize) -> Case {
    let name = format!("echo/{}/{conns}x{in_flight}", size_label(size));
    echo_of(name, echo_body(size), conns, in_flight)
}

/// Case `name`: `body` echoed on [`server::ECHO_PATH`], `conns` x `in_flight`.
fn echo_of(name: String, body: Body, conns: usize, in_flight: usize) -> Case {
    Case {
        name,
        load: Load {
            conns,
            in_flight,
            expect: Expect::echo(&body),
            body,
            max_frame: None,
        },
        path: server::ECHO_PATH,
    }
}

/// Echo against the gateway with the default configuration: 16 KiB fragments.
fn echo_default(size: usize, conns: usize, in_flight: usize) -> Case {
    let mut case = echo(size, conns, in_flight);
    case.name = format!("echo-default/{}/{conns}x{in_flight}", size_label(size));
    case.load.max_frame = Some(16 * 1024);
    case.path = server::DEFAULT_ECHO_PATH;
    case
}

fn dispatch(conns: usize, in_flight: usize) -> Case {
    Case {
        name: format!("dispatch/app.info/{conns}x{in_flight}"),
        load: Load {
            conns,
            in_flight,
            body: Body::NumberedAppInfo,
            expect: Expect::reply("app.info"),
            max_frame: None,
        },
        path: server::RPC_PATH,
    }
}

fn matrix(quick: bool) -> Vec<Case> {
    if quick {
        vec![
            echo(128, 1, 1),
            echo(128, 16, 16),
            echo(128, 256, 1),
            echo(128, 1024, 1),
            echo(65536, 16, 16),
            echo_default(65536, 16, 16),
            dispatch(1, 1),
            dispatch(16, 16),
            dispatch(256, 1),
        ]
    } else {
        vec![
            echo(128, 1, 1),
            echo(128, 16, 16),
            echo(128, 256, 1),
            echo(128, 1024, 1),
            echo(128, 256, 16),
            echo(16, 16, 16),
            echo(1024, 16, 16),
            echo(16384, 16, 16),
            echo(65536, 16, 16),
            echo_default(65536, 16, 16),
            echo(65536, 1, 1),
            dispatch(1, 1),
            dispatch(16, 16),
            dispatch(256, 1),
        ]
    }
}

/// The case the options describe (`--url` or a custom in-process case).
fn custom_case(args: &Args) -> Result<Case, String> {
    let conns = args.conns.unwrap_or(16);
    let in_flight = args.in_flight.unwrap_or(16);
    let mut case = match &args.frame {
        None if args.compress => {
            let size = args.size.unwrap_or(128);
            compress::case(size, conns, in_flight)
        }
        None => echo(args.size.unwrap_or(128), conns, in_flight),
        Some(text) => {
            let request = serde_json::from_str::<serde_json::Value>(text).ok();
            let field = |key: &str| {
                request
                    .as_ref()
                    .and_then(|r| r.get(key))
                    .and_then(|v| v.as_str())
                    .map(String::from)
            };
            let body = Body::Fixed {
                opcode: OP_TEXT,
                payload: text.as_bytes().to_vec(),
            };
            let (expect, path, what) = match (field("kind").as_deref(), field("pattern")) {
                (Some("message"), Some(pattern)) => {
                    let name = format!("frame/{pattern}");
                    (Expect::reply(&pattern), server::RPC_PATH, name)
                }
                (Some("event"), _) => {
                    return Err("--frame: an event gets no reply, so nothing could be \
                                counted; send a \"message\" request"
                        .into())
                }
                _ => (
                    Expect::echo(&body),
                    server::ECHO_PATH,
                    format!("frame/text-{}", size_label(text.len())),
                ),
            };
            Case {
                name: format!("{what}/{conns}x{in_flight}"),
                load: Load {
                    conns,
                    in_flight,
                    body,
                    expect,
                    max_frame: None,
                },
                path,
            }
        }
    };
    if let Some(max) = args.max_frame {
        case.load.max_frame = Some(max);
        case.name += &format!("/frames<={}", size_label(max));
    }
    Ok(case)
}

fn describe(o: &client::Outcome) -> String {
    let mut s = format!(
        "{:.0} frames/s, p99 {:.0} us",
        o.frames_per_s(),
        o.percentile_us(0.99)
    );
    if o.errors > 0 {
        s += &format!(
            ", {} errors (first: {})",
            o.errors,
            o.first_error.as_deref().unwrap_or("?")
        );
    }
    if o.banners > 0 {
        s += &format!(", skipped {} greeting frames", o.banners);
    }
    s
}

/// Starts the in-process server for one target, runs `case` against it, stops it.
fn measure_in_process(case: &Case, raw: bool, timing: Timing) -> Result<client::Outcome, String> {
    let started = if raw {
        server::start_raw_echo().map_err(|e| e.to_string())
    } else {
        server::start_gateway(case.load.conns).map_err(|e| e.to_string())
    };
    let running = started.map_err(|e| format!("cannot start the server: {e}"))?;
    let endpoint = Endpoint {
        addrs: vec![running.addr],
        host: running.addr.to_string(),
        path: case.path.into(),
        websocket: !raw,
        deflate: false,
    };
    let mut load = case.load.clone();
    if raw {
        load.expect = Expect::echo(&load.body);
    }
    let outcome = client::run(&endpoint, &load, timing);
    running.stop();
    outcome.map_err(|e| e.to_string())
}

fn in_process(cases: Vec<Case>, timing: Timing) -> Vec<Row> {
    eprintln!(
        "throughput: {} case(s) x (gateway, raw TCP echo), {:?} warm-up + {:?} each",
        cases.len(),
        timing.warmup,
        timing.measure,
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut results = Vec::new();
        // Baseline first, then the gateway, back to back, so drift hits both alike.
        for (raw, label) in [(true, "raw"), (false, "gateway")] {
            eprint!("[{}/{}] {} {label} ... ", i + 1, cases.len(), case.name);
            let result = measure_in_process(case, raw, timing);
            match &result {
                Ok(o) => eprintln!("{}", describe(o)),
                Err(e) => eprintln!("failed: {e}"),
            }
            results.push(result);
        }
        let gateway = results.pop().unwrap_or_else(|| Err("not run".into()));
        let raw = results.pop();
        rows.push(Row {
            name: case.name.clone(),
            gateway,
            raw,
        });
    }
    eprintln!(
        "throughput: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    rows
}

/// Runs `case` against the gateway at `url`. `Err` is a one-line reason it could not run.
fn remote(url: &Url, case: &Case, deflate: bool, timing: Timing) -> Result<Row, String> {
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("cannot resolve {}: no address", url.host));
    }
    let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let endpoint = Endpoint {
        addrs,
        host: url.authority.clone(),
        path: url.path.clone(),
        websocket: true,
        deflate,
    };
    eprintln!(
        "throughput: {} ({}), {}, {:?} warm-up + {:?}",
        url.text,
        shown.join(", "),
        case.name,
        timing.warmup,
        timing.measure
    );
    let outcome = client::run(&endpoint, &case.load, timing)
        .map_err(|e| format!("cannot run against {}: {e}", url.text))?;
    eprintln!("{}: {}", case.name, describe(&outcome));
    if deflate {
        eprintln!(
            "{}: {:.0} bytes on the wire per echoed message",
            case.name,
            outcome.wire_per_frame()
        );
    }
    Ok(Row {
        name: case.name.clone(),
        gateway: Ok(outcome),
        raw: None,
    })
}

/// `--compress` in-process: the cases without then with `permessage-deflate`.
fn compressed(cases: Vec<Case>, timing: Timing) -> ExitCode {
    let rows = compress::in_process(cases, timing);
    compress::print(&rows);
    if rows.iter().any(compress::Row::failed) {
        eprintln!("throughput: some case had errors or failed (see above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n(see --help)");
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{}", args::HELP);
        return ExitCode::SUCCESS;
    }
    let (warmup, measure) = if args.custom() {
        (Duration::from_millis(500), Duration::from_secs(5))
    } else if args.quick {
        (Duration::from_millis(250), Duration::from_secs(1))
    } else {
        (Duration::from_millis(500), Duration::from_secs(2))
    };
    let timing = Timing {
        warmup: args.warmup.unwrap_or(warmup),
        measure: args.secs.unwrap_or(measure),
        spin: args.spin,
    };
    let rows = if args.custom() {
        let case = match custom_case(&args) {
            Ok(case) => case,
            Err(e) => {
                eprintln!("error: {e}\n(see --help)");
                return ExitCode::from(2);
            }
        };
        match &args.url {
            Some(url) => match remote(url, &case, args.compress, timing) {
                Ok(row) => vec![row],
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None if args.compress => return compressed(vec![case], timing),
            None => in_process(vec![case], timing),
        }
    } else {
        let all = if args.compress {
            compress::matrix()
        } else {
            matrix(args.quick)
        };
        let cases: Vec<Case> = all
            .into_iter()
            .filter(|c| args.filters.is_empty() || args.filters.iter().any(|f| c.name.contains(f)))
            .collect();
        if cases.is_empty() {
            eprintln!("error: no case matches {:?}", args.filters);
            return ExitCode::from(2);
        }
        if args.compress {
            return compressed(cases, timing);
        }
        in_process(cases, timing)
    };
    report::print(&rows, args.url.is_none());
    if rows.iter().any(Row::failed) {
        eprintln!("throughput: some case had errors or failed (see above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
