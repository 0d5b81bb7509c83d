//! Schedules (NestForge's `ScheduleRegistry`): jobs run every so often or once after a
//! delay, on the serving thread.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future::or;
use futures_lite::FutureExt;

use crate::error::Result;
use crate::log::event;
use crate::providers::Providers;
use crate::rt::sync::lock;
use crate::rt::{Signal, Timer};
use crate::spawner::Spawner;

type JobFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type JobFn = Arc<dyn Fn() -> JobFuture + Send + Sync>;

/// Whether a job repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobKind {
    /// Every `delay`, the first run at once.
    Interval,
    /// Once, after `delay`.
    Timeout,
}

/// A job as registered (NestForge's `ScheduledJob`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduledJob {
    /// Its name: given, or `interval:{delay:?}` / `timeout:{delay:?}`.
    pub name: String,
    /// Whether it repeats.
    pub kind: JobKind,
    /// Its period, or its delay.
    pub delay: Duration,
}

#[derive(Clone)]
struct Job {
    about: ScheduledJob,
    run: JobFn,
}

/// Jobs to run every so often ([`every`](Self::every)) or once after a delay
/// ([`after`](Self::after)), on the serving thread (no thread of their own): the device's
/// everyday work, reading a sensor every few seconds and pushing it to a room.
///
/// Given as a provider and started and stopped by lifecycle hooks, as in NestForge:
/// `providers: [build_schedules()?]`, `on_application_bootstrap: [start_schedules]`,
/// `on_application_shutdown: [shutdown_schedules]`. A job never overlaps itself: a run
/// that takes longer than the period delays the next one (which then starts at once), and
/// missed ticks are not made up. A job that panics is reported (feature `log`) and runs
/// again at its next tick; the server goes on. Jobs stop at [`shutdown`](Self::shutdown),
/// and at the latest when `serve` returns.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use nestforge_edge::{module, shutdown_schedules, start_schedules, ScheduleRegistry};
///
/// fn build_schedules() -> anyhow::Result<ScheduleRegistry> {
///     Ok(ScheduleRegistry::builder()
///         .every_named("sensor.read", Duration::from_secs(2), || async {
///             // read the sensor, push the reading
///         })
///         .after(Duration::from_secs(10), || async { /* once */ })
///         .build())
/// }
///
/// module! {
///     struct AppModule {
///         providers: [build_schedules()?],
///         on_application_bootstrap: [start_schedules],
///         on_application_shutdown: [shutdown_schedules],
///     }
/// }
/// # let _ = AppModule;
/// ```
#[derive(Clone, Default)]
pub struct ScheduleRegistry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: Mutex<Vec<Job>>,
    /// The stop signal of the running jobs, while they run.
    running: Mutex<Option<Arc<Signal>>>,
}

impl ScheduleRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        ScheduleRegistry::default()
    }

    /// A builder (jobs added by value).
    pub fn builder() -> ScheduleRegistryBuilder {
        ScheduleRegistryBuilder::default()
    }

    /// Adds a job run every `every`, the first time at once (named `interval:{every:?}`).
    pub fn every<F, Fut>(&self, every: Duration, task: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.every_named(format!("interval:{every:?}"), every, task);
    }

    /// Adds a job named `name` run every `every`, the first time at once.
    pub fn every_named<F, Fut>(&self, name: impl Into<String>, every: Duration, task: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add(job(name.into(), JobKind::Interval, every, task));
    }

    /// Adds a job run once, `after` from the start (named `timeout:{after:?}`).
    pub fn after<F, Fut>(&self, after: Duration, task: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_named(format!("timeout:{after:?}"), after, task);
    }

    /// Adds a job named `name` run once, `after` from the start.
    pub fn after_named<F, Fut>(&self, name: impl Into<String>, after: Duration, task: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add(job(name.into(), JobKind::Timeout, after, task));
    }

    fn add(&self, job: Job) {
        lock(&self.inner.jobs).push(job);
    }

    /// The jobs registered.
    pub fn jobs(&self) -> Vec<ScheduledJob> {
        lock(&self.inner.jobs)
            .iter()
            .map(|job| job.about.clone())
            .collect()
    }

    /// Whether the jobs are started (and not shut down).
    pub fn is_running(&self) -> bool {
        lock(&self.inner.running).is_some()
    }

    /// Starts the jobs on the serving thread of this thread ([`Spawner::current`]: within
    /// `serve`, its tasks, handlers and hooks, or a `TestingModule::run`); a second call
    /// does nothing while they run. [`start_schedules`] starts them from anywhere.
    ///
    /// # Panics
    /// Off a serving thread (as NestForge's panics outside a Tokio runtime).
    pub fn start(&self) {
        let spawner = Spawner::current()
            .expect("ScheduleRegistry::start off the serving thread: use start_schedules");
        self.start_on(&spawner);
    }

    /// Starts the jobs through `spawner` (a second call does nothing while they run).
    pub fn start_on(&self, spawner: &Spawner) {
        let stop = {
            let mut running = lock(&self.inner.running);
            if running.is_some() {
                return;
            }
            Arc::clone(running.insert(Arc::default()))
        };
        for job in lock(&self.inner.jobs).iter().cloned() {
            let stop = Arc::clone(&stop);
            spawner.spawn(async move {
                or(run(job), async move { stop.wait().await }).await;
            });
        }
    }

    /// Stops the jobs (a run in progress is dropped at its next wait). They may be started
    /// again.
    pub fn shutdown(&self) {
        if let Some(stop) = lock(&self.inner.running).take() {
            stop.trigger();
        }
    }
}

/// Runs `job` on its schedule.
async fn run(job: Job) {
    let Job { about, run } = job;
    let mut next = match about.kind {
        JobKind::Interval => Instant::now(),
        JobKind::Timeout => Instant::now() + about.delay,
    };
    loop {
        Timer::at(next).await;
        if AssertUnwindSafe(run()).catch_unwind().await.is_err() {
            event!(warn, "schedule `{}` panicked", about.name);
        }
        if about.kind == JobKind::Timeout {
            return;
        }
        // No overlap, no burst: a late run pushes the next one back.
        next = (next + about.delay).max(Instant::now());
    }
}

fn job<F, Fut>(name: String, kind: JobKind, delay: Duration, task: F) -> Job
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Job {
        about: ScheduledJob { name, kind, delay },
        run: Arc::new(move || Box::pin(task())),
    }
}

impl fmt::Debug for ScheduleRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleRegistry")
            .field("jobs", &self.jobs())
            .field("running", &self.is_running())
            .finish()
    }
}

/// Adds jobs by value; [`build`](Self::build) makes the registry.
#[derive(Default)]
pub struct ScheduleRegistryBuilder {
    jobs: Vec<Job>,
}

impl ScheduleRegistryBuilder {
    /// See [`ScheduleRegistry::every`].
    pub fn every<F, Fut>(self, every: Duration, task: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.every_named(format!("interval:{every:?}"), every, task)
    }

    /// See [`ScheduleRegistry::every_named`].
    pub fn every_named<F, Fut>(mut self, name: impl Into<String>, every: Duration, task: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.jobs
            .push(job(name.into(), JobKind::Interval, every, task));
        self
    }

    /// See [`ScheduleRegistry::after`].
    pub fn after<F, Fut>(self, after: Duration, task: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_named(format!("timeout:{after:?}"), after, task)
    }

    /// See [`ScheduleRegistry::after_named`].
    pub fn after_named<F, Fut>(mut self, name: impl Into<String>, after: Duration, task: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.jobs
            .push(job(name.into(), JobKind::Timeout, after, task));
        self
    }

    /// The registry.
    pub fn build(self) -> ScheduleRegistry {
        let registry = ScheduleRegistry::new();
        *lock(&registry.inner.jobs) = self.jobs;
        registry
    }
}

impl fmt::Debug for ScheduleRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleRegistryBuilder")
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

/// Starts the container's [`ScheduleRegistry`] on its server's [`Spawner`]: the
/// `on_application_bootstrap` hook of NestForge's schedules. Under a
/// [`TestingModule`](crate::TestingModule) the jobs run while
/// [`TestingModule::run`](crate::TestingModule::run) drives them.
pub fn start_schedules(container: &Providers) -> Result<()> {
    let registry = container.resolve::<ScheduleRegistry>()?;
    let spawner = container.resolve::<Spawner>()?;
    registry.start_on(&spawner);
    Ok(())
}

/// Stops the container's [`ScheduleRegistry`]: the `on_application_shutdown` hook of
/// NestForge's schedules.
pub fn shutdown_schedules(container: &Providers) -> Result<()> {
    container.resolve::<ScheduleRegistry>()?.shutdown();
    Ok(())
}
