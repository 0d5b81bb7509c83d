//! The bridge's counters.

use crate::rt::Counter;

/// Counters of the bridge (monotonic since start, except `connected`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MqttStats {
    /// Whether the broker link is up.
    pub connected: bool,
    /// Successful connections (CONNACK), the first one included.
    pub connects: u64,
    /// Requests forwarded to the broker.
    pub forwarded: u64,
    /// Forwarded requests that got a reply.
    pub replied: u64,
    /// Forwarded requests that timed out.
    pub timeouts: u64,
    /// Requests answered `unavailable` (link down, table or queue full).
    pub unavailable: u64,
    /// Requests from the broker handled by local patterns.
    pub served: u64,
    /// Events received from the broker and handled.
    pub events_in: u64,
    /// Events published.
    pub events_out: u64,
    /// Broker packets that were malformed or unusable (dropped).
    pub malformed: u64,
    /// Publishes dropped: link down or queue full (events, broadcasts, pushes).
    pub dropped: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) connects: Counter,
    pub(super) forwarded: Counter,
    pub(super) replied: Counter,
    pub(super) timeouts: Counter,
    pub(super) unavailable: Counter,
    pub(super) served: Counter,
    pub(super) events_in: Counter,
    pub(super) events_out: Counter,
    pub(super) malformed: Counter,
    pub(super) dropped: Counter,
}

pub(super) fn bump(counter: &Counter) {
    counter.add(1);
}
