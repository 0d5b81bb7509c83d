//! Work on the serving thread: futures handed to the server from anywhere, run as tasks of
//! its thread beside the connections.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use crate::rt::sync::lock;

/// A future handed over to the serving thread.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs futures on the server's thread, as tasks beside its connections, for as long as the
/// server serves (they are dropped when `serve` returns, after the graceful shutdown).
///
/// Provided automatically by [`NestForgeFactory::create`](crate::NestForgeFactory::create)
/// and [`TestFactory::build`](crate::TestFactory::build): resolve it like any provider
/// (`ctx.resolve::<Spawner>()`, `container.resolve::<Spawner>()` in a lifecycle hook) or take
/// [`Spawner::current`] on the serving thread. A task is polled only when its own waker
/// fires (a timer, a channel): it costs the connections nothing per message.
/// [`ScheduleRegistry`](crate::ScheduleRegistry) runs its jobs through it.
///
/// Futures spawned before serving starts wait for it; under a
/// [`TestingModule`](crate::TestingModule), for [`TestingModule::run`](crate::TestingModule::run).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use nestforge_edge::{Connections, Providers, Spawner};
///
/// fn start_pushing(container: &Providers) -> nestforge_edge::Result<()> {
///     let connections = container.resolve::<Connections>()?;
///     container.resolve::<Spawner>()?.spawn(async move {
///         loop {
///             async_io::Timer::after(Duration::from_secs(1)).await;
///             let _ = connections.emit_to_all("tick", &());
///         }
///     });
///     Ok(())
/// }
/// # let _ = start_pushing;
/// ```
#[derive(Clone, Default)]
pub struct Spawner {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Vec<Task>>,
    /// The serving thread's intake, woken by a spawn.
    intake: Mutex<Option<Waker>>,
}

thread_local! {
    /// The spawner of the server (or testing module) running on this thread.
    static CURRENT: RefCell<Option<Spawner>> = const { RefCell::new(None) };
}

impl Spawner {
    /// Runs `future` on the serving thread.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        lock(&self.inner.queue).push(Box::pin(future));
        if let Some(intake) = lock(&self.inner.intake).as_ref() {
            intake.wake_by_ref();
        }
    }

    /// The spawner of the server serving on this thread (within `serve`, its tasks and its
    /// lifecycle hooks, or a [`TestingModule::run`](crate::TestingModule::run)); `None`
    /// elsewhere.
    pub fn current() -> Option<Spawner> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// The futures spawned since the last call; `cx`'s waker is woken by the next spawn.
    pub(crate) fn take(&self, cx: &Context<'_>) -> Vec<Task> {
        {
            let mut intake = lock(&self.inner.intake);
            if !intake.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *intake = Some(cx.waker().clone());
            }
        }
        std::mem::take(&mut *lock(&self.inner.queue))
    }

    /// Makes this the [`current`](Self::current) spawner of this thread until the guard
    /// drops.
    pub(crate) fn enter(&self) -> Entered {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        Entered(previous)
    }
}

/// Restores the thread's previous current spawner.
pub(crate) struct Entered(Option<Spawner>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("queued", &lock(&self.inner.queue).len())
            .finish()
    }
}
