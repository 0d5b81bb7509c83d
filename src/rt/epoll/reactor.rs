//! The epoll reactor: sockets registered once, edge-triggered; readiness per direction.
//!
//! Every event carries its registration's key: the slot of its source and the slot's
//! generation, which changes whenever the slot is freed. A registration leaves the epoll
//! set (`EPOLL_CTL_DEL`) before its slot is freed and before its descriptor closes, so an
//! event queued for a socket that is gone (dropped on another thread, or whose descriptor
//! was duplicated and lives on) finds a stale key and is dropped: it can never reach the
//! socket that took the slot next. When the loop returns, every registration still alive
//! is marked ended: its next operation that would wait fails instead of waiting forever.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::Timespec;

use super::notify::Notify;
use crate::rt::sync::lock;

/// The key of the loop's own eventfd (no registration's: slots stay below 2^32 - 1).
const WAKE: u64 = u64::MAX;

/// Events taken per `epoll_wait` (more are left for the next one): 12-16 KiB of buffer. At
/// 10,000 connections 1,024 kept up with fastwebsockets where 256 did not
/// (BENCHMARKS.md#the-run-loop).
const EVENTS: usize = 1024;

/// An epoll instance and the sources registered in it, on the loop's thread.
pub(crate) struct EpollReactor {
    poller: Arc<Poller>,
    pub(super) notify: Arc<Notify>,
    events: RefCell<Vec<epoll::Event>>,
    wakers: RefCell<Vec<Waker>>,
}

/// What registrations share with the reactor, from any thread: the epoll instance (to
/// leave it) and the slots.
#[derive(Debug)]
struct Poller {
    epoll: OwnedFd,
    slab: Mutex<Slab>,
}

#[derive(Debug, Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The loop returned: no new registration; the live ones were marked [`ENDED`].
    ended: bool,
}

#[derive(Debug, Default)]
struct Slot {
    /// Changes each time the slot is freed: an event with an older one is stale.
    generation: u32,
    source: Option<Arc<Source>>,
}

/// What the reactor knows about one file descriptor, per direction: a word of [`READY`],
/// [`CLOSED`], [`ENDED`] and an event count (atomic: the socket may be polled from another
/// thread than the loop's), and the waker of the task waiting for it.
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
/// The loop returned: no event will come; an attempt that would wait fails.
const ENDED: u32 = 4;
/// One event.
const TICK: u32 = 8;

/// A direction of readiness.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

/// The error of an operation that would wait for a loop that has returned.
fn loop_ended() -> io::Error {
    io::Error::other("the run loop this socket was registered with has returned")
}

impl EpollReactor {
    pub(super) fn new(notify: Arc<Notify>) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &notify.fd,
            EventData::new_u64(WAKE),
            EventFlags::IN | EventFlags::ET,
        )?;
        Ok(EpollReactor {
            poller: Arc::new(Poller {
                epoll,
                slab: Mutex::default(),
            }),
            notify,
            events: RefCell::new(Vec::with_capacity(EVENTS)),
            wakers: RefCell::new(Vec::new()),
        })
    }

    /// Registers `io` for both directions, edge-triggered, until the returned value drops.
    /// Both directions start ready (the first attempt tells).
    pub(crate) fn register<T: AsFd>(&self, io: T) -> io::Result<Registered<T>> {
        let source = Arc::new(Source {
            state: [AtomicU32::new(READY), AtomicU32::new(READY)],
            ..Source::default()
        });
        let (slot, generation) = {
            let mut slab = lock(&self.poller.slab);
            if slab.ended {
                return Err(loop_ended());
            }
            let slot = match slab.free.pop() {
                Some(slot) => slot,
                None => {
                    slab.slots.push(Slot::default());
                    u32::try_from(slab.slots.len() - 1).map_err(|_| io::ErrorKind::OutOfMemory)?
                }
            };
            let entry = &mut slab.slots[slot as usize];
            entry.source = Some(Arc::clone(&source));
            (slot, entry.generation)
        };
        let registration = Registration {
            source,
            slot,
            poller: Arc::clone(&self.poller),
            seen: [0; 2],
            parked: Default::default(),
        };
        let key = u64::from(generation) << 32 | u64::from(slot);
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        // On failure the registration frees its slot (nothing was added).
        epoll::add(&self.poller.epoll, &io, EventData::new_u64(key), flags)?;
        Ok(Registered {
            registration,
            io: Some(io),
        })
    }

    /// Waits for events (not at all unless `block`), clears `parked`, and wakes the tasks
    /// waiting for them.
    pub(super) fn wait(&self, block: bool) -> io::Result<()> {
        let mut events = self.events.borrow_mut();
        events.clear();
        let zero = Timespec::default();
        match epoll::wait(
            &self.poller.epoll,
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
            let slab = lock(&self.poller.slab);
            for event in events.iter() {
                let (key, flags) = (event.data.u64(), event.flags);
                if key == WAKE {
                    self.notify.clear();
                    continue;
                }
                // An event queued before its registration left: its generation is gone.
                let (slot, generation) = (key as u32, (key >> 32) as u32);
                let Some(Slot {
                    generation: current,
                    source: Some(source),
                }) = slab.slots.get(slot as usize)
                else {
                    continue;
                };
                if *current != generation {
                    continue;
                }
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

    /// The loop returns: every registration still alive is marked ended (and its waiting
    /// tasks woken, to see it), and no new one is accepted.
    pub(super) fn end(&self) {
        let mut wakers = Vec::new();
        {
            let mut slab = lock(&self.poller.slab);
            slab.ended = true;
            for source in slab.slots.iter().filter_map(|s| s.source.as_ref()) {
                for dir in [Dir::Read, Dir::Write] {
                    source.state[dir as usize].fetch_or(ENDED, SeqCst);
                    if let Some(waker) = &lock(&source.wakers)[dir as usize] {
                        wakers.push(waker.clone());
                    }
                }
            }
        }
        for waker in wakers {
            waker.wake();
        }
    }
}

impl std::fmt::Debug for EpollReactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollReactor")
            .field("epoll", &self.poller.epoll)
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

/// An I/O object registered with the reactor, and its registration: dropped, it leaves the
/// epoll set, frees its slot, then closes.
#[derive(Debug)]
pub(crate) struct Registered<T: AsFd> {
    pub(crate) registration: Registration,
    /// `Some` until dropped.
    io: Option<T>,
}

impl<T: AsFd> Registered<T> {
    pub(crate) fn get(&self) -> &T {
        self.io.as_ref().expect("present until dropped")
    }

    /// The registration and the object, borrowed apart.
    pub(crate) fn parts(&mut self) -> (&mut Registration, &T) {
        let io = self.io.as_ref().expect("present until dropped");
        (&mut self.registration, io)
    }
}

impl<T: AsFd> Drop for Registered<T> {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            // Out of the set before the slot is freed (`Registration::drop`, after this) and
            // before the descriptor closes: a duplicate of it (another process's, after a
            // fork) would otherwise keep the set reporting this socket.
            let _ = epoll::delete(&self.registration.poller.epoll, &io);
            drop(io);
        }
    }
}

/// One source's registration: its slot and what its last attempts saw.
#[derive(Debug)]
pub(crate) struct Registration {
    source: Arc<Source>,
    slot: u32,
    poller: Arc<Poller>,
    /// The state when the last attempt in each direction began.
    seen: [u32; 2],
    /// The wakers last stored in the source (only this registration stores them), to skip
    /// the lock when the same task parks again.
    parked: [Option<Waker>; 2],
}

impl Registration {
    /// Runs `attempt` if `dir` may be ready; on `WouldBlock` the direction is marked not ready
    /// (unless an event came meanwhile: then it tries again) and the task waits for the next
    /// event; once the loop has returned, `WouldBlock` is an error instead.
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
                    if self.seen[dir as usize] & ENDED != 0 {
                        return Poll::Ready(Err(loop_ended()));
                    }
                    if self.clear(dir, cx) {
                        return Poll::Pending;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// `Ready` if `dir` may be ready (or the loop has returned: the attempt then tells);
    /// otherwise the task waits for its next event.
    pub(crate) fn poll_ready(&mut self, dir: Dir, cx: &Context<'_>) -> Poll<()> {
        const GO: u32 = READY | CLOSED | ENDED;
        let d = dir as usize;
        let mut state = self.source.state[d].load(Acquire);
        if state & GO == 0 {
            state = self.park(dir, cx);
            if state & GO == 0 {
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
        if seen & (CLOSED | ENDED) != 0 {
            // Final, and never cleared: the next attempt returns the end or the error.
            return true;
        }
        let cleared = self.source.state[d].compare_exchange(seen, seen & !READY, SeqCst, SeqCst);
        cleared.is_ok() && self.park(dir, cx) & (READY | CLOSED | ENDED) == 0
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
        let mut slab = lock(&self.poller.slab);
        let slot = &mut slab.slots[self.slot as usize];
        slot.source = None;
        slot.generation = slot.generation.wrapping_add(1);
        slab.free.push(self.slot);
    }
}

/// The sizes of what a registration costs (see `crate::__private::connection_parts`).
pub(super) fn parts() -> Vec<(&'static str, usize)> {
    vec![
        (
            "rt: epoll source (Arc<Source>, heap)",
            16 + std::mem::size_of::<Source>(),
        ),
        ("rt: epoll slot", std::mem::size_of::<Slot>()),
    ]
}
