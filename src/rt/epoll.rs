//! The epoll reactor: sockets registered once, edge-triggered; readiness per direction.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::Timespec;

use super::run::Notify;
use crate::sync::lock;

/// The key of the loop's own eventfd.
const WAKE: u64 = u64::MAX;

/// Events taken per `epoll_wait` (more are left for the next one): 12-16 KiB of buffer. At
/// 10,000 connections 1,024 kept up with fastwebsockets where 256 did not (BENCHMARKS.md).
const EVENTS: usize = 1024;

/// An epoll instance and the sources registered in it.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    pub(super) notify: Arc<Notify>,
    slab: Arc<Mutex<Slab>>,
    events: RefCell<Vec<epoll::Event>>,
    wakers: RefCell<Vec<Waker>>,
}

#[derive(Debug, Default)]
struct Slab {
    entries: Vec<Option<Arc<Source>>>,
    free: Vec<usize>,
}

/// What the reactor knows about one file descriptor, per direction: a word of [`READY`],
/// [`CLOSED`] and an event count (atomic: the socket may be polled from another thread than
/// the loop's), and the waker of the task waiting for it.
#[derive(Debug, Default)]
struct Source {
    state: [AtomicU32; 2],
    wakers: Mutex<[Option<Waker>; 2]>,
}

/// An attempt may succeed.
const READY: u32 = 1;
/// The peer closed or the socket failed: final, never cleared (a read then returns 0 or the
/// error, however short the read before it was).
const CLOSED: u32 = 2;
/// One event.
const TICK: u32 = 4;

/// A direction of readiness.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

impl Reactor {
    pub(super) fn new(notify: Arc<Notify>) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &notify.fd,
            EventData::new_u64(WAKE),
            EventFlags::IN | EventFlags::ET,
        )?;
        Ok(Reactor {
            epoll,
            notify,
            slab: Arc::default(),
            events: RefCell::new(Vec::with_capacity(EVENTS)),
            wakers: RefCell::new(Vec::new()),
        })
    }

    /// Registers `fd` for both directions, edge-triggered, until the registration drops.
    /// Both directions start ready (the first attempt tells).
    pub(crate) fn register(&self, fd: impl AsFd) -> io::Result<Registration> {
        let source = Arc::new(Source {
            state: [AtomicU32::new(READY), AtomicU32::new(READY)],
            ..Source::default()
        });
        let slot = {
            let mut slab = lock(&self.slab);
            let slot = slab.free.pop().unwrap_or(slab.entries.len());
            match slab.entries.get_mut(slot) {
                Some(entry) => *entry = Some(Arc::clone(&source)),
                None => slab.entries.push(Some(Arc::clone(&source))),
            }
            slot
        };
        let registration = Registration {
            source,
            slot,
            slab: Arc::clone(&self.slab),
            seen: [0; 2],
            parked: Default::default(),
        };
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        epoll::add(&self.epoll, fd, EventData::new_u64(slot as u64), flags)?;
        Ok(registration)
    }

    /// Waits for events (not at all unless `block`), clears `parked`, and wakes the tasks
    /// waiting for them.
    pub(super) fn wait(&self, block: bool) -> io::Result<()> {
        let mut events = self.events.borrow_mut();
        events.clear();
        let zero = Timespec::default();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut *events),
            (!block).then_some(&zero),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        // Awake: the wake-ups below are this thread's own.
        self.notify.parked.store(false, SeqCst);
        let mut wakers = self.wakers.borrow_mut();
        {
            let slab = lock(&self.slab);
            for event in events.iter() {
                let (key, flags) = (event.data.u64(), event.flags);
                if key == WAKE {
                    self.notify.clear();
                    continue;
                }
                // A slot freed since (the socket dropped on another thread) has no source.
                let Some(Some(source)) = slab.entries.get(key as usize) else {
                    continue;
                };
                // Hang-up or error ends both directions; the peer's FIN ends reading.
                let failed = flags.intersects(EventFlags::HUP | EventFlags::ERR);
                let read_ended = failed || flags.contains(EventFlags::RDHUP);
                if read_ended || flags.intersects(EventFlags::IN | EventFlags::PRI) {
                    source.set_ready(Dir::Read, read_ended, &mut wakers);
                }
                if failed || flags.contains(EventFlags::OUT) {
                    source.set_ready(Dir::Write, failed, &mut wakers);
                }
            }
        }
        for waker in wakers.drain(..) {
            waker.wake();
        }
        Ok(())
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("epoll", &self.epoll)
            .finish_non_exhaustive()
    }
}

impl Source {
    fn set_ready(&self, dir: Dir, closed: bool, wakers: &mut Vec<Waker>) {
        let bits = if closed { READY | CLOSED } else { READY };
        let before = self.state[dir as usize]
            .fetch_update(SeqCst, SeqCst, |v| Some(v.wrapping_add(TICK) | bits));
        // Already ready: nobody waits for it (a task parks only after seeing it not ready,
        // and the event that made it ready woke it). Every event reports both directions.
        if before.is_ok_and(|v| v & READY != 0) {
            return;
        }
        if let Some(waker) = &lock(&self.wakers)[dir as usize] {
            wakers.push(waker.clone());
        }
    }
}

/// One file descriptor's registration (the descriptor itself is owned next to it and must be
/// closed after it).
#[derive(Debug)]
pub(crate) struct Registration {
    source: Arc<Source>,
    slot: usize,
    slab: Arc<Mutex<Slab>>,
    /// The state when the last attempt in each direction began.
    seen: [u32; 2],
    /// The wakers last stored in the source (only this registration stores them), to skip
    /// the lock when the same task parks again.
    parked: [Option<Waker>; 2],
}

impl Registration {
    /// Runs `attempt` if `dir` may be ready; on `WouldBlock` the direction is marked not ready
    /// (unless an event came meanwhile: then it tries again) and the task waits for the next
    /// event.
    pub(crate) fn poll_io<T>(
        &mut self,
        dir: Dir,
        cx: &Context<'_>,
        attempt: &mut dyn FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            if self.poll_ready(dir, cx).is_pending() {
                return Poll::Pending;
            }
            match attempt() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.clear(dir, cx) {
                        return Poll::Pending;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// `Ready` if `dir` may be ready; otherwise the task waits for its next event.
    pub(crate) fn poll_ready(&mut self, dir: Dir, cx: &Context<'_>) -> Poll<()> {
        let d = dir as usize;
        let mut state = self.source.state[d].load(Acquire);
        if state & (READY | CLOSED) == 0 {
            state = self.park(dir, cx);
            if state & (READY | CLOSED) == 0 {
                return Poll::Pending;
            }
        }
        self.seen[d] = state;
        Poll::Ready(())
    }

    /// After an attempt that found `dir` exhausted (`WouldBlock`, or a read shorter than its
    /// buffer): marks it not ready and registers the task's waker, unless an event came since
    /// the attempt began (`false`: try again).
    pub(crate) fn clear(&mut self, dir: Dir, cx: &Context<'_>) -> bool {
        let (d, seen) = (dir as usize, self.seen[dir as usize]);
        if seen & CLOSED != 0 {
            // Final, and never cleared: the next attempt returns the end or the error.
            return true;
        }
        let cleared = self.source.state[d].compare_exchange(seen, seen & !READY, SeqCst, SeqCst);
        cleared.is_ok() && self.park(dir, cx) & (READY | CLOSED) == 0
    }

    /// Keeps `cx`'s waker for `dir`'s next event; the state after it (an event may have come
    /// meanwhile, from another thread).
    fn park(&mut self, dir: Dir, cx: &Context<'_>) -> u32 {
        let d = dir as usize;
        if !self.parked[d]
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            lock(&self.source.wakers)[d] = Some(waker.clone());
            self.parked[d] = Some(waker);
        }
        self.source.state[d].load(SeqCst)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Closing the descriptor removes it from the epoll set; only the slot is ours.
        let mut slab = lock(&self.slab);
        slab.entries[self.slot] = None;
        slab.free.push(self.slot);
    }
}
