//! The run loop of [`block_on`](crate::block_on): polls its future when woken, otherwise
//! waits in its reactor's `epoll_wait`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::notify::Notify;
use super::reactor::EpollReactor;

thread_local! {
    static CURRENT: RefCell<Option<Rc<EpollReactor>>> = const { RefCell::new(None) };
}

/// The reactor of the [`Loop`] running on this thread.
pub(super) fn current() -> Option<Rc<EpollReactor>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with no loop current on this thread (a nested `block_on`), then restores it.
pub(super) fn outside<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Rc<EpollReactor>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().take()));
    f()
}

/// The run loop of [`block_on`](crate::block_on), its reactor current on this thread while
/// it exists.
#[derive(Debug)]
pub(super) struct Loop {
    reactor: Rc<EpollReactor>,
}

impl Loop {
    /// A loop for this thread; `None` inside another one (the inner `block_on` then uses
    /// async-io's, see [`outside`]) or where epoll or eventfd is unavailable (a seccomp
    /// filter, for one).
    pub(super) fn enter() -> Option<Loop> {
        if current().is_some() {
            return None;
        }
        let notify = Arc::new(Notify::new()?);
        let reactor = Rc::new(EpollReactor::new(notify).ok()?);
        CURRENT.with(|c| *c.borrow_mut() = Some(Rc::clone(&reactor)));
        Some(Loop { reactor })
    }

    pub(super) fn block_on<F: Future>(self, future: F) -> F::Output {
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
        // Sockets that outlive the loop (kept by the caller, or on another thread) fail
        // from now on instead of waiting for events nobody collects.
        self.reactor.end();
    }
}
