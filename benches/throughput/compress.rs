//! `--compress`: `permessage-deflate` against the same load uncompressed. The client offers
//! the extension (`permessage-deflate; client_max_window_bits`), sends JSON telemetry
//! compressed as a browser does (a fresh window per message, the sync tail removed) and
//! inflates the compressed replies to check them; the gateway (built with the feature
//! `deflate`) echoes them, compressing replies of 128 bytes or more.
//!
//! In-process, each case runs without the extension, then with it, back to back, twice, so
//! drift hits both alike; the table gives frames/s and the bytes on the wire per echoed
//! message (request and reply, frame headers included) of each, and their ratios.

use crate::client::{self, Body, Endpoint, Outcome, Timing};
use crate::frames::OP_TEXT;
use crate::server;
use crate::{echo_of, size_label, Case};

/// RSV1: the message is compressed (on its first frame).
pub const RSV1: u8 = 0x40;

/// The client's codec and telemetry, shared with the tests.
#[path = "../../tests/common/deflate/codec.rs"]
mod codec;
pub use codec::{inflate, telemetry};

/// `payload` compressed as browsers do (zlib's default level, 6).
pub fn deflate(payload: &[u8]) -> Vec<u8> {
    codec::deflate(payload, 6)
}

/// Echo of JSON telemetry, `conns` x `in_flight` of `size` bytes.
pub fn case(size: usize, conns: usize, in_flight: usize) -> Case {
    let body = Body::Fixed {
        opcode: OP_TEXT,
        payload: telemetry(size).into_bytes(),
    };
    let name = format!("json/{}/{conns}x{in_flight}", size_label(size));
    echo_of(name, body, conns, in_flight)
}

/// The cases of `--compress`: 128 B and 4 KiB telemetry at 1 x 1, 16 x 1 and 16 x 16.
pub fn matrix() -> Vec<Case> {
    let mut cases = Vec::new();
    for size in [128, 4096] {
        for (conns, in_flight) in [(1, 1), (16, 1), (16, 16)] {
            cases.push(case(size, conns, in_flight));
        }
    }
    cases
}

/// One case's runs, in the order they ran: uncompressed, then compressed, twice.
pub struct Row {
    pub name: String,
    pub plain: Vec<Result<Outcome, String>>,
    pub deflate: Vec<Result<Outcome, String>>,
}

impl Row {
    pub fn failed(&self) -> bool {
        let bad = |r: &Result<Outcome, String>| r.as_ref().map_or(true, |o| o.errors > 0);
        self.plain.iter().chain(&self.deflate).any(bad)
    }
}

/// Runs every case against an in-process gateway, alternating without and with
/// `permessage-deflate`.
pub fn in_process(cases: Vec<Case>, timing: Timing) -> Vec<Row> {
    eprintln!(
        "throughput --compress: {} case(s) x (plain, deflate) x 2, {:?} warm-up + {:?} each",
        cases.len(),
        timing.warmup,
        timing.measure,
    );
    let mut rows = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let mut row = Row {
            name: case.name.clone(),
            plain: Vec::new(),
            deflate: Vec::new(),
        };
        for round in 0..2 {
            for deflate in [false, true] {
                let label = if deflate { "deflate" } else { "plain" };
                eprint!("[{}] {} {label} #{} ... ", i + 1, case.name, round + 1);
                let result = run_once(&case, deflate, timing);
                match &result {
                    Ok(o) => eprintln!(
                        "{:.0} frames/s, {:.0} wire bytes per message",
                        o.frames_per_s(),
                        o.wire_per_frame()
                    ),
                    Err(e) => eprintln!("failed: {e}"),
                }
                if deflate {
                    &mut row.deflate
                } else {
                    &mut row.plain
                }
                .push(result);
            }
        }
        rows.push(row);
    }
    rows
}

/// Starts the gateway, runs `case` (offering `permessage-deflate` when `deflate`), stops it.
fn run_once(case: &Case, deflate: bool, timing: Timing) -> Result<Outcome, String> {
    let running = server::start_gateway(case.load.conns)
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let endpoint = Endpoint {
        addrs: vec![running.addr],
        host: running.addr.to_string(),
        path: case.path.into(),
        websocket: true,
        deflate,
    };
    let outcome = client::run(&endpoint, &case.load, timing);
    running.stop();
    outcome.map_err(|e| e.to_string())
}

/// The median of the runs that succeeded.
fn median(runs: &[Result<Outcome, String>], f: impl Fn(&Outcome) -> f64) -> Option<f64> {
    let mut values: Vec<f64> = runs.iter().filter_map(|r| r.as_ref().ok()).map(f).collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Prints the table and one `case=...` line per case.
pub fn print(rows: &[Row]) {
    println!();
    println!(
        "| case | plain frames/s | deflate frames/s | ratio | plain wire B/msg | deflate wire B/msg | ratio | plain p99 us | deflate p99 us | allocs/frame plain, deflate |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cell = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "-".into(),
    };
    for row in rows {
        let fps = (
            median(&row.plain, Outcome::frames_per_s),
            median(&row.deflate, Outcome::frames_per_s),
        );
        let wire = (
            median(&row.plain, Outcome::wire_per_frame),
            median(&row.deflate, Outcome::wire_per_frame),
        );
        let p99 = |o: &Outcome| o.percentile_us(0.99);
        let ratio = |(a, b): (Option<f64>, Option<f64>)| a.zip(b).map(|(a, b)| b / a);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}, {} |",
            row.name,
            cell(fps.0, 0),
            cell(fps.1, 0),
            cell(ratio(fps), 2),
            cell(wire.0, 0),
            cell(wire.1, 0),
            cell(ratio(wire), 3),
            cell(median(&row.plain, p99), 1),
            cell(median(&row.deflate, p99), 1),
            cell(median(&row.plain, Outcome::allocs_per_frame), 2),
            cell(median(&row.deflate, Outcome::allocs_per_frame), 2),
        );
    }
    println!();
    for row in rows {
        let runs = |runs: &[Result<Outcome, String>]| {
            runs.iter()
                .map(|r| match r {
                    Ok(o) => format!("{:.0}/{:.0}", o.frames_per_s(), o.wire_per_frame()),
                    Err(_) => "failed".into(),
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "case={} plain_frames_per_s/wire_bytes={} deflate_frames_per_s/wire_bytes={}",
            row.name,
            runs(&row.plain),
            runs(&row.deflate),
        );
    }
}
