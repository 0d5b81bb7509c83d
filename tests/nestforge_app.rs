//! NestForge 1.9's application code around the gateway, compiled against this crate: its
//! testing crate's tests (crates/nestforge-testing), its schedule crate's test and docs
//! (crates/nestforge-schedule, docs/schedule.md), its module-system docs
//! (docs/module-system.md). The NestForge code is as written there; the lines that differ
//! are marked `// changed:` (a `use` line, a module declaration written with `module!`
//! instead of `#[module]` or `impl ModuleDefinition`, and a Tokio test's runtime).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result; // NestForge's tests use anyhow's Result
use nestforge_edge as nestforge; // changed: the `nestforge` crate
use nestforge_edge::{module, Container, Provider, ScheduleRegistry, TestFactory}; // changed

// ---- crates/nestforge-testing/src/lib.rs, its tests ---------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct AppConfig {
    app_name: &'static str,
}

// changed: `impl ModuleDefinition for AppModule { fn register(container) { container.register(..) } }`
module! {
    struct AppModule {
        providers: [AppConfig { app_name: "default" }],
    }
}

#[test]
fn builds_testing_module_and_resolves_default_provider() {
    let module = TestFactory::<AppModule>::create()
        .build()
        .expect("test module should build");

    let config = module
        .resolve::<AppConfig>()
        .expect("config should resolve");
    assert_eq!(
        *config,
        AppConfig {
            app_name: "default"
        }
    );
}

#[test]
fn overrides_provider_value() {
    let module = TestFactory::<AppModule>::create()
        .override_provider(AppConfig { app_name: "test" })
        .build()
        .expect("test module should build with overrides");

    let config = module
        .resolve::<AppConfig>()
        .expect("config should resolve");
    assert_eq!(*config, AppConfig { app_name: "test" });
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct GreetingService {
    greeting: String,
}

// changed: `register_provider(container, Provider::factory(..))` in `ModuleDefinition::register`
module! {
    struct FactoryModule {
        providers: [
            Provider::factory(|container| {
                let config = container.resolve::<AppConfig>()?;
                Ok(GreetingService {
                    greeting: format!("hello {}", config.app_name),
                })
            }),
        ],
    }
}

#[test]
fn overrides_are_applied_before_factory_resolution() {
    let module = TestFactory::<FactoryModule>::create()
        .override_provider(AppConfig {
            app_name: "override",
        })
        .build()
        .expect("test module should build with transitive overrides");

    let greeting = module
        .resolve::<GreetingService>()
        .expect("greeting service should resolve");
    assert_eq!(greeting.greeting, "hello override");
}

// ---- crates/nestforge-schedule/src/lib.rs, its test ---------------------------------------

#[test] // changed: #[tokio::test]
fn registry_starts_and_stops_interval_tasks() {
    let testing = TestFactory::<AppModule>::create().build().unwrap(); // changed: a runtime
    testing.run(async {
        // changed: the async test body
        let registry = ScheduleRegistry::new();
        let counter = Arc::new(AtomicUsize::new(0));
        let counter_for_task = Arc::clone(&counter);

        registry.every(Duration::from_millis(10), move || {
            let counter = Arc::clone(&counter_for_task);
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });

        registry.start();
        async_io::Timer::after(Duration::from_millis(35)).await; // changed: tokio::time::sleep
        registry.shutdown();

        assert!(counter.load(Ordering::Relaxed) >= 1);
    });
}

// ---- docs/schedule.md ---------------------------------------------------------------------

static PERIODIC: AtomicUsize = AtomicUsize::new(0);

fn build_schedule_registry() -> anyhow::Result<nestforge::ScheduleRegistry> {
    let registry = nestforge::ScheduleRegistry::new();
    registry.every(std::time::Duration::from_secs(30), || async {
        PERIODIC.fetch_add(1, Ordering::SeqCst); // the docs print "running periodic job"
    });
    Ok(registry)
}

// changed: #[module(providers = [..], on_application_bootstrap = [..], on_application_shutdown = [..])]
module! {
    pub struct ScheduleAppModule {
        providers: [build_schedule_registry()?],
        on_application_bootstrap: [nestforge::start_schedules],
        on_application_shutdown: [nestforge::shutdown_schedules],
    }
}

#[test]
fn the_schedule_docs_module_starts_its_jobs_at_bootstrap_and_stops_them_at_shutdown() {
    let module = TestFactory::<ScheduleAppModule>::create().build().unwrap();
    let registry = module.resolve::<ScheduleRegistry>().unwrap();
    assert!(registry.is_running());
    assert_eq!(registry.jobs()[0].name, "interval:30s");
    // An interval job's first run is at once.
    module.run(async_io::Timer::after(Duration::from_millis(20)));
    assert_eq!(PERIODIC.load(Ordering::SeqCst), 1);
    module.shutdown().unwrap();
    assert!(!registry.is_running());
}

// ---- docs/module-system.md ----------------------------------------------------------------

pub struct Db;
pub struct Settings {
    pub dsn: String,
}
pub struct UsersService;
fn config() -> Settings {
    Settings {
        dsn: "sqlite::memory:".into(),
    }
}
fn build_service(container: &Container) -> anyhow::Result<UsersService> {
    container.resolve::<Db>()?;
    Ok(UsersService)
}

module! { pub struct DbModule { providers: [Db], exports: [Db] } }
module! { pub struct SettingsModule {} }

// changed: #[module(imports = [..], controllers = [..], providers = [..], exports = [Db])]
// (no controllers here: no HTTP layer; `config` is a value there, a function here)
module! {
    pub struct ModuleSystemApp {
        imports: [DbModule, SettingsModule],
        providers: [Provider::value(config()), Provider::factory(build_service)],
        exports: [Db],
    }
}

fn load_config() -> anyhow::Result<Settings> {
    Ok(config())
}

static HOOKS: std::sync::Mutex<Vec<&str>> = std::sync::Mutex::new(Vec::new());

fn warm_cache(container: &nestforge::Container) -> anyhow::Result<()> {
    container.resolve::<Settings>()?;
    HOOKS.lock().unwrap().push("warm_cache");
    Ok(())
}
fn log_startup(_container: &nestforge::Container) -> anyhow::Result<()> {
    HOOKS.lock().unwrap().push("log_startup");
    Ok(())
}
fn flush_metrics(_container: &nestforge::Container) -> anyhow::Result<()> {
    HOOKS.lock().unwrap().push("flush_metrics");
    Ok(())
}
fn close_resources(_container: &nestforge::Container) -> anyhow::Result<()> {
    HOOKS.lock().unwrap().push("close_resources");
    Ok(())
}

// changed: #[module(providers = [load_config()?], on_module_init = [..], ...)]
module! {
    pub struct HooksApp {
        providers: [load_config()?],
        on_module_init: [warm_cache],
        on_application_bootstrap: [log_startup],
        on_module_destroy: [flush_metrics],
        on_application_shutdown: [close_resources],
    }
}

#[test]
fn the_module_system_docs_modules_build_and_run_their_hooks() -> Result<()> {
    let module = TestFactory::<ModuleSystemApp>::create().build()?;
    assert_eq!(module.resolve::<Settings>()?.dsn, "sqlite::memory:");
    assert!(module.resolve::<UsersService>().is_ok());
    let module = TestFactory::<HooksApp>::create().build()?;
    module.shutdown()?;
    assert_eq!(
        *HOOKS.lock().unwrap(),
        [
            "warm_cache",
            "log_startup",
            "flush_metrics",
            "close_resources"
        ]
    );
    Ok(())
}

// A cycle, as the docs describe it.
module! { pub struct A { imports: [B] } }
module! { pub struct B { imports: [C] } }
module! { pub struct C { imports: [A] } }

#[test]
fn an_import_cycle_fails_start_up_with_its_path() {
    let err = nestforge::NestForgeFactory::<A>::create().unwrap_err();
    assert_eq!(
        err.to_string(),
        "Detected module import cycle: A -> B -> C -> A"
    );
}
