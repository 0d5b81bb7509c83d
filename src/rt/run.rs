//! The run loop of [`block_on`](super::block_on): polls its future when woken, otherwise
//! waits in its reactor's `epoll_wait`.

use std::cell::RefCell;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use rustix::event::{eventfd, EventfdFlags};

use super::epoll::Reactor;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// The reactor of the [`Loop`] running on this thread.
pub(crate) fn current() -> Option<Rc<Reactor>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The loop's waker: a flag, and an eventfd written only while the loop sleeps in
/// `epoll_wait` (wake-ups from the loop's own thread and while it runs cost no syscall).
#[derive(Debug)]
pub(super) struct Notify {
    pub(super) fd: OwnedFd,
    woken: AtomicBool,
    pub(super) parked: AtomicBool,
}

impl Notify {
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

/// Runs `f` with no loop current on this thread (a nested `block_on`), then restores it.
pub(crate) fn outside<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Rc<Reactor>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().take()));
    f()
}

/// The run loop of [`block_on`](super::block_on), its reactor current on this thread while
/// it exists.
#[derive(Debug)]
pub(crate) struct Loop {
    reactor: Rc<Reactor>,
}

impl Loop {
    /// A loop for this thread; `None` inside another one (the inner `block_on` then uses
    /// async-io's, see [`outside`]) or where epoll or eventfd is unavailable (a seccomp
    /// filter, for one).
    pub(crate) fn enter() -> Option<Loop> {
        if current().is_some() {
            return None;
        }
        let notify = Arc::new(Notify {
            fd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok()?,
            woken: AtomicBool::new(true),
            parked: AtomicBool::new(false),
        });
        let reactor = Rc::new(Reactor::new(notify).ok()?);
        CURRENT.with(|c| *c.borrow_mut() = Some(Rc::clone(&reactor)));
        Some(Loop { reactor })
    }

    pub(crate) fn block_on<F: Future>(self, future: F) -> F::Output {
        let notify = Arc::clone(&self.reactor.notify);
        let waker = Waker::from(Arc::clone(&notify));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if notify.woken.swap(false, SeqCst) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            }
            // Sleep only if nothing woke the future meanwhile; a waker that sees `parked`
            // writes the eventfd, one that does not is seen here.
            notify.parked.store(true, SeqCst);
            let block = !notify.woken.load(SeqCst);
            // `EINTR` is retried inside; the other errors of `epoll_wait` (`EBADF`, `EFAULT`,
            // `EINVAL`) cannot happen on the loop's own epoll fd and buffer.
            self.reactor
                .wait(block)
                .expect("epoll_wait on the run loop's own epoll instance");
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}
