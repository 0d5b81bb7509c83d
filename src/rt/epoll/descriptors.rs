//! Room in the process's descriptor table for the connections to come.

use std::net::TcpListener;
use std::os::fd::AsRawFd;

/// Grows the process's descriptor table to hold `connections` more descriptors (and an
/// eighth more, for connections refused over the limit), on the calling thread before
/// `serve` accepts anything; as far as `RLIMIT_NOFILE` allows, and to at most 65,536 entries.
///
/// Linux grows the table by doubling when a descriptor number does not fit, and in a
/// process with more than one thread (async-io's, a signal thread) it then waits for an RCU
/// grace period: milliseconds inside the `accept4` that crosses 256, 512, 1,024 ...
/// descriptors, while every connection of the serving thread waits too
/// (BENCHMARKS.md#handshakes). Done here, the wait is paid once, before the first client.
/// The table is rounded up to a power of two, 8 bytes of kernel memory per entry (and shared
/// by every `serve` call of the process).
pub(crate) fn reserve_descriptors(listener: &TcpListener, connections: usize) {
    const MOST: i32 = (1 << 16) - 1; // a table of 65,536
    let room = connections.min(MOST as usize) as i32;
    let mut highest = listener
        .as_raw_fd()
        .saturating_add(room + room / 8 + 16)
        .min(MOST);
    // Duplicating the listener to a descriptor number at least `highest` grows the table to
    // hold it; the duplicate is closed at once, the table keeps its size. Above the limit the
    // call fails (`EINVAL`): an eighth less each time, down to what the smallest table holds.
    while highest > 64 {
        if rustix::io::fcntl_dupfd_cloexec(listener, highest).is_ok() {
            return;
        }
        highest -= highest / 8;
    }
}
