//! Server counters: cheap relaxed atomics, readable from the app and served on `/healthz`.

use crate::rt::Counter;

/// Close codes counted separately; anything else is counted as "other".
const CODES: [u16; 10] = [1000, 1001, 1002, 1006, 1007, 1008, 1009, 1011, 1013, 0];

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) open: Counter,
    pub(crate) total: Counter,
    pub(crate) frames_in: Counter,
    pub(crate) frames_out: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) rejected: Counter,
    pub(crate) dispatch_errors: Counter,
    closes: [Counter; CODES.len()],
}

impl Stats {
    pub(crate) fn add(counter: &Counter, n: u64) {
        counter.add(n);
    }

    pub(crate) fn closed(&self, code: u16) {
        let i = CODES
            .iter()
            .position(|&c| c == code)
            .unwrap_or(CODES.len() - 1);
        self.closes[i].add(1);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            open_connections: self.open.get(),
            total_connections: self.total.get(),
            frames_in: self.frames_in.get(),
            frames_out: self.frames_out.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            rejected_upgrades: self.rejected.get(),
            dispatch_errors: self.dispatch_errors.get(),
            closes: std::array::from_fn(|i| (CODES[i], self.closes[i].get())),
        }
    }
}

/// A point-in-time copy of the server's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Connections open now (upgrading or upgraded).
    pub open_connections: u64,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Data and control frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Upgrade requests answered with an HTTP error (4xx, 5xx).
    pub rejected_upgrades: u64,
    /// Frames whose dispatch failed (error frames sent by `serve_patterns`).
    pub dispatch_errors: u64,
    /// Closed connections by close code (`0`: any other code).
    pub closes: [(u16, u64); 10],
}

impl StatsSnapshot {
    /// Connections closed with `code` (`0` for codes not counted separately).
    pub fn closes_with(&self, code: u16) -> u64 {
        self.closes.iter().find(|c| c.0 == code).map_or(0, |c| c.1)
    }

    /// The counters as one JSON object (the `/healthz` body).
    // Not inlined: the `/healthz` answer stays out of the connection's future.
    #[inline(never)]
    pub fn to_json(&self) -> String {
        let closes: Vec<String> = self
            .closes
            .iter()
            .map(|(code, n)| {
                let key = if *code == 0 {
                    "other".to_string()
                } else {
                    code.to_string()
                };
                format!("\"{key}\":{n}")
            })
            .collect();
        format!(
            "{{\"status\":\"ok\",\"open_connections\":{},\"total_connections\":{},\"frames_in\":{},\
             \"frames_out\":{},\"bytes_in\":{},\"bytes_out\":{},\"rejected_upgrades\":{},\
             \"dispatch_errors\":{},\"closes\":{{{}}}}}",
            self.open_connections,
            self.total_connections,
            self.frames_in,
            self.frames_out,
            self.bytes_in,
            self.bytes_out,
            self.rejected_upgrades,
            self.dispatch_errors,
            closes.join(",")
        )
    }
}
