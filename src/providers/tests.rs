//! Modules, providers of every kind, scopes, lifecycle hooks and the module graph's checks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::context::RequestId;
use crate::ws::AuthIdentity;
use crate::TestFactory;

struct Config(&'static str);
struct Users;
struct Audit;

crate::module! { struct ConfigModule { providers: [Config("edge")] } }
crate::module! { struct UsersModule { imports: [ConfigModule], providers: [Users] } }
crate::module! { struct AuditModule { imports: [ConfigModule], providers: [Audit] } }
crate::module! {
    struct AppModule { imports: [UsersModule, AuditModule, ConfigModule], providers: [] }
}

#[test]
fn a_module_imported_twice_registers_once() {
    let providers = AppModule::providers().unwrap();
    assert_eq!(providers.len(), 3);
    assert_eq!(providers.resolve::<Config>().unwrap().0, "edge");
}

crate::module! { struct OtherConfigModule { providers: [Config("other")] } }
crate::module! { struct ClashModule { imports: [ConfigModule, OtherConfigModule], providers: [] } }

#[test]
fn one_type_from_two_modules_names_both() {
    let err = ClashModule::providers().unwrap_err();
    assert!(matches!(err, Error::ProviderConflict { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("Type already registered: "), "{text}");
    assert!(
        text.contains("ConfigModule`") && text.contains("OtherConfigModule`"),
        "{text}"
    );
}

#[test]
fn one_type_twice_in_one_module_stays_a_duplicate() {
    crate::module! { struct Twice { providers: [1u8, 2u8] } }
    let err = Twice::providers().unwrap_err();
    assert!(
        matches!(err, Error::DuplicateProvider { type_name: "u8" }),
        "{err:?}"
    );
}

#[test]
fn an_import_cycle_is_reported_with_its_path() {
    struct A;
    struct B;
    impl Module for A {
        fn register(providers: &mut ProvidersBuilder) -> Result<()> {
            providers.import::<B>()?.provide(1u8)?;
            Ok(())
        }
    }
    impl Module for B {
        fn register(providers: &mut ProvidersBuilder) -> Result<()> {
            providers.import::<A>()?.provide(2u16)?;
            Ok(())
        }
    }
    let err = A::providers().unwrap_err();
    assert!(matches!(err, Error::ImportCycle { .. }), "{err:?}");
    assert_eq!(err.to_string(), "Detected module import cycle: A -> B -> A");
    // A longer loop, through module!.
    crate::module! { struct C { imports: [D], providers: [] } }
    crate::module! { struct D { imports: [E], providers: [] } }
    crate::module! { struct E { imports: [C], providers: [] } }
    assert_eq!(
        D::providers().unwrap_err().to_string(),
        "Detected module import cycle: D -> E -> C -> D"
    );
}

#[test]
fn exports_must_be_provided() {
    crate::module! { struct Exporting { providers: [Users], exports: [Users] } }
    assert!(Exporting::providers().is_ok());
    crate::module! { struct Missing { providers: [Users], exports: [Users, Audit] } }
    let err = Missing::providers().unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingExport {
                module: "Missing",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Module `Missing` exports nestforge_edge::providers::tests::Audit, which no module provides"
    );
    // An export provided by an import counts.
    crate::module! { struct ReExporting { imports: [Exporting], exports: [Users] } }
    assert!(ReExporting::providers().is_ok());
}

struct Greeter(String);

fn build_greeter(container: &Providers) -> Result<Greeter> {
    let config = container.resolve::<Config>()?;
    Ok(Greeter(format!("hello {}", config.0)))
}

fn build_greeter_anyhow(container: &Providers) -> anyhow::Result<Greeter> {
    let config = container.resolve::<Config>()?;
    anyhow::ensure!(!config.0.is_empty(), "no name");
    Ok(Greeter(format!("hi {}", config.0)))
}

fn load_count() -> anyhow::Result<u32> {
    Ok(7)
}

#[test]
fn factories_see_the_providers_registered_before_them_in_every_form() {
    // A fn item returning this crate's Result, one returning anyhow's, a closure written in
    // place, and an expression with `?` on an anyhow::Result.
    crate::module! {
        struct Forms {
            imports: [ConfigModule],
            providers: [
                Provider::factory(build_greeter),
                Provider::value(3u64),
                load_count()?,
                Provider::factory(|container| {
                    let greeter = container.resolve::<Greeter>()?;
                    Ok(greeter.0.len())
                }),
            ],
        }
    }
    let providers = Forms::providers().unwrap();
    assert_eq!(providers.resolve::<Greeter>().unwrap().0, "hello edge");
    assert_eq!(*providers.resolve::<usize>().unwrap(), "hello edge".len());
    assert_eq!(*providers.resolve::<u64>().unwrap(), 3);
    assert_eq!(*providers.resolve::<u32>().unwrap(), 7);
    crate::module! {
        struct AnyhowForm { imports: [ConfigModule], providers: [Provider::factory(build_greeter_anyhow)] }
    }
    assert_eq!(
        AnyhowForm::providers()
            .unwrap()
            .resolve::<Greeter>()
            .unwrap()
            .0,
        "hi edge"
    );
}

#[test]
fn a_failing_factory_fails_start_up_naming_its_type() {
    crate::module! {
        struct Failing {
            providers: [Provider::factory(|container| {
                container.resolve::<Config>()?;
                Ok(Users)
            })],
        }
    }
    let err = Failing::providers().unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "Failed to construct provider nestforge_edge::providers::tests::Users: \
         Type not registered: nestforge_edge::providers::tests::Config"
    );
}

/// Counts the instances made.
static MADE: AtomicUsize = AtomicUsize::new(0);

struct Session {
    request: String,
    user: Option<String>,
    serial: usize,
}

struct Stamp(usize);

crate::module! {
    struct ScopedModule {
        providers: [
            Provider::request_factory(|container| {
                let request = container.resolve::<RequestId>()?;
                let user = container.resolve::<AuthIdentity>().ok().map(|i| i.subject.clone());
                Ok(Session {
                    request: request.value().to_owned(),
                    user,
                    serial: MADE.fetch_add(1, Ordering::SeqCst),
                })
            }),
            Provider::transient_factory(|_container| Ok(Stamp(MADE.fetch_add(1, Ordering::SeqCst)))),
        ],
    }
}

#[test]
fn request_scoped_providers_are_one_per_context_and_transient_ones_new_each_time() {
    let module = TestFactory::<ScopedModule>::create().build().unwrap();
    let first = module.websocket_context_with(
        Some(RequestId::new("req-1")),
        Some(AuthIdentity::new("ada")),
        crate::ws::Headers::new(),
    );
    let second = module.websocket_context();
    let a = first.resolve::<Session>().unwrap();
    let b = first.resolve::<Session>().unwrap();
    assert!(Arc::ptr_eq(&a, &b), "one instance within a scope");
    assert_eq!(
        (a.request.as_str(), a.user.as_deref()),
        ("req-1", Some("ada"))
    );
    // A handler's context made from the connection shares its scope.
    let handler = first.microservice_context("p", Default::default());
    assert!(Arc::ptr_eq(&a, &handler.resolve::<Session>().unwrap()));
    // Another connection: another instance.
    let c = second.resolve::<Session>().unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_ne!(a.serial, c.serial);
    assert!(c.request.starts_with("req-test-") && c.user.is_none());
    // Transient: new every time, in a scope or not.
    let (x, y) = (
        first.resolve::<Stamp>().unwrap(),
        first.resolve::<Stamp>().unwrap(),
    );
    assert_ne!(x.0, y.0);
    assert!(module.resolve::<Stamp>().is_ok());
    // Request-scoped, outside a scope: an error that says so.
    let err = module.resolve::<Session>().err().unwrap();
    assert!(matches!(err, Error::RequestScopeRequired { .. }), "{err:?}");
    // Dropped with its connection.
    let weak = Arc::downgrade(&a);
    drop((a, b, handler, first));
    assert!(weak.upgrade().is_none(), "dropped with its scope");
}

#[test]
fn a_request_scoped_instance_holding_its_container_does_not_keep_its_scope_alive() {
    struct Holder(#[allow(dead_code)] Providers);
    crate::module! {
        struct Holding { providers: [Provider::request_factory(|container| Ok(Holder(container.clone())))] }
    }
    let module = TestFactory::<Holding>::create().build().unwrap();
    let ctx = module.websocket_context();
    let holder = Arc::downgrade(&ctx.resolve::<Holder>().unwrap());
    drop(ctx);
    assert!(holder.upgrade().is_none());
}

#[test]
fn a_module_may_provide_the_built_in_connections_itself() {
    crate::module! { struct Own { providers: [crate::Connections::default()] } }
    let module = TestFactory::<Own>::create().build().unwrap();
    assert!(module.resolve::<crate::Connections>().is_ok());
}

/// Lifecycle hooks record `module:phase` here.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(entry: &str) {
    LOG.lock().unwrap().push(entry.to_owned());
}

fn core_init(container: &Providers) -> Result<()> {
    container.resolve::<Config>()?;
    log("core:init");
    Ok(())
}
fn core_boot(_: &Providers) -> anyhow::Result<()> {
    log("core:bootstrap");
    Ok(())
}
fn core_destroy(_: &Providers) -> Result<()> {
    log("core:destroy");
    Ok(())
}
fn core_down(_: &Providers) -> anyhow::Result<()> {
    log("core:shutdown");
    Ok(())
}
fn app_init(_: &Providers) -> Result<()> {
    log("app:init");
    Ok(())
}
fn app_boot(_: &Providers) -> Result<()> {
    log("app:bootstrap");
    Ok(())
}
fn app_destroy(_: &Providers) -> std::result::Result<(), std::io::Error> {
    log("app:destroy");
    Err(std::io::Error::other("disk gone"))
}
fn app_down(_: &Providers) -> Result<()> {
    log("app:shutdown");
    Ok(())
}

crate::module! {
    struct CoreLife {
        providers: [Config("edge")],
        on_module_init: [core_init],
        on_application_bootstrap: [core_boot],
        on_module_destroy: [core_destroy],
        on_application_shutdown: [core_down],
    }
}
crate::module! {
    struct AppLife {
        imports: [CoreLife],
        on_module_init: [app_init],
        on_application_bootstrap: [app_boot],
        on_module_destroy: [app_destroy],
        on_application_shutdown: [app_down],
    }
}

#[test]
fn hooks_run_imports_first_and_in_reverse_at_shutdown() {
    LOG.lock().unwrap().clear();
    let module = TestFactory::<AppLife>::create().build().unwrap();
    assert_eq!(
        *LOG.lock().unwrap(),
        ["core:init", "app:init", "core:bootstrap", "app:bootstrap"]
    );
    // Every shutdown hook runs; the first failure is returned.
    let err = module.shutdown().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Lifecycle {
                module: "AppLife",
                hook: "app_destroy",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        format!("{err:#}"),
        "on_module_destroy hook `app_destroy` of module `AppLife` failed: disk gone"
    );
    assert_eq!(
        LOG.lock().unwrap()[4..],
        [
            "app:destroy",
            "core:destroy",
            "app:shutdown",
            "core:shutdown"
        ]
    );
    // Once.
    assert!(module.shutdown().is_ok());
    assert_eq!(LOG.lock().unwrap().len(), 8);
}

#[test]
fn a_failing_init_hook_fails_create_naming_its_module() {
    fn refuse(_: &Providers) -> anyhow::Result<()> {
        anyhow::bail!("no sensor")
    }
    crate::module! { struct Sensors { on_module_init: [refuse] } }
    crate::module! { struct App { imports: [Sensors] } }
    let err = crate::NestForgeFactory::<App>::create().unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "on_module_init hook `refuse` of module `Sensors` failed: no sensor"
    );
}
