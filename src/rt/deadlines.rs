//! Many connections' deadlines (pings, idle timeouts) on one timer.
//!
//! A timer per deadline costs each connection its own entry in async-io's timer table and
//! a `Timer` in its state; here a connection keeps only the instant it asked for and the
//! waker it gave, and the server keeps one min-heap of `(instant, waker)` and one timer set
//! to the heap's earliest entry (BENCHMARKS.md#memory-per-connection). When that timer
//! fires (on whatever thread drives async-io's timers) the due wakers are woken and the
//! timer is set to the next entry. An entry is never removed early: a connection that
//! moves its deadline adds another one, and the first to come due wakes it once more than
//! needed (a spurious poll is harmless).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use super::sync::lock;
use super::Timer;

/// Deadlines shared by the connections of a server (they may run on any thread).
pub(crate) struct Deadlines {
    inner: Mutex<Inner>,
    /// The waker the timer holds: reaches these deadlines without keeping them alive.
    alarm: Arc<Alarm>,
}

struct Inner {
    heap: BinaryHeap<Entry>,
    /// Set to the earliest entry (made at the first one).
    timer: Option<Timer>,
    /// What the timer is set to; `None`: not set.
    armed: Option<Instant>,
}

struct Entry {
    at: Instant,
    waker: Waker,
}

/// Earliest first in the (max-)heap.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

struct Alarm(Weak<Deadlines>);

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(deadlines) = self.0.upgrade() {
            deadlines.fire();
        }
    }
}

impl Deadlines {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new_cyclic(|weak| Deadlines {
            inner: Mutex::new(Inner {
                heap: BinaryHeap::new(),
                timer: None,
                armed: None,
            }),
            alarm: Arc::new(Alarm(weak.clone())),
        })
    }

    /// Wakes `waker` at `at` (or, when `at` has passed, at once).
    pub(crate) fn add(&self, at: Instant, waker: Waker) {
        let mut inner = lock(&self.inner);
        inner.heap.push(Entry { at, waker });
        if inner.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        let due = self.arm(&mut inner, at);
        drop(inner);
        if due {
            self.fire();
        }
    }

    /// The number of entries, due or not (stale ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).heap.len()
    }

    /// Sets the timer to `at`; `true` when `at` has already passed.
    fn arm(&self, inner: &mut Inner, at: Instant) -> bool {
        inner.armed = Some(at);
        let timer = inner.timer.get_or_insert_with(Timer::never);
        timer.set_at(at);
        let waker = Waker::from(Arc::clone(&self.alarm));
        let ready = Pin::new(timer).poll(&mut Context::from_waker(&waker));
        if ready.is_ready() {
            inner.armed = None;
        }
        matches!(ready, Poll::Ready(_))
    }

    /// Wakes the entries that are due and sets the timer to the next one.
    fn fire(&self) {
        let mut due = Vec::new();
        loop {
            let mut inner = lock(&self.inner);
            inner.armed = None;
            let now = Instant::now();
            while inner.heap.peek().is_some_and(|e| e.at <= now) {
                due.extend(inner.heap.pop().map(|e| e.waker));
            }
            let passed = match inner.heap.peek().map(|e| e.at) {
                Some(next) => self.arm(&mut inner, next),
                None => false,
            };
            drop(inner);
            // Woken outside the lock: a woken task may add its next deadline at once.
            due.drain(..).for_each(Waker::wake);
            if !passed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn wait_for(count: &Count, n: usize) {
        let start = Instant::now();
        while count.0.load(SeqCst) < n {
            assert!(start.elapsed() < Duration::from_secs(5), "not woken");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn entries_wake_in_order_of_their_instants_on_one_timer() {
        let deadlines = Deadlines::new();
        let (early, late) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let now = Instant::now();
        deadlines.add(
            now + Duration::from_millis(300),
            Waker::from(Arc::clone(&late)),
        );
        deadlines.add(
            now + Duration::from_millis(20),
            Waker::from(Arc::clone(&early)),
        );
        wait_for(&early, 1);
        assert_eq!(
            late.0.load(SeqCst),
            0,
            "the later entry waits for its instant"
        );
        assert_eq!(deadlines.len(), 1);
        wait_for(&late, 1);
        assert_eq!(deadlines.len(), 0);
        assert!(now.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn a_past_instant_wakes_at_once() {
        let deadlines = Deadlines::new();
        let count = Arc::new(Count::default());
        deadlines.add(Instant::now(), Waker::from(Arc::clone(&count)));
        assert_eq!(count.0.load(SeqCst), 1);
        assert_eq!(deadlines.len(), 0);
    }

    #[test]
    fn dropped_deadlines_wake_nothing_and_leave_nothing_behind() {
        let deadlines = Deadlines::new();
        let count = Arc::new(Count::default());
        deadlines.add(
            Instant::now() + Duration::from_millis(20),
            Waker::from(Arc::clone(&count)),
        );
        let weak = Arc::downgrade(&deadlines);
        drop(deadlines);
        assert!(
            weak.upgrade().is_none(),
            "the timer does not keep them alive"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(count.0.load(SeqCst), 0);
        assert_eq!(
            Arc::strong_count(&count),
            1,
            "the entry's waker was dropped"
        );
    }
}
