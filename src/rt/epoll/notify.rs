//! How the run loop is woken: a flag, and an eventfd written only while the loop sleeps.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Wake;

use rustix::event::{eventfd, EventfdFlags};

/// The loop's waker: wake-ups from the loop's own thread and while it runs cost no syscall;
/// one while it sleeps in `epoll_wait` writes the eventfd, which the epoll set watches.
#[derive(Debug)]
pub(super) struct Notify {
    pub(super) fd: OwnedFd,
    /// Woken since the loop last polled its future.
    pub(super) woken: AtomicBool,
    /// The loop is (about to be) asleep in `epoll_wait`.
    pub(super) parked: AtomicBool,
}

impl Notify {
    /// A notifier with an eventfd, woken (the future is polled first thing).
    pub(super) fn new() -> Option<Self> {
        Some(Notify {
            fd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok()?,
            woken: AtomicBool::new(true),
            parked: AtomicBool::new(false),
        })
    }

    /// Consumes a wake-up's eventfd count (the reactor saw its event).
    pub(super) fn clear(&self) {
        let _ = rustix::io::read(&self.fd, &mut [0; 8]);
    }
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, SeqCst) && self.parked.load(SeqCst) {
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }
}
