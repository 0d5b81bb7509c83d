//! The NestForge workflow end to end over loopback: upgrade, banner, dispatch, replies,
//! every error path, wire fixtures in both directions, plain-HTTP answers, endpoints and
//! executors.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_tungstenite::tungstenite::Message as ClientMessage;
use common::*;
use futures_lite::StreamExt;
use nestforge_edge::prelude::*;
use nestforge_edge::{ErrorCode, Kind, Server};
use serde::{Deserialize, Serialize};

// ---- the app: NestForge's example itself, and a second gateway for the other paths --------

#[allow(dead_code)] // its `main`
#[path = "../examples/events_gateway.rs"]
mod events_gateway;

use events_gateway::EventsGateway;

struct Missing;

/// The patterns of the other paths (typed payloads and replies, handler errors, a missing
/// provider, what a handler's context carries), served on `/json`.
struct TestPatterns(MicroserviceRegistry);

#[derive(Deserialize)]
struct Greet {
    name: String,
}

#[derive(Serialize)]
struct Greeting {
    greeting: String,
}

static PINGS: AtomicUsize = AtomicUsize::new(0);

fn build_test_patterns() -> TestPatterns {
    let registry = MicroserviceRegistry::builder()
        .event("app.ping", |_payload: serde_json::Value, _ctx| async move {
            PINGS.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .message("app.greet", |p: Greet, _ctx| async move {
            Ok(Greeting {
                greeting: format!("hello {}", p.name),
            })
        })
        .message("app.boom", |_: (), _ctx| async move {
            Err::<(), _>("boom".into())
        })
        .message("app.missing", |_: (), ctx| async move {
            ctx.resolve::<Missing>()?;
            Ok(())
        })
        .message("app.context", |_: (), ctx| async move {
            Ok(serde_json::json!({
                "pattern": ctx.pattern(),
                "trace": ctx.metadata().get("trace"),
                "request_id_prefix": ctx.request_id().map(|id| id.value().starts_with("req-")),
                "connection": ctx.websocket().connection_id() > 0,
            }))
        })
        .build();
    TestPatterns(registry)
}

/// The test patterns behind JSON error frames (`Error::to_message`).
struct JsonGateway;

impl WebSocketGateway for JsonGateway {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let patterns = ctx.resolve::<TestPatterns>().unwrap();
            while let Some(Ok(message)) = socket.recv().await {
                match handle_websocket_microservice_message(&ctx, &patterns.0, message).await {
                    Ok(Some(reply)) => drop(socket.send(reply).await),
                    Ok(None) => {}
                    Err(err) => drop(socket.send(err.to_message()).await),
                }
            }
        })
    }
}

module! {
    pub struct AppModule {
        imports: [events_gateway::AppModule],
        providers: [build_test_patterns()],
    }
}

fn server() -> Server {
    NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway(EventsGateway)
        .with_websocket_gateway_config(JsonGateway, WebSocketConfig::new("json"))
        .into_server()
        .unwrap()
}

const BANNER_FRAME: &str =
    r#"{"kind":"message","pattern":"app.info","payload":null,"metadata":{}}"#;
const INFO_REPLY: &str = r#"{"pattern":"app.info","payload":{"app_name":"NestForge WebSockets","transport":"websocket"},"metadata":{"values":{}}}"#;

// ---- the four checks of NestForge's workflow page -----------------------------------------

#[test]
fn workflow_upgrade_banner_dispatch_reply() {
    let running = spawn(server());
    // 1. the socket upgrades (with an x-request-id)
    let mut s = raw(running.addr);
    s.write_all(upgrade_head("/ws").as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(head.contains("x-request-id: req-"), "{head}");
    // 2. the connect message arrives
    let (op, banner) = read_frame(&mut s).unwrap();
    assert_eq!(op, 1);
    assert_eq!(
        String::from_utf8(banner).unwrap(),
        format!("connected:NestForge WebSockets; send {BANNER_FRAME}")
    );
    // 3. the frame the banner suggests, verbatim, reaches the registry; 4. a reply returns
    s.write_all(&frame(true, 1, BANNER_FRAME.as_bytes()))
        .unwrap();
    let (op, reply) = read_frame(&mut s).unwrap();
    assert_eq!(
        (op, String::from_utf8(reply).unwrap().as_str()),
        (1, INFO_REPLY)
    );
    // clean close: our Close 1000 is answered with 1000
    s.write_all(&frame(true, 8, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(read_close_code(&mut s), Some(1000));
    running.stop();
}

#[test]
fn nestforge_wire_fixtures_both_directions() {
    let running = spawn(server());
    smol::block_on(within(10, async {
        let mut ws = connect(running.addr, "/ws").await;
        next_text(&mut ws).await; // banner
        let cases = [
            // NestForge's own frame shape (values sorted in the echo)
            (
                r#"{"kind":"message","pattern":"app.info","payload":null,"metadata":{"values":{"z":"1","a":"2"}}}"#,
                r#"{"pattern":"app.info","payload":{"app_name":"NestForge WebSockets","transport":"websocket"},"metadata":{"values":{"a":"2","z":"1"}}}"#,
            ),
            (
                r#"{"kind":"message","pattern":"app.info","payload":null}"#,
                INFO_REPLY,
            ),
            // metadata null, payload absent, numeric and string ids
            (
                r#"{"kind":"message","pattern":"app.info","metadata":null,"id":7}"#,
                r#"{"id":7,"pattern":"app.info","payload":{"app_name":"NestForge WebSockets","transport":"websocket"},"metadata":{"values":{}}}"#,
            ),
            // serde's positional form, as NestForge accepts it
            (r#"["message","app.info",null]"#, INFO_REPLY),
        ];
        for (request, reply) in cases {
            send_text(&mut ws, request).await;
            assert_eq!(next_text(&mut ws).await, reply, "{request}");
        }
        // a Binary request gets a Text reply
        ws.send(ClientMessage::Binary(
            BANNER_FRAME.as_bytes().to_vec().into(),
        ))
        .await
        .unwrap();
        assert_eq!(next_text(&mut ws).await, INFO_REPLY);
        // an event gets no reply: the next frame is the following message's reply
        send_text(
            &mut ws,
            r#"{"kind":"event","pattern":"app.ping","payload":{"x":1}}"#,
        )
        .await;
        send_text(&mut ws, BANNER_FRAME).await;
        assert_eq!(next_text(&mut ws).await, INFO_REPLY);
        // Typed payloads and replies, what a handler's context carries, events reaching
        // their handler: the test patterns.
        let mut ws = connect(running.addr, "/json").await;
        let cases = [
            (
                r#"{"id":"r-1","kind":"message","pattern":"app.greet","payload":{"name":"edge"}}"#,
                r#"{"id":"r-1","pattern":"app.greet","payload":{"greeting":"hello edge"},"metadata":{"values":{}}}"#,
            ),
            (
                r#"{"kind":"message","pattern":"app.context","payload":null,"metadata":{"values":{"trace":"t1"}}}"#,
                r#"{"pattern":"app.context","payload":{"connection":true,"pattern":"app.context","request_id_prefix":true,"trace":"t1"},"metadata":{"values":{"trace":"t1"}}}"#,
            ),
        ];
        for (request, reply) in cases {
            send_text(&mut ws, request).await;
            assert_eq!(next_text(&mut ws).await, reply, "{request}");
        }
        let before = PINGS.load(Ordering::SeqCst);
        send_text(
            &mut ws,
            r#"{"kind":"event","pattern":"app.ping","payload":{"x":1}}"#,
        )
        .await;
        send_text(&mut ws, cases[0].0).await;
        assert_eq!(next_text(&mut ws).await, cases[0].1);
        assert!(PINGS.load(Ordering::SeqCst) > before);
    }));
}

#[test]
fn nestforge_error_texts() {
    let running = spawn(server());
    smol::block_on(within(10, async {
        let mut ws = connect(running.addr, "/ws").await;
        next_text(&mut ws).await;
        let cases = [
            (r#"{"kind":"message","pattern":"nope","payload":null}"#, "error:No message handler registered for `nope`"),
            (r#"{"kind":"event","pattern":"nope","payload":null}"#, "error:No event handler registered for `nope`"),
            (r#"{"kind":"event","pattern":"app.info","payload":null}"#, "error:No event handler registered for `app.info`"),
            (r#"{"kind":"message","pattern":"app.info","payload":{}}"#, "error:Failed to deserialize message payload"),
            ("hello", "error:expected value at line 1 column 1"),
            ("", "error:EOF while parsing a value at line 1 column 0"),
            (r#"{"kind":"Message","pattern":"p","payload":null}"#, "error:unknown variant `Message`, expected `message` or `event` at line 1 column 17"),
            (r#"{"pattern":"p","payload":null}"#, "error:missing field `kind` at line 1 column 30"),
            (r#"{"kind":"message","kind":"event"}"#, "error:duplicate field `kind` at line 1 column 24"),
            (r#"{"kind":"message","pattern":"app.info","payload":null,"metadata":{"values":{"k":1}}}"#, "error:invalid type: integer `1`, expected a string at line 1 column 81"),
        ];
        for (request, reply) in cases {
            send_text(&mut ws, request).await;
            assert_eq!(next_text(&mut ws).await, reply, "{request}");
        }
        // non-UTF-8 binary
        ws.send(ClientMessage::Binary(vec![0xff, 0xfe].into()))
            .await
            .unwrap();
        assert_eq!(
            next_text(&mut ws).await,
            "error:expected value at line 1 column 1"
        );
        // a ping is answered by a pong and produces no error frame (NestForge sends one)
        ws.send(ClientMessage::Ping(vec![1, 2].into()))
            .await
            .unwrap();
        match within(5, ws.next()).await {
            Some(Ok(ClientMessage::Pong(p))) => assert_eq!(&p[..], &[1, 2]),
            other => panic!("expected a pong, got {other:?}"),
        }
        send_text(&mut ws, BANNER_FRAME).await;
        assert_eq!(next_text(&mut ws).await, INFO_REPLY);
    }));
}

#[test]
fn json_error_frames_with_codes_and_ids() {
    let running = spawn(server());
    smol::block_on(within(10, async {
        let mut ws = connect(running.addr, "/json").await;
        let cases = [
            (
                r#"{"kind":"message","pattern":"nope","id":1}"#,
                r#"{"id":1,"pattern":"nope","error":{"code":"unknown_pattern","message":"No message handler registered for `nope`"}}"#,
            ),
            (
                r#"{"kind":"message","pattern":"app.greet","payload":{},"id":"g"}"#,
                r#"{"id":"g","pattern":"app.greet","error":{"code":"bad_payload","message":"Failed to deserialize message payload","detail":"missing field `name` at line 1 column 2"}}"#,
            ),
            (
                r#"{"kind":"message","pattern":"app.boom","id":3}"#,
                r#"{"id":3,"pattern":"app.boom","error":{"code":"handler_error","message":"boom"}}"#,
            ),
            (
                r#"{"kind":"message","pattern":"app.missing","id":4}"#,
                r#"{"id":4,"pattern":"app.missing","error":{"code":"provider_missing","message":"Type not registered: gateway::Missing"}}"#,
            ),
            (
                "{",
                r#"{"error":{"code":"bad_frame","message":"EOF while parsing an object at line 1 column 1"}}"#,
            ),
            (
                r#"{"kind":"message","pattern":"p","id":{}}"#,
                r#"{"error":{"code":"bad_frame","message":"`id` must be a number or a string"}}"#,
            ),
        ];
        for (request, reply) in cases {
            send_text(&mut ws, request).await;
            assert_eq!(next_text(&mut ws).await, reply, "{request}");
        }
    }));
}

#[test]
fn requests_with_ids_get_matchable_error_frames_from_the_nestforge_gateway() {
    let running = spawn(server());
    smol::block_on(within(10, async {
        let mut ws = connect(running.addr, "/ws").await;
        next_text(&mut ws).await;
        let cases = [
            (
                r#"{"kind":"message","pattern":"nope","payload":null,"id":7}"#,
                r#"{"id":7,"pattern":"nope","error":{"code":"unknown_pattern","message":"No message handler registered for `nope`"}}"#,
            ),
            (
                r#"{"kind":"event","pattern":"nope","id":"e-1"}"#,
                r#"{"id":"e-1","pattern":"nope","error":{"code":"unknown_pattern","message":"No event handler registered for `nope`"}}"#,
            ),
            (
                r#"{"kind":"message","pattern":"app.info","payload":1,"id":8}"#,
                r#"{"id":8,"pattern":"app.info","error":{"code":"bad_payload","message":"Failed to deserialize message payload","detail":"invalid type: integer `1`, expected unit at line 1 column 1"}}"#,
            ),
            // A frame that does not decode, but whose id can be read.
            (
                r#"{"pattern":"p","id":9}"#,
                r#"{"id":9,"error":{"code":"bad_frame","message":"missing field `kind` at line 1 column 22"}}"#,
            ),
            // An id that cannot be echoed: NestForge's text.
            (
                r#"{"kind":"message","pattern":"p","id":[1]}"#,
                "error:`id` must be a number or a string",
            ),
        ];
        for (request, reply) in cases {
            send_text(&mut ws, request).await;
            assert_eq!(next_text(&mut ws).await, reply, "{request}");
        }
        // Sixty interleaved requests, half failing, each answer matched by its id.
        for id in 0..60 {
            let pattern = if id % 2 == 0 { "app.info" } else { "nope" };
            let frame = format!(r#"{{"kind":"message","pattern":"{pattern}","id":{id}}}"#);
            send_text(&mut ws, &frame).await;
        }
        for id in 0..60 {
            let reply: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
            assert_eq!(reply["id"], id);
            assert_eq!(reply.get("error").is_some(), id % 2 == 1, "{reply}");
        }
    }));
}

#[test]
fn the_error_observer_sees_every_failure() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&failures);
    let registry = MicroserviceRegistry::builder()
        .message("ok", |_: (), _| async { Ok(1) })
        .on_error(move |err, _ctx| seen.lock().unwrap().push(err.code()))
        .build();
    let ctx = WebSocketContext::detached(Providers::default());
    let run = |text: &str| {
        futures_lite::future::block_on(handle_websocket_microservice_message(
            &ctx,
            &registry,
            Message::Text(text.into()),
        ))
    };
    assert!(run(r#"{"kind":"message","pattern":"ok"}"#).is_ok());
    assert!(run(r#"{"kind":"message","pattern":"no"}"#).is_err());
    assert!(run(r#"{"kind":"message","pattern":"no","id":1}"#)
        .unwrap()
        .is_some());
    assert!(run("{").is_err());
    assert_eq!(
        *failures.lock().unwrap(),
        [
            ErrorCode::UnknownPattern,
            ErrorCode::UnknownPattern,
            ErrorCode::BadFrame
        ]
    );
}

#[test]
fn dispatch_errors_are_matchable() {
    let providers = AppModule::providers().unwrap();
    let patterns = providers.resolve::<TestPatterns>().unwrap();
    let ctx = WebSocketContext::detached(providers);
    let run = |text: &str| {
        futures_lite::future::block_on(handle_websocket_microservice_message(
            &ctx,
            &patterns.0,
            Message::Text(text.into()),
        ))
    };
    // What the NestForge gateway sends for a handler's error, and for a provider missing.
    for (request, text) in [
        (
            r#"{"kind":"message","pattern":"app.boom","payload":null}"#,
            "error:boom",
        ),
        (
            r#"{"kind":"message","pattern":"app.missing","payload":null}"#,
            "error:Type not registered: gateway::Missing",
        ),
    ] {
        let err = run(request).unwrap_err();
        assert_eq!(format!("error:{err}"), text);
    }
    // Without an id: the error, matchable by variant and code.
    let err = run(r#"{"kind":"event","pattern":"x"}"#).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPattern { kind: Kind::Event, request } if &*request.pattern == "x")
    );
    assert_eq!(err.code(), ErrorCode::UnknownPattern);
    // With an id: answered with the error frame that carries it.
    let reply = run(r#"{"kind":"event","pattern":"x","id":5}"#)
        .unwrap()
        .unwrap();
    assert_eq!(
        reply.to_text().unwrap(),
        r#"{"id":5,"pattern":"x","error":{"code":"unknown_pattern","message":"No event handler registered for `x`"}}"#
    );
    let err = run(r#"{"kind":"message","pattern":"app.greet","payload":1}"#).unwrap_err();
    assert_eq!(format!("{err:#}"), "Failed to deserialize message payload: invalid type: integer `1`, expected struct Greet at line 1 column 1");
    assert!(std::error::Error::source(&err).is_some());
    for frame in [
        Message::Ping(vec![1].into()),
        Message::Pong(vec![].into()),
        Message::Close(None),
    ] {
        let reply = futures_lite::future::block_on(handle_websocket_microservice_message(
            &ctx,
            &patterns.0,
            frame,
        ));
        assert!(matches!(reply, Ok(None)));
    }
}

// ---- plain HTTP answers ------------------------------------------------------------------

#[test]
fn plain_http_answers() {
    let running = spawn(server());
    let a = running.addr;
    let cases = [
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 426 Upgrade Required\r\n",
        ),
        (
            "GET /other HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\n",
        ),
        (
            "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed\r\n",
        ),
        ("NOT HTTP AT ALL\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
    ];
    for (request, status) in cases {
        let answer = http(a, request);
        assert!(answer.starts_with(status), "{request:?} -> {answer}");
        assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    }
    assert!(http(a, "GET /ws HTTP/1.1\r\n\r\n").contains("Sec-WebSocket-Version: 13\r\n"));
    assert!(http(a, "DELETE /ws HTTP/1.1\r\n\r\n").contains("Allow: GET\r\n"));
    let bad_key = upgrade_head("/ws").replace("dGhlIHNhbXBsZSBub25jZQ==", "nope");
    assert!(http(a, &bad_key).starts_with("HTTP/1.1 400 "));
    let old = upgrade_head("/ws").replace("Version: 13", "Version: 8");
    assert!(http(a, &old).starts_with("HTTP/1.1 426 "));
}

#[test]
fn bytes_after_the_head_are_not_lost() {
    let running = spawn(server());
    let mut s = raw(running.addr);
    let mut burst = upgrade_head("/json").into_bytes();
    burst.extend(frame(
        true,
        1,
        br#"{"kind":"message","pattern":"app.info","id":1}"#,
    ));
    s.write_all(&burst).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    let (_, reply) = read_frame(&mut s).unwrap();
    assert!(String::from_utf8(reply)
        .unwrap()
        .starts_with(r#"{"id":1,"pattern":"app.info""#));
}

// ---- endpoints, modules, registry ----------------------------------------------------------

#[test]
fn endpoints_are_normalised_and_unique() {
    struct G;
    impl WebSocketGateway for G {
        fn on_connect(&self, _: WebSocketContext, _: WebSocket) -> WebSocketFuture {
            Box::pin(async {})
        }
    }
    let running = spawn(
        NestForgeFactory::<AppModule>::create()
            .unwrap()
            .with_websocket_gateway_config(G, WebSocketConfig::new(" events "))
            .into_server()
            .unwrap(),
    );
    assert!(http(running.addr, &upgrade_head("/events")).starts_with("HTTP/1.1 101"));
    assert!(http(running.addr, &upgrade_head("/ws")).starts_with("HTTP/1.1 404"));
    let config = WebSocketConfig::default().endpoint("socket");
    let err = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway_config(G, config)
        .with_websocket_gateway_config(G, WebSocketConfig::new("/socket"))
        .into_server()
        .unwrap_err();
    assert_eq!(err.to_string(), "Two gateways are mounted on `/socket`");
}

#[test]
fn failing_provider_fails_create() {
    struct LocalConfig;
    fn load() -> Result<LocalConfig, std::io::Error> {
        Err(std::io::Error::other("no config file"))
    }
    struct Failing;
    impl Module for Failing {
        fn register(providers: &mut ProvidersBuilder) -> nestforge_edge::Result<()> {
            providers.provide_with(load)?;
            Ok(())
        }
    }
    let err = NestForgeFactory::<Failing>::create().unwrap_err();
    assert!(matches!(err, Error::Provider { .. }));
    assert_eq!(
        format!("{err:#}"),
        "Failed to construct provider gateway::failing_provider_fails_create::LocalConfig: no config file"
    );

    struct Twice;
    impl Module for Twice {
        fn register(providers: &mut ProvidersBuilder) -> nestforge_edge::Result<()> {
            providers.provide(1u8)?.provide(2u8)?;
            Ok(())
        }
    }
    assert_eq!(
        NestForgeFactory::<Twice>::create().unwrap_err().to_string(),
        "Type already registered: u8"
    );
}

#[test]
fn duplicate_patterns_are_refused() {
    let builder = || {
        MicroserviceRegistry::builder()
            .message("a", |_: (), _| async { Ok(1) })
            .event("a", |_: (), _| async { Ok(()) }) // other namespace: fine
            .message("a", |_: (), _| async { Ok(2) })
    };
    let err = builder().try_build().unwrap_err();
    assert!(
        matches!(&err, Error::DuplicatePattern { kind: Kind::Message, pattern } if pattern == "a")
    );
    assert!(std::panic::catch_unwind(|| builder().build()).is_err());
}

// ---- one thread, any executor --------------------------------------------------------------

/// Echoes and records the thread each connection ran on.
struct ThreadEcho(Arc<Mutex<Vec<std::thread::ThreadId>>>);

impl WebSocketGateway for ThreadEcho {
    fn on_connect(&self, _: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        let seen = Arc::clone(&self.0);
        Box::pin(async move {
            seen.lock().unwrap().push(std::thread::current().id());
            while let Some(Ok(m)) = socket.recv().await {
                if m.is_text() && socket.send(m).await.is_err() {
                    break;
                }
            }
        })
    }
}

/// Runs `serve` with `run` on a fresh thread; checks that concurrent connections are all
/// served on that one thread.
fn on_executor(run: fn(Server, std::net::TcpListener)) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway(ThreadEcho(Arc::clone(&seen)))
        .into_server()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = server.shutdown_handle();
    let thread = std::thread::spawn(move || {
        run(server, listener);
        std::thread::current().id()
    });
    smol::block_on(within(10, async {
        let mut a = connect(addr, "/ws").await;
        let mut b = connect(addr, "/ws").await;
        for i in 0..20 {
            send_text(&mut a, &format!("a{i}")).await;
            send_text(&mut b, &format!("b{i}")).await;
            assert_eq!(next_text(&mut a).await, format!("a{i}"));
            assert_eq!(next_text(&mut b).await, format!("b{i}"));
        }
    }));
    handle.shutdown();
    let server_thread = thread.join().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|t| *t == server_thread));
}

#[test]
fn runs_under_the_crates_block_on() {
    on_executor(|server, listener| nestforge_edge::block_on(server.serve(listener)).unwrap());
}

#[test]
fn runs_under_smol_block_on() {
    on_executor(|server, listener| smol::block_on(server.serve(listener)).unwrap());
}

#[test]
fn runs_under_a_local_executor() {
    on_executor(|server, listener| {
        let ex = async_executor::LocalExecutor::new();
        smol::block_on(
            ex.run(async { ex.spawn(async move { server.serve(listener).await }).await }),
        )
        .unwrap()
    });
}

#[test]
fn runs_under_futures_lite_block_on() {
    on_executor(|server, listener| futures_lite::future::block_on(server.serve(listener)).unwrap());
}

#[test]
fn serves_any_async_stream() {
    // A Unix socket pair instead of TCP: `serve_connection` takes any AsyncRead + AsyncWrite.
    let (server_side, client_side) = std::os::unix::net::UnixStream::pair().unwrap();
    let server = server();
    smol::block_on(within(10, async {
        let server_side = smol::Async::new(server_side).unwrap();
        let task = smol::spawn(async move { server.serve_connection(server_side, None).await });
        let client_side = smol::Async::new(client_side).unwrap();
        let (mut ws, _) = async_tungstenite::client_async("ws://local/ws", client_side)
            .await
            .unwrap();
        assert!(next_text(&mut ws)
            .await
            .starts_with("connected:NestForge WebSockets"));
        ws.send(ClientMessage::Text(BANNER_FRAME.into()))
            .await
            .unwrap();
        let reply = loop {
            match ws.next().await {
                Some(Ok(ClientMessage::Text(t))) => break t.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(reply, INFO_REPLY);
        ws.close(None).await.unwrap();
        task.await;
    }));
}

#[test]
fn raw_socket_never_reads_past_upgrade_answer() {
    // A rejected request's trailing bytes are drained, so the answer is never reset away.
    let running = spawn(server());
    let mut s = raw(running.addr);
    let mut junk = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes().to_vec();
    junk.extend(std::iter::repeat_n(b'x', 32 * 1024));
    s.write_all(&junk).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
}

// ---- third-party client ------------------------------------------------------------------

#[test]
fn python_websockets_client_runs_the_workflow() {
    if !python_websockets() {
        return;
    }
    let running = spawn(server());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/python_client.py"
    );
    let limit = (30 * time_scale()).to_string();
    let out = std::process::Command::new("timeout")
        .args([
            &limit,
            "python3",
            script,
            &format!("ws://{}", running.addr),
            "NestForge WebSockets",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
