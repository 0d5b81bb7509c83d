//! The connection set of one `serve` call: futures polled on the caller's thread, each only
//! when its waker fired, in wake-up order. A minimal local executor, so that the server runs
//! inside any executor (or a plain `block_on`) without spawning anywhere.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::poll_fn;

use crate::rt::sync::lock;

type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// How long a turn polls tasks before it returns to the caller's `block_on`, which then
/// collects I/O events itself. With longer turns (hundreds of ready connections) async-io's
/// helper thread, which takes over the reactor when it sees no reactor turn for 50 µs,
/// becomes the one waiting for events, and every batch of them a hand-off between two
/// threads (BENCHMARKS.md#the-run-loop). Much shorter turns cost a reactor turn (five
/// syscalls) per few messages.
const TURN: Duration = Duration::from_micros(200);

thread_local! {
    /// When the turn running on this thread began.
    static TURN_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The time for a connection's bookkeeping (when the peer was last heard, whether a
/// timer is due): the start of the current turn on a thread running one (at most
/// [`TURN`] and one poll ago), the clock elsewhere. One clock read per turn instead of
/// two per message.
pub(crate) fn now() -> Instant {
    TURN_STARTED.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Clears [`TURN_STARTED`] when a turn ends, unwinding included.
struct TurnClock;

impl TurnClock {
    fn start(now: Instant) -> TurnClock {
        TURN_STARTED.with(|t| t.set(Some(now)));
        TurnClock
    }
}

impl Drop for TurnClock {
    fn drop(&mut self) {
        TURN_STARTED.with(|t| t.set(None));
    }
}

/// Futures spawned with [`Tasks::spawn`] run while [`Tasks::run`] is awaited.
pub(crate) struct Tasks<'a> {
    /// Spawned, not yet polled (spawning may happen while a task is being polled).
    incoming: RefCell<Vec<Task<'a>>>,
    slots: RefCell<Slots<'a>>,
    /// The ready list of the current turn; swapped with the shared one so that neither
    /// allocates again once both have grown.
    batch: RefCell<VecDeque<usize>>,
    wakeups: Arc<Wakeups>,
}

struct Slots<'a> {
    tasks: Vec<Option<Running<'a>>>,
    free: Vec<usize>,
}

/// What wakers reach, possibly from other threads.
#[derive(Default)]
struct Wakeups {
    ready: Mutex<VecDeque<usize>>,
    run: Mutex<Option<Waker>>,
}

struct Running<'a> {
    task: Task<'a>,
    state: Arc<TaskWaker>,
    waker: Waker,
}

struct TaskWaker {
    slot: usize,
    queued: AtomicBool,
    wakeups: Arc<Wakeups>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.wakeups.ready).push_back(self.slot);
            if let Some(run) = lock(&self.wakeups.run).as_ref() {
                run.wake_by_ref();
            }
        }
    }
}

impl<'a> Tasks<'a> {
    pub(crate) fn new() -> Self {
        Tasks {
            incoming: RefCell::new(Vec::new()),
            slots: RefCell::new(Slots {
                tasks: Vec::new(),
                free: Vec::new(),
            }),
            batch: RefCell::new(VecDeque::new()),
            wakeups: Arc::default(),
        }
    }

    /// Adds a future; it is first polled by the next turn of [`run`](Self::run).
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + 'a) {
        self.spawn_boxed(Box::pin(future));
    }

    /// [`spawn`](Self::spawn) for a future already boxed (no second box, no vtable for
    /// the box as a future).
    pub(crate) fn spawn_boxed(&self, task: Task<'a>) {
        self.incoming.borrow_mut().push(task);
        if let Some(run) = lock(&self.wakeups.run).as_ref() {
            run.wake_by_ref();
        }
    }

    /// Polls the tasks that were woken, forever (it never completes: drop it, or race it
    /// against the future that decides when to stop, to drop the remaining tasks).
    pub(crate) async fn run(&self) {
        poll_fn(|cx| {
            self.turn(cx);
            Poll::<()>::Pending
        })
        .await
    }

    /// One turn: admit spawned tasks, then poll the tasks that were ready when the batch
    /// began, once each, for at most [`TURN`]; the rest of the batch goes first next turn.
    /// Tasks woken meanwhile wait for the next batch (fairness).
    fn turn(&self, cx: &mut Context<'_>) {
        {
            let mut run = lock(&self.wakeups.run);
            if !run.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *run = Some(cx.waker().clone());
            }
        }
        for task in self.incoming.borrow_mut().drain(..) {
            let mut slots = self.slots.borrow_mut();
            let slot = slots.free.pop().unwrap_or(slots.tasks.len());
            let state = Arc::new(TaskWaker {
                slot,
                queued: AtomicBool::new(true),
                wakeups: Arc::clone(&self.wakeups),
            });
            let waker = Waker::from(Arc::clone(&state));
            let entry = Some(Running { task, state, waker });
            match slots.tasks.get_mut(slot) {
                Some(place) => *place = entry,
                None => slots.tasks.push(entry),
            }
            lock(&self.wakeups.ready).push_back(slot);
        }
        let mut batch = self.batch.borrow_mut();
        if batch.is_empty() {
            std::mem::swap(&mut *batch, &mut *lock(&self.wakeups.ready));
        }
        let started = Instant::now();
        let _clock = TurnClock::start(started);
        let end = started + TURN;
        while let Some(slot) = batch.pop_front() {
            // Take the task out so that it can spawn (or be woken) while it runs.
            let taken = self
                .slots
                .borrow_mut()
                .tasks
                .get_mut(slot)
                .and_then(Option::take);
            let Some(mut running) = taken else {
                continue; // finished already: a stale wake-up
            };
            running.state.queued.store(false, Ordering::Release);
            let done = running
                .task
                .as_mut()
                .poll(&mut Context::from_waker(&running.waker))
                .is_ready();
            let mut slots = self.slots.borrow_mut();
            if done {
                slots.free.push(slot);
            } else {
                slots.tasks[slot] = Some(running);
            }
            if Instant::now() >= end {
                break;
            }
        }
        if !batch.is_empty()
            || !lock(&self.wakeups.ready).is_empty()
            || !self.incoming.borrow().is_empty()
        {
            cx.waker().wake_by_ref();
        }
    }
}

/// A future polled only when its own waker fired (and on its first poll): inside a
/// combinator that polls every part on each wake-up, the others' wake-ups cost it nothing.
pub(crate) struct OwnWakeups<F> {
    future: Pin<Box<F>>,
    state: Arc<OwnWaker>,
    waker: Waker,
}

struct OwnWaker {
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
}

impl Wake for OwnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(outer) = lock(&self.outer).as_ref() {
            outer.wake_by_ref();
        }
    }
}

impl<F: Future> OwnWakeups<F> {
    pub(crate) fn new(future: F) -> Self {
        let state = Arc::new(OwnWaker {
            woken: AtomicBool::new(true),
            outer: Mutex::new(None),
        });
        OwnWakeups {
            future: Box::pin(future),
            waker: Waker::from(Arc::clone(&state)),
            state,
        }
    }
}

impl<F: Future> Future for OwnWakeups<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            let mut outer = lock(&this.state.outer);
            if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *outer = Some(cx.waker().clone());
            }
        }
        if !this.state.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.future
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

impl<F> fmt::Debug for OwnWakeups<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnWakeups").finish_non_exhaustive()
    }
}

impl fmt::Debug for Tasks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

/// The sizes of what a task costs the task set (see `crate::__private::connection_parts`).
pub(crate) fn parts() -> Vec<(&'static str, usize)> {
    vec![
        (
            "rt: task slot (Running)",
            std::mem::size_of::<Option<Running<'static>>>(),
        ),
        (
            "rt: task waker (Arc<TaskWaker>, heap)",
            16 + std::mem::size_of::<TaskWaker>(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Pending until `open`; counts its polls and keeps its last waker.
    struct Gate {
        open: Rc<Cell<bool>>,
        polls: Rc<Cell<usize>>,
        waker: Rc<RefCell<Option<Waker>>>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            if self.open.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn turn(tasks: &Tasks<'_>, waker: &Waker) {
        tasks.turn(&mut Context::from_waker(waker));
    }

    #[test]
    fn a_task_is_polled_again_only_when_woken() {
        let tasks = Tasks::new();
        let (open, polls) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
        let gate_waker = Rc::new(RefCell::new(None));
        tasks.spawn(Gate {
            open: Rc::clone(&open),
            polls: Rc::clone(&polls),
            waker: Rc::clone(&gate_waker),
        });
        let run = Arc::new(CountingWaker::default());
        let run_waker = Waker::from(Arc::clone(&run));
        turn(&tasks, &run_waker);
        assert_eq!(polls.get(), 1);
        // Not woken: not polled.
        turn(&tasks, &run_waker);
        assert_eq!(polls.get(), 1);
        // Woken (twice: one poll), possibly from another thread: the runner is woken too.
        let waker = gate_waker.borrow_mut().take().unwrap();
        let before = run.0.load(Ordering::SeqCst);
        std::thread::scope(|s| {
            s.spawn(|| {
                waker.wake_by_ref();
                waker.wake_by_ref();
            });
        });
        assert_eq!(run.0.load(Ordering::SeqCst), before + 1);
        open.set(true);
        turn(&tasks, &run_waker);
        assert_eq!(polls.get(), 2);
        // Finished: a stale wake-up polls nothing.
        waker.wake();
        turn(&tasks, &run_waker);
        assert_eq!(polls.get(), 2);
    }

    /// Takes `busy` of CPU time at each poll, records its number in `order`, wakes itself.
    struct Busy {
        id: usize,
        busy: Duration,
        order: Rc<RefCell<Vec<usize>>>,
    }

    impl Future for Busy {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let started = Instant::now();
            while started.elapsed() < self.busy {}
            self.order.borrow_mut().push(self.id);
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_long_turn_returns_to_the_caller_and_the_rest_of_its_batch_goes_first() {
        let tasks = Tasks::new();
        let order = Rc::new(RefCell::new(Vec::new()));
        for id in 0..6 {
            tasks.spawn(Busy {
                id,
                busy: TURN / 2,
                order: Rc::clone(&order),
            });
        }
        let run = Arc::new(CountingWaker::default());
        let run_waker = Waker::from(Arc::clone(&run));
        turn(&tasks, &run_waker);
        // Stopped once `TURN` had passed (after two tasks at half a turn each, or fewer on a
        // busy machine), the runner woken to go on.
        let first = order.borrow().len();
        assert!((1..6).contains(&first), "{first} tasks in one turn");
        assert!(run.0.load(Ordering::SeqCst) >= 1);
        // The rest of the first batch is polled before the tasks that woke themselves.
        while order.borrow().len() < 6 {
            turn(&tasks, &run_waker);
        }
        assert_eq!(order.borrow()[..6], [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn own_wakeups_polls_its_future_only_after_its_own_wake_up() {
        let (open, polls) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
        let gate_waker = Rc::new(RefCell::new(None));
        let mut own = OwnWakeups::new(Gate {
            open: Rc::clone(&open),
            polls: Rc::clone(&polls),
            waker: Rc::clone(&gate_waker),
        });
        let outer = Arc::new(CountingWaker::default());
        let outer_waker = Waker::from(Arc::clone(&outer));
        let mut cx = Context::from_waker(&outer_waker);
        assert!(Pin::new(&mut own).poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 1);
        // Polled for someone else's wake-up: the inner future is not.
        assert!(Pin::new(&mut own).poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 1);
        // Its own wake-up reaches the outer waker and lets the next poll through.
        open.set(true);
        gate_waker.borrow_mut().take().unwrap().wake();
        assert_eq!(outer.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut own).poll(&mut cx).is_ready());
        assert_eq!(polls.get(), 2);
    }

    #[test]
    fn a_task_spawned_while_running_runs_on_the_next_turn() {
        let tasks = Rc::new(Tasks::new());
        let ran = Rc::new(Cell::new(0));
        let (inner_tasks, inner_ran) = (Rc::clone(&tasks), Rc::clone(&ran));
        tasks.spawn(async move {
            inner_ran.set(inner_ran.get() + 1);
            let ran = Rc::clone(&inner_ran);
            inner_tasks.spawn(async move { ran.set(ran.get() + 10) });
        });
        let run = Arc::new(CountingWaker::default());
        let run_waker = Waker::from(Arc::clone(&run));
        turn(&tasks, &run_waker);
        assert_eq!(ran.get(), 1);
        // The runner asked to be polled again for the spawned task.
        assert!(run.0.load(Ordering::SeqCst) >= 1);
        turn(&tasks, &run_waker);
        assert_eq!(ran.get(), 11);
    }

    #[test]
    fn finished_tasks_are_dropped_and_their_slots_reused() {
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let tasks = Tasks::new();
        let dropped = Rc::new(Cell::new(false));
        let flag = Flag(Rc::clone(&dropped));
        tasks.spawn(async move {
            let _flag = flag;
        });
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        turn(&tasks, &waker);
        assert!(dropped.get());
        assert_eq!(tasks.slots.borrow().free, [0]);
        tasks.spawn(async {});
        turn(&tasks, &waker);
        assert_eq!(tasks.slots.borrow().tasks.len(), 1, "slot 0 reused");
    }
}
