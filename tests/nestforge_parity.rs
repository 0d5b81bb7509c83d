//! Code from NestForge 1.9's docs and tests, compiled against this crate. The NestForge code
//! (marked `// NestForge:` with its source) is as written there; only `use` lines differ, plus
//! the container set-up, which NestForge writes with its `#[module]` proc-macro or
//! `Container::register` and this crate with `module!`.
//!
//! The anyhow parts need no feature: anyhow converts its errors into `HandlerError` itself.
//! `bail!` directly in a handler body needs this crate's (feature `anyhow`), tested at the end.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use common::*;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use nestforge_edge as nestforge; // NestForge: the `nestforge` crate
use nestforge_edge::prelude::*;
use nestforge_edge::{ErrorCode, GuardResult, Rejection, Server, UpgradeRequest};
use serde::{Deserialize, Serialize};
use serde_json::json;

// ---- services returning anyhow::Result, as NestForge services do --------------------------

pub struct UsersService {
    users: Mutex<Vec<String>>,
}

impl UsersService {
    pub async fn count(&self) -> anyhow::Result<usize> {
        Ok(self.users.lock().unwrap().len())
    }

    pub async fn find(&self, id: usize) -> anyhow::Result<String> {
        let users = self.users.lock().unwrap();
        match users.get(id) {
            Some(name) => Ok(name.clone()),
            None => bail!("User {id} not found"),
        }
    }
}

#[derive(Default)]
pub struct AuditService {
    records: Mutex<Vec<u64>>,
}

impl AuditService {
    pub async fn record(&self, user_id: u64) -> anyhow::Result<()> {
        if user_id == 0 {
            bail!("user 0 is reserved");
        }
        self.records.lock().unwrap().push(user_id);
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
pub struct CreateUserEvent {
    pub user_id: u64,
}

pub struct AppConfig {
    pub app_name: String,
}

// ---- a shared module imported by two modules ----------------------------------------------

module! {
    /// NestForge: `#[module(providers = [AppConfig], exports = [AppConfig])]`.
    pub struct ConfigModule {
        providers: [AppConfig { app_name: "edge".into() }],
    }
}
module! {
    pub struct UsersModule {
        imports: [ConfigModule],
        providers: [UsersService { users: Mutex::new(vec!["ada".into(), "grace".into()]) }],
    }
}
module! {
    pub struct AuditModule {
        imports: [ConfigModule],
        providers: [AuditService::default()],
    }
}
module! {
    pub struct AppModule {
        imports: [UsersModule, AuditModule],
        providers: [],
    }
}

#[test]
fn a_shared_module_imported_twice_registers_once() -> nestforge::Result<()> {
    let providers = AppModule::providers()?;
    assert_eq!(providers.resolve::<AppConfig>()?.app_name, "edge");
    assert!(NestForgeFactory::<AppModule>::create().is_ok());

    module! { pub struct OtherConfigModule { providers: [AppConfig { app_name: "x".into() }] } }
    module! { pub struct Clash { imports: [ConfigModule, OtherConfigModule], providers: [] } }
    let err = Clash::providers().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`nestforge_parity::ConfigModule`") && text.contains("OtherConfigModule`"),
        "{text}"
    );
    Ok(())
}

// ---- the registry of NestForge's docs/microservices.md ------------------------------------

fn registry() -> MicroserviceRegistry {
    // NestForge: docs/microservices.md, "Registry"
    let registry = nestforge::MicroserviceRegistry::builder()
        .message("users.count", |_payload: (), ctx| async move {
            let service = ctx.resolve::<UsersService>()?;
            Ok(service.count().await?)
        })
        .event(
            "users.created",
            |payload: CreateUserEvent, ctx| async move {
                let audit = ctx.resolve::<AuditService>()?;
                audit.record(payload.user_id).await?;
                Ok(())
            },
        )
        // end NestForge
        .message("users.find", |id: usize, ctx| async move {
            let service = ctx.resolve::<UsersService>()?;
            Ok(service.find(id).await?)
        })
        .message("admin.stats", |_payload: (), ctx| async move {
            let identity = ctx.auth_identity().cloned().unwrap_or_default();
            identity.require_role("admin")?;
            Ok(json!({
                "subject": identity.subject,
                "tenant": identity.claims.get("tenant"),
                "transport": ctx.transport(),
            }))
        })
        .build();
    registry
}

// ---- auth: claims and require_role ---------------------------------------------------------

#[test]
fn claims_and_require_role() {
    // NestForge: crates/nestforge-core/src/auth.rs
    let identity = nestforge::AuthIdentity::new("user-123")
        .with_roles(["admin"])
        .with_claim("tenant", json!("acme"));
    assert!(identity.has_role("admin"));
    assert!(identity.require_role("admin").is_ok());
    assert_eq!(identity.claims.get("tenant"), Some(&json!("acme")));
    let err = identity.require_role("root").unwrap_err();
    assert_eq!(err.to_string(), "Missing required role `root`");
    assert_eq!(err.status(), 403);
}

/// The upgrade guard: a token names the subject; `admin-*` tokens get the admin role and
/// a tenant claim; only identities with the `device` or `admin` role may connect.
fn guard(req: &UpgradeRequest) -> impl std::future::Future<Output = GuardResult> + Send {
    let token = req.token().map(str::to_owned);
    async move {
        let token = token.ok_or(Rejection::new(401, "token required"))?;
        let role = if token.starts_with("admin-") {
            "admin"
        } else {
            "device"
        };
        let role = if token == "guest" { "guest" } else { role };
        let identity = AuthIdentity::new(token)
            .with_roles([role])
            .with_claim("tenant", "acme");
        if identity.require_role("device").is_err() {
            identity.require_role("admin")?;
        }
        Ok(Some(identity))
    }
}

// ---- a closure gateway serving the registry, NestForge's example loop ----------------------

fn workflow_server() -> Server {
    let config = WebSocketConfig::new("/ws").guard(guard);
    NestForgeFactory::<AppModule>::create()
        .unwrap()
        // NestForge: websocket_router(|ctx, socket| async move { .. }), with the loop of
        // examples/hello-nestforge-websockets/src/ws/events_gateway.rs
        .with_websocket_gateway_config(
            |ctx: WebSocketContext, mut socket: WebSocket| async move {
                let registry = registry();
                while let Some(Ok(message)) = socket.recv().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                    match handle_websocket_microservice_message(&ctx, &registry, message).await {
                        Ok(Some(response)) => {
                            let _ = socket.send(response).await;
                        }
                        Ok(None) => {}
                        Err(err) => {
                            let _ = socket
                                .send(Message::Text(format!("error:{err}").into()))
                                .await;
                        }
                    }
                }
            },
            config,
        )
        .into_server()
        .unwrap()
}

#[test]
fn closure_gateway_serves_anyhow_handlers_bail_text_and_roles() {
    let running = spawn(workflow_server());
    smol::block_on(within(20, async {
        let mut ws = connect(running.addr, "/ws?access_token=admin-1").await;
        send_text(
            &mut ws,
            r#"{"kind":"message","pattern":"users.count","payload":null}"#,
        )
        .await;
        assert_eq!(
            next_text(&mut ws).await,
            r#"{"pattern":"users.count","payload":2,"metadata":{"values":{}}}"#
        );
        // anyhow's `bail!` in a service reaches the caller with its text.
        send_text(
            &mut ws,
            r#"{"kind":"message","pattern":"users.find","payload":7}"#,
        )
        .await;
        assert_eq!(next_text(&mut ws).await, "error:User 7 not found");
        send_text(
            &mut ws,
            r#"{"kind":"message","pattern":"users.find","payload":1}"#,
        )
        .await;
        assert!(next_text(&mut ws).await.contains(r#""payload":"grace""#));
        // an event whose service bails: NestForge's text too.
        send_text(
            &mut ws,
            r#"{"kind":"event","pattern":"users.created","payload":{"user_id":0}}"#,
        )
        .await;
        assert_eq!(next_text(&mut ws).await, "error:user 0 is reserved");
        send_text(
            &mut ws,
            r#"{"kind":"message","pattern":"admin.stats","payload":null}"#,
        )
        .await;
        assert_eq!(
            next_text(&mut ws).await,
            r#"{"pattern":"admin.stats","payload":{"subject":"admin-1","tenant":"acme","transport":"websocket"},"metadata":{"values":{}}}"#
        );

        let mut device = connect(running.addr, "/ws?access_token=sensor-9").await;
        send_text(
            &mut device,
            r#"{"kind":"message","pattern":"admin.stats","payload":null}"#,
        )
        .await;
        assert_eq!(
            next_text(&mut device).await,
            "error:Missing required role `admin`"
        );
        device.close(None).await.unwrap();
        ws.close(None).await.unwrap();
    }));
    // `require_role` in the guard: a 403 before the upgrade.
    let answer = http(running.addr, &upgrade_head("/ws?access_token=guest"));
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let served = running.server.stats();
    assert_eq!(served.rejected_upgrades, 1, "{served:?}");
    running.stop();
}

#[test]
fn forbidden_in_a_handler_is_a_forbidden_error_frame() {
    let registry = registry();
    let ctx = WebSocketContext::detached(Providers::default());
    let frame =
        Message::Text(r#"{"kind":"message","pattern":"admin.stats","payload":null}"#.into());
    let err = smol::block_on(handle_websocket_microservice_message(
        &ctx, &registry, frame,
    ))
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(
        err.to_json().contains(r#""code":"forbidden""#),
        "{}",
        err.to_json()
    );
}

// ---- a gateway on the split socket (axum's `Stream`/`Sink`), the sender in its own task ----

fn split_server(config: WebSocketConfig) -> Server {
    NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway_config(
            // NestForge (axum): the socket split, the sender half moved into its own task
            // (`tokio::spawn` there, `smol::spawn` here: the halves are `Send`).
            |ctx: WebSocketContext, socket: WebSocket| async move {
                let (mut sender, mut receiver) = socket.split();
                let (mut tx, mut rx) = mpsc::channel::<Message>(16);
                let send_task = smol::spawn(async move {
                    while let Some(message) = rx.next().await {
                        if sender.send(message).await.is_err() {
                            break;
                        }
                    }
                });
                if let Some(request_id) = ctx.request_id() {
                    let _ = tx
                        .send(Message::Text(
                            format!("connected:{}", request_id.value()).into(),
                        ))
                        .await;
                }
                while let Some(Ok(message)) = receiver.next().await {
                    match message {
                        Message::Text(text) => {
                            let echo = Message::Text(format!("echo:{text}").into());
                            if tx.send(echo).await.is_err() {
                                break;
                            }
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
                drop(tx);
                send_task.await;
            },
            config,
        )
        .into_server()
        .unwrap()
}

#[test]
fn split_gateway_with_the_sender_in_another_task_serves_a_connection() {
    let running = spawn(split_server(WebSocketConfig::new("/ws")));
    smol::block_on(within(20, async {
        let mut ws = connect(running.addr, "/ws").await;
        assert!(next_text(&mut ws).await.starts_with("connected:req-"));
        for i in 0..20 {
            send_text(&mut ws, &format!("m{i}")).await;
        }
        for i in 0..20 {
            assert_eq!(next_text(&mut ws).await, format!("echo:m{i}"));
        }
        ws.close(None).await.unwrap();
        // The server answers the close and ends the connection.
        while let Some(Ok(_)) = futures::StreamExt::next(&mut ws).await {}
    }));
    running.stop();
}

#[test]
fn a_sink_sending_to_a_peer_that_never_reads_hits_the_send_timeout() {
    let outcome: Arc<Mutex<Option<(usize, Duration, String)>>> = Arc::default();
    let seen = Arc::clone(&outcome);
    let config = WebSocketConfig::new("/ws")
        .max_write_buffer_size(64 * 1024)
        .send_timeout(Duration::from_millis(300))
        .ping_interval(None);
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway_config(
            move |_ctx: WebSocketContext, socket: WebSocket| {
                let seen = Arc::clone(&seen);
                async move {
                    let (mut sender, mut receiver) = socket.split();
                    // Another task on the same thread.
                    let tasks = async_executor::Executor::new();
                    tasks
                        .run(async {
                            let sending = tasks.spawn(async move {
                                let started = Instant::now();
                                let chunk = Message::Binary(vec![7u8; 4096].into());
                                let mut sent = 0;
                                let err = loop {
                                    match sender.send(chunk.clone()).await {
                                        Ok(()) => sent += 1,
                                        Err(e) => break e,
                                    }
                                };
                                *seen.lock().unwrap() =
                                    Some((sent, started.elapsed(), err.to_string()));
                            });
                            while let Some(Ok(_)) = receiver.next().await {}
                            sending.await;
                        })
                        .await;
                }
            },
            config,
        )
        .into_server()
        .unwrap();
    let running = spawn(server);
    // Upgrades, then never reads.
    let client = raw_upgrade(running.addr, "/ws");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (sent, after, err) = loop {
        if let Some(outcome) = outcome.lock().unwrap().clone() {
            break outcome;
        }
        assert!(Instant::now() < deadline, "the sender never gave up");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Bounded: what the kernel's socket buffers and the 64 KiB write buffer hold, no more.
    assert!(sent * 4096 < 16 * 1024 * 1024, "{sent} messages accepted");
    assert!(after < Duration::from_secs(5), "gave up after {after:?}");
    assert!(
        err.contains("timed out") || err.contains("Timed out"),
        "{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.server.stats().closes_with(1008) != 1 {
        assert!(Instant::now() < deadline, "{:?}", running.server.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client);
    running.stop();
}

// ---- envelopes and the in-process client ---------------------------------------------------

#[derive(Clone)]
struct Counter(Arc<AtomicUsize>);

#[test]
fn envelope_dispatch_for_a_message_and_an_event() -> anyhow::Result<()> {
    smol::block_on(async {
        let registry = registry();
        let container = AppModule::providers()?;
        // NestForge: docs/microservices.md, "Dispatch"
        let envelope = nestforge::MessageEnvelope::new("users.count", ())?;
        let ctx = nestforge::MicroserviceContext::new(
            container.clone(),
            "grpc",
            "users.count",
            nestforge::TransportMetadata::new(),
        );

        let response = registry.dispatch_message(envelope, ctx).await?;
        // end NestForge
        assert_eq!(response, json!(2));

        let envelope = nestforge::EventEnvelope::new("users.created", json!({ "user_id": 5 }))?;
        let ctx = nestforge::MicroserviceContext::new(
            container.clone(),
            "test",
            "users.created",
            nestforge::TransportMetadata::new(),
        );
        registry.dispatch_event(envelope, ctx).await?;
        let audit = container.resolve::<AuditService>()?;
        assert_eq!(*audit.records.lock().unwrap(), vec![5]);

        // Unknown patterns and bad payloads are this crate's errors, with their codes.
        let ctx =
            || MicroserviceContext::new(container.clone(), "test", "x", TransportMetadata::new());
        let err = registry
            .dispatch_message(MessageEnvelope::new("nope", ())?, ctx())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownPattern);
        assert_eq!(err.to_string(), "No message handler registered for `nope`");
        let err = registry
            .dispatch_event(EventEnvelope::new("users.created", "not an object")?, ctx())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadPayload);
        assert_eq!(err.to_string(), "Failed to deserialize event payload");
        // A service's `bail!` through an envelope: the text, the handler_error code.
        let err = registry
            .dispatch_message(MessageEnvelope::new("users.find", 9)?, ctx())
            .await
            .unwrap_err();
        assert_eq!(
            (err.to_string(), err.code()),
            ("User 9 not found".into(), ErrorCode::HandlerError)
        );
        Ok(())
    })
}

#[test]
fn in_process_client_sends_and_emits() {
    smol::block_on(async {
        // NestForge: crates/nestforge/tests/microservices_registry.rs (the container is
        // `Providers` here: empty, as `Container::new()` is there)
        let container = Providers::default();
        let registry = nestforge::MicroserviceRegistry::builder()
            .message(
                "users.count",
                |_payload: (), _ctx| async move { Ok(42usize) },
            )
            .build();
        let client = nestforge::InProcessMicroserviceClient::new(container, registry)
            .with_transport("test-client");

        let response: usize = client
            .send("users.count", ())
            .await
            .expect("response should deserialize");

        assert_eq!(response, 42);

        let counter = Arc::new(AtomicUsize::new(0));
        let registry = nestforge::MicroserviceRegistry::builder()
            .event("users.created", {
                let counter = Arc::clone(&counter);
                move |_payload: (), _ctx| {
                    let counter = Arc::clone(&counter);
                    async move {
                        counter.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                }
            })
            .build();
        let client = nestforge::InProcessMicroserviceClient::new(Providers::default(), registry);

        client
            .emit("users.created", ())
            .await
            .expect("event should dispatch");

        assert_eq!(counter.load(Ordering::Relaxed), 1);
        // end NestForge
    });
}

#[test]
fn the_client_handler_sees_the_transport_metadata_and_providers() {
    let registry = MicroserviceRegistry::builder()
        .message("whoami", |_: (), ctx| async move {
            let config = ctx.resolve::<AppConfig>()?;
            Ok(json!({
                "transport": ctx.transport(),
                "pattern": ctx.pattern(),
                "trace": ctx.metadata().get("trace"),
                "app": config.app_name,
            }))
        })
        .message("count", |_: (), ctx| async move {
            Ok(ctx.resolve::<Counter>()?.0.fetch_add(1, Ordering::Relaxed))
        })
        .build();
    let mut providers = Providers::builder();
    providers
        .provide(AppConfig {
            app_name: "edge".into(),
        })
        .unwrap()
        .provide(Counter(Arc::default()))
        .unwrap();
    let client = InProcessMicroserviceClient::new(providers.build(), registry)
        .with_transport("in-proc-test")
        .with_metadata(TransportMetadata::new().insert("trace", "t-1"));
    // The futures are `Send`: they may run on another thread.
    let reply = std::thread::spawn({
        let client = client.clone();
        move || smol::block_on(client.send::<_, serde_json::Value>("whoami", ()))
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(
        reply,
        json!({"transport": "in-proc-test", "pattern": "whoami", "trace": "t-1", "app": "edge"})
    );
    // `send` decodes the reply into `R`, or says it could not.
    let n: u64 = smol::block_on(client.send("count", ())).unwrap();
    assert_eq!(n, 0);
    let err = smol::block_on(client.send::<_, String>("count", ())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Failed to deserialize microservice response"
    );
    let err = smol::block_on(client.emit("count", ())).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownPattern);
}

// ---- `bail!`/`ensure!` directly in a handler body (feature `anyhow`) -----------------------

/// NestForge handlers may `bail!` in their own body; with `use nestforge_edge::{bail,
/// ensure};` instead of `use anyhow::{bail, ensure};` the same lines compile here.
#[cfg(feature = "anyhow")]
#[test]
fn bail_and_ensure_in_a_handler_body_reach_the_caller_with_their_text() {
    use nestforge_edge::{bail, ensure}; // NestForge: use anyhow::{bail, ensure};

    let registry = MicroserviceRegistry::builder()
        .message("users.get", |id: u32, ctx| async move {
            let service = ctx.resolve::<UsersService>()?;
            ensure!(id < 1000, "id {} out of range", id);
            if id == 0 {
                bail!("User {id} not found");
            }
            Ok(service.find(id as usize).await?)
        })
        .build();
    let ctx = WebSocketContext::detached(AppModule::providers().unwrap());
    let text = |frame: &str| {
        let message = Message::Text(frame.to_owned().into());
        match smol::block_on(handle_websocket_microservice_message(
            &ctx, &registry, message,
        )) {
            Ok(reply) => reply.unwrap().into_text().unwrap().to_string(),
            Err(err) => format!("error:{err}"),
        }
    };
    assert_eq!(
        text(r#"{"kind":"message","pattern":"users.get","payload":0}"#),
        "error:User 0 not found"
    );
    assert_eq!(
        text(r#"{"kind":"message","pattern":"users.get","payload":5000}"#),
        "error:id 5000 out of range"
    );
    assert_eq!(
        text(r#"{"kind":"message","pattern":"users.get","payload":1}"#),
        r#"{"pattern":"users.get","payload":"grace","metadata":{"values":{}}}"#
    );
}
