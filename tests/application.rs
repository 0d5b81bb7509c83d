//! The application around the gateway on a real server: request-scoped providers per
//! connection, tasks and schedules on the serving thread, lifecycle hooks at serve's start
//! and end.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nestforge_edge::prelude::*;
use nestforge_edge::{
    shutdown_schedules, start_schedules, JobKind, ScheduleRegistry, Server, Spawner,
};

// ---- request-scoped providers, one per connection -----------------------------------------

static SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// Made once per connection.
struct Session {
    serial: usize,
    request: String,
}

/// Answers each text frame with the connection's session, resolved twice (serial, request
/// id, and whether both resolves gave the same instance).
struct SessionGateway;

impl WebSocketGateway for SessionGateway {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            while let Some(Ok(message)) = socket.recv().await {
                if !message.is_text() {
                    continue;
                }
                let a = ctx.resolve::<Session>().unwrap();
                let b = ctx
                    .microservice_context("p", TransportMetadata::new())
                    .resolve::<Session>()
                    .unwrap();
                let reply = format!("{} {} {}", a.serial, a.request, Arc::ptr_eq(&a, &b));
                if socket.send(Message::Text(reply.into())).await.is_err() {
                    break;
                }
            }
        })
    }
}

module! {
    struct SessionModule {
        providers: [Provider::request_factory(|container| {
            let request = container.resolve::<RequestId>()?;
            Ok(Session {
                serial: SESSIONS.fetch_add(1, Ordering::SeqCst),
                request: request.value().to_owned(),
            })
        })],
    }
}

#[test]
fn a_request_scoped_provider_is_one_instance_per_connection() {
    let server = NestForgeFactory::<SessionModule>::create()
        .unwrap()
        .with_websocket_gateway(SessionGateway)
        .into_server()
        .unwrap();
    let running = spawn(server);
    smol::block_on(within(10, async {
        let mut first = connect(running.addr, "/ws").await;
        let mut second = connect(running.addr, "/ws").await;
        let mut replies = Vec::new();
        for turn in 0..4 {
            let ws = if turn % 2 == 0 {
                &mut first
            } else {
                &mut second
            };
            send_text(ws, "?").await;
            replies.push(next_text(ws).await);
        }
        let parsed: Vec<(String, String, String)> = replies
            .iter()
            .map(|r| {
                let mut parts = r.split(' ').map(str::to_owned);
                (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                )
            })
            .collect();
        // The same instance within a connection (its handler contexts included) ...
        assert_eq!(parsed[0], parsed[2]);
        assert_eq!(parsed[1], parsed[3]);
        assert!(parsed.iter().all(|p| p.2 == "true"));
        // ... another one on the other, each with its connection's request id.
        assert_ne!(parsed[0].0, parsed[1].0);
        assert_ne!(parsed[0].1, parsed[1].1);
        assert!(parsed[0].1.starts_with("req-"));
    }));
}

// ---- tasks on the serving thread ----------------------------------------------------------

/// A future that counts its polls.
struct CountPolls<F> {
    future: std::pin::Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: std::future::Future> std::future::Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.future.as_mut().poll(cx)
    }
}

/// What the test task saw.
#[derive(Clone, Default)]
struct Probe {
    polls: Arc<AtomicUsize>,
    ticks: Arc<AtomicUsize>,
    thread: Arc<Mutex<Option<std::thread::ThreadId>>>,
}

module! { struct EchoModule {} }

/// Echo, with a task that ticks every 50 ms and counts its polls.
fn echo_with_task(probe: &Probe) -> Server {
    let probe = probe.clone();
    NestForgeFactory::<EchoModule>::create()
        .unwrap()
        .with_websocket_gateway(Echo)
        .with_task(move |providers| {
            assert!(providers.resolve::<Connections>().is_ok());
            let polls = Arc::clone(&probe.polls);
            CountPolls {
                polls,
                future: Box::pin(async move {
                    *probe.thread.lock().unwrap() = Some(std::thread::current().id());
                    loop {
                        async_io::Timer::after(Duration::from_millis(50)).await;
                        probe.ticks.fetch_add(1, Ordering::SeqCst);
                    }
                }),
            }
        })
        .into_server()
        .unwrap()
}

#[test]
fn a_task_runs_on_the_serving_thread_polled_on_its_own_wake_ups_only() {
    let probe = Probe::default();
    let running = spawn(echo_with_task(&probe));
    let mut client = raw_upgrade(running.addr, "/ws");
    let started = Instant::now();
    for i in 0..200 {
        let text = format!("m{i}");
        client.write_all(&frame(true, 1, text.as_bytes())).unwrap();
        assert_eq!(read_frame(&mut client).unwrap(), (1, text.into_bytes()));
    }
    std::thread::sleep(Duration::from_millis(120));
    let (polls, ticks) = (
        probe.polls.load(Ordering::SeqCst),
        probe.ticks.load(Ordering::SeqCst),
    );
    // One poll at the start, one per timer wake-up; none for the 200 messages.
    assert!(ticks >= 2, "the task ran: {ticks} ticks");
    assert!(
        polls <= ticks + 2,
        "{polls} polls for {ticks} ticks in {:?} with 200 messages",
        started.elapsed()
    );
    let serving = *probe.thread.lock().unwrap();
    assert!(serving.is_some_and(|t| t != std::thread::current().id()));
    running.stop();
}

#[test]
fn the_spawner_runs_futures_from_another_thread_on_the_serving_thread() {
    let server = NestForgeFactory::<EchoModule>::create()
        .unwrap()
        .with_websocket_gateway(Echo)
        .into_server()
        .unwrap();
    let spawner = server.providers().resolve::<Spawner>().unwrap();
    let running = spawn(server);
    let (tx, rx) = std::sync::mpsc::channel();
    spawner.spawn(async move {
        let on_serving_thread = Spawner::current().is_some();
        tx.send((std::thread::current().id(), on_serving_thread))
            .unwrap();
    });
    let (thread, current) = rx.recv_timeout(scaled(Duration::from_secs(5))).unwrap();
    assert_ne!(thread, std::thread::current().id());
    assert!(current, "Spawner::current inside a task");
    running.stop();
}

// ---- schedules ----------------------------------------------------------------------------

/// What the scheduled jobs did.
#[derive(Default)]
struct JobLog {
    fast: AtomicUsize,
    slow_running: AtomicUsize,
    slow_overlaps: AtomicUsize,
    slow_runs: AtomicUsize,
    once: AtomicUsize,
    panics: AtomicUsize,
    after_shutdown: Mutex<Option<usize>>,
}

static JOBS: std::sync::OnceLock<Arc<JobLog>> = std::sync::OnceLock::new();

fn jobs() -> Arc<JobLog> {
    Arc::clone(JOBS.get_or_init(Arc::default))
}

fn build_schedules() -> anyhow::Result<ScheduleRegistry> {
    let log = jobs();
    let (fast, slow, once, boom) = (log.clone(), log.clone(), log.clone(), log);
    Ok(ScheduleRegistry::builder()
        .every_named("fast", Duration::from_millis(20), move || {
            let log = Arc::clone(&fast);
            async move {
                log.fast.fetch_add(1, Ordering::SeqCst);
            }
        })
        // Runs for 3 periods: the next tick waits for it.
        .every_named("slow", Duration::from_millis(20), move || {
            let log = Arc::clone(&slow);
            async move {
                if log.slow_running.fetch_add(1, Ordering::SeqCst) > 0 {
                    log.slow_overlaps.fetch_add(1, Ordering::SeqCst);
                }
                async_io::Timer::after(Duration::from_millis(60)).await;
                log.slow_running.fetch_sub(1, Ordering::SeqCst);
                log.slow_runs.fetch_add(1, Ordering::SeqCst);
            }
        })
        .after(Duration::from_millis(30), move || {
            let log = Arc::clone(&once);
            async move {
                log.once.fetch_add(1, Ordering::SeqCst);
            }
        })
        .every_named("panics", Duration::from_millis(40), move || {
            let log = Arc::clone(&boom);
            async move {
                log.panics.fetch_add(1, Ordering::SeqCst);
                panic!("a job that panics");
            }
        })
        .build())
}

fn record_shutdown(_: &Providers) -> anyhow::Result<()> {
    let log = jobs();
    *log.after_shutdown.lock().unwrap() = Some(log.fast.load(Ordering::SeqCst));
    Ok(())
}

module! {
    struct ScheduledModule {
        providers: [build_schedules()?],
        on_application_bootstrap: [start_schedules],
        on_application_shutdown: [shutdown_schedules, record_shutdown],
    }
}

#[test]
fn schedules_tick_while_serving_never_overlap_and_stop_at_shutdown() {
    let server = NestForgeFactory::<ScheduledModule>::create()
        .unwrap()
        .with_websocket_gateway(Echo)
        .into_server()
        .unwrap();
    let registry = server.providers().resolve::<ScheduleRegistry>().unwrap();
    assert_eq!(registry.jobs().len(), 4);
    assert_eq!(registry.jobs()[2].kind, JobKind::Timeout);
    assert_eq!(registry.jobs()[2].name, "timeout:30ms");
    assert!(
        !registry.is_running(),
        "started when serving starts, not at create"
    );
    // The panics are expected: keep them out of the test's output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"a job that panics") {
            default_hook(info);
        }
    }));
    let log = jobs();
    let started = Instant::now();
    let running = spawn(server);
    // An echo goes through meanwhile: the jobs share the thread.
    let mut client = raw_upgrade(running.addr, "/ws");
    std::thread::sleep(Duration::from_millis(300));
    client.write_all(&frame(true, 1, b"still here")).unwrap();
    assert_eq!(
        read_frame(&mut client).unwrap(),
        (1, b"still here".to_vec())
    );
    assert!(registry.is_running());
    drop(client);
    running.stop();
    let elapsed = started.elapsed();
    let fast = log.fast.load(Ordering::SeqCst);
    assert!(fast >= 5, "the fast job ticked: {fast}");
    // Each run of the slow job takes 60 ms: no more runs than that allows.
    let slow = log.slow_runs.load(Ordering::SeqCst);
    let most = elapsed.as_millis() / 60 + 1;
    assert!(
        (1..=most).contains(&(slow as u128)),
        "the slow job ran {slow} times in {elapsed:?}"
    );
    assert_eq!(log.slow_overlaps.load(Ordering::SeqCst), 0, "no overlap");
    assert_eq!(log.once.load(Ordering::SeqCst), 1);
    assert!(
        log.panics.load(Ordering::SeqCst) >= 2,
        "a panicking job runs again"
    );
    // Stopped at shutdown: nothing ticks after the shutdown hooks.
    let at_shutdown = log.after_shutdown.lock().unwrap().expect("the hook ran");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(log.fast.load(Ordering::SeqCst), at_shutdown);
    assert!(!registry.is_running());
}

#[test]
fn under_a_testing_module_schedules_run_while_the_module_runs() {
    let registry = ScheduleRegistry::new();
    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ticks);
    registry.every(Duration::from_millis(10), move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let module = nestforge_edge::TestFactory::<EchoModule>::create()
        .override_provider(registry.clone())
        .build()
        .unwrap();
    start_schedules(module.container()).unwrap();
    assert_eq!(ticks.load(Ordering::SeqCst), 0, "nothing runs by itself");
    module.run(async_io::Timer::after(Duration::from_millis(55)));
    let first = ticks.load(Ordering::SeqCst);
    assert!(first >= 2, "{first}");
    // They go on at the next run, until the module shuts down.
    module.run(async_io::Timer::after(Duration::from_millis(30)));
    assert!(ticks.load(Ordering::SeqCst) > first);
    module.shutdown().unwrap();
    registry.shutdown();
    let last = ticks.load(Ordering::SeqCst);
    module.run(async_io::Timer::after(Duration::from_millis(30)));
    assert_eq!(ticks.load(Ordering::SeqCst), last);
    // `start` on the module's thread while it runs.
    module.run(async { registry.start() });
    assert!(registry.is_running());
}

// ---- lifecycle hooks on the server --------------------------------------------------------

static EVENTS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn on_init(_: &Providers) -> nestforge_edge::Result<()> {
    EVENTS.lock().unwrap().push("init");
    Ok(())
}
fn on_bootstrap(_: &Providers) -> nestforge_edge::Result<()> {
    EVENTS.lock().unwrap().push("bootstrap");
    Ok(())
}
fn on_destroy(_: &Providers) -> nestforge_edge::Result<()> {
    EVENTS.lock().unwrap().push("destroy");
    Ok(())
}
fn on_shutdown(container: &Providers) -> nestforge_edge::Result<()> {
    // The connections are closed by now.
    assert!(container.resolve::<Connections>()?.is_empty());
    EVENTS.lock().unwrap().push("shutdown");
    Ok(())
}

module! {
    struct HookedModule {
        on_module_init: [on_init],
        on_application_bootstrap: [on_bootstrap],
        on_module_destroy: [on_destroy],
        on_application_shutdown: [on_shutdown],
    }
}

#[test]
fn hooks_run_at_create_when_serving_starts_and_after_the_shutdown() {
    let server = NestForgeFactory::<HookedModule>::create()
        .unwrap()
        .with_websocket_gateway(Echo)
        .into_server()
        .unwrap();
    assert_eq!(*EVENTS.lock().unwrap(), ["init"]);
    let running = spawn(server.clone());
    let mut client = raw_upgrade(running.addr, "/ws");
    client.write_all(&frame(true, 1, b"x")).unwrap();
    assert_eq!(read_frame(&mut client).unwrap(), (1, b"x".to_vec()));
    assert_eq!(*EVENTS.lock().unwrap(), ["init", "bootstrap"]);
    running.handle.shutdown();
    assert_eq!(read_close_code(&mut client), Some(1001));
    client
        .write_all(&frame(true, 8, &1001u16.to_be_bytes()))
        .unwrap();
    running.stop();
    assert_eq!(
        *EVENTS.lock().unwrap(),
        ["init", "bootstrap", "destroy", "shutdown"]
    );
    // Serving the server again after its shutdown runs no hook twice.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    nestforge_edge::block_on(server.serve(listener)).unwrap();
    assert_eq!(EVENTS.lock().unwrap().len(), 4);
}
