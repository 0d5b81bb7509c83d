//! A gateway with server push, rooms and concurrent requests: the peer of the JavaScript
//! client's tests (`clients/js`).
//!
//! ```text
//! cargo run --example push_gateway      # ws://127.0.0.1:3003/ws
//! ```
//! `HOST`, `PORT`, `APP_NAME` and `TOKEN` override the defaults. SIGINT or SIGTERM shuts it
//! down gracefully (Close 1001 to every client, then exit 0).
//!
//! Requests run concurrently (`serve_patterns`, up to 64 per connection), so replies may
//! leave out of order; clients match them by `id`. The gateway speaks the subprotocol
//! `nestforge`; a client may present a bearer token (`Sec-WebSocket-Protocol: nestforge,
//! bearer.<token>`), which must then equal `TOKEN` (default `edge-token`) and gives the
//! identity `token-holder` with the role `admin`; without one the connection is anonymous.
//!
//! | pattern | kind | payload | does |
//! |---|---|---|---|
//! | `app.info` | message | - | `{app_name, transport}` (as `events_gateway`) |
//! | `app.ping` | event | any | nothing (as `events_gateway`) |
//! | `app.echo` | message | any | `{payload, metadata}`: the request's own |
//! | `app.sleep` | message | ms | waits `ms` milliseconds, replies `ms` |
//! | `app.fail` | message | any | fails: `handler_error` |
//! | `app.admin` | message | any | `forbidden` unless the token holder |
//! | `auth.whoami` | message | - | the identity's subject, or `null` |
//! | `room.join` | message | room | joins this connection to `room`; `true` |
//! | `push.me` | message | `{pattern, payload}` | pushes the event to this connection |
//! | `push.room` | message | `{room, pattern, payload}` | pushes it to `room`; how many got it |
//! | `push.all` | message | `{pattern, payload}` | pushes it to every connection; how many |
//! | `push.echo` | event | `{pattern, payload}` | pushes it back to the sender |
//! | `push.garbage` | message | - | pushes frames that match no request, then replies `true` |

use std::time::Duration;

use nestforge_edge::prelude::*;
use nestforge_edge::{serve_patterns, Rejection, UpgradeRequest};
use serde::Deserialize;
use serde_json::{json, Value};

pub struct AppConfig {
    pub app_name: String,
}

pub struct Patterns(MicroserviceRegistry);

/// An event to push: its pattern and payload.
#[derive(Deserialize)]
struct Push {
    pattern: String,
    #[serde(default)]
    payload: Value,
}

/// An event to push to the connections in `room`.
#[derive(Deserialize)]
struct RoomPush {
    room: String,
    pattern: String,
    #[serde(default)]
    payload: Value,
}

/// Frames that are no reply to a pending request, nor a push a client subscribed to.
const GARBAGE: &[&str] = &[
    "not json {",
    "null",
    "42",
    "\"a string\"",
    "[1,2,3]",
    "{}",
    r#"{"id":987654321,"pattern":"app.info","payload":1}"#,
    r#"{"id":{"nested":true},"payload":1}"#,
    r#"{"id":987654322,"error":"not an object"}"#,
    r#"{"kind":"event"}"#,
    r#"{"kind":"event","pattern":5,"payload":1}"#,
    r#"{"kind":"event","pattern":"nobody.listens","payload":1}"#,
    r#"{"kind":"message","pattern":"app.info"}"#,
];

fn build_patterns() -> Patterns {
    let registry = MicroserviceRegistry::builder()
        .message("app.info", |_payload: (), ctx| async move {
            let config = ctx.resolve::<AppConfig>()?;
            Ok(json!({ "app_name": config.app_name, "transport": ctx.transport() }))
        })
        .event("app.ping", |_payload: Value, _ctx| async move { Ok(()) })
        .message("app.echo", |payload: Value, ctx| async move {
            Ok(json!({ "payload": payload, "metadata": ctx.metadata() }))
        })
        .message("app.sleep", |ms: u64, _ctx| async move {
            async_io::Timer::after(Duration::from_millis(ms)).await;
            Ok(ms)
        })
        .message("app.fail", |_payload: Value, _ctx| async move {
            Err::<(), HandlerError>("app.fail always fails".into())
        })
        .message("app.admin", |_payload: Value, ctx| async move {
            let identity = ctx.auth_identity().cloned().unwrap_or_default();
            identity.require_role("admin")?;
            Ok(identity.subject)
        })
        .message("auth.whoami", |_payload: (), ctx| async move {
            Ok(ctx.auth_identity().map(|identity| identity.subject.clone()))
        })
        .message("room.join", |room: String, ctx| async move {
            let connections = ctx.resolve::<Connections>()?;
            Ok(connections.join(ctx.websocket().connection_id(), &room))
        })
        .message("push.me", |push: Push, ctx| async move {
            let connections = ctx.resolve::<Connections>()?;
            let id = ctx.websocket().connection_id();
            connections.emit(id, &push.pattern, &push.payload)?;
            Ok(true)
        })
        .message("push.room", |push: RoomPush, ctx| async move {
            let connections = ctx.resolve::<Connections>()?;
            let report = connections.emit_to_room(&push.room, &push.pattern, &push.payload)?;
            Ok(report.delivered)
        })
        .message("push.all", |push: Push, ctx| async move {
            let connections = ctx.resolve::<Connections>()?;
            let report = connections.emit_to_all(&push.pattern, &push.payload)?;
            Ok(report.delivered)
        })
        .event("push.echo", |push: Push, ctx| async move {
            let connections = ctx.resolve::<Connections>()?;
            let id = ctx.websocket().connection_id();
            connections.emit(id, &push.pattern, &push.payload)?;
            Ok(())
        })
        .message("push.garbage", |_payload: (), ctx| async move {
            let connections = ctx.resolve::<Connections>()?;
            let id = ctx.websocket().connection_id();
            for frame in GARBAGE {
                // The outbound queue holds 16 frames: more than that would be dropped.
                let _ = connections.send(id, Message::Text((*frame).into()));
            }
            Ok(true)
        })
        .build();
    Patterns(registry)
}

pub struct PushGateway;

impl WebSocketGateway for PushGateway {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let Ok(patterns) = ctx.resolve::<Patterns>() else {
                return;
            };
            let _ = serve_patterns(&ctx, &mut socket, &patterns.0, 64).await;
        })
    }
}

module! {
    pub struct AppModule {
        providers: [
            AppConfig {
                app_name: std::env::var("APP_NAME").unwrap_or_else(|_| "push_gateway".into()),
            },
            build_patterns(),
        ],
    }
}

/// Accepts anonymous connections, and those whose bearer token is `expected`; a wrong token
/// is refused (403) before the upgrade.
fn config(expected: String) -> WebSocketConfig {
    WebSocketConfig::new("/ws")
        .protocols(["nestforge"])
        .guard(move |req: &UpgradeRequest| {
            let verdict = match req.token() {
                None => Ok(None),
                Some(token) if token == expected => Ok(Some(
                    AuthIdentity::new("token-holder").with_roles(["admin"]),
                )),
                Some(_) => Err(Rejection::new(403, "bad token")),
            };
            async move { verdict }
        })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3003);
    let token = std::env::var("TOKEN").unwrap_or_else(|_| "edge-token".into());
    nestforge_edge::block_on(async {
        let server = NestForgeFactory::<AppModule>::create()?
            .with_websocket_gateway_config(PushGateway, config(token))
            .with_server_config(ServerConfig::default().host(&host))
            .into_server()?;
        let signal = nestforge_edge::shutdown_signal()?;
        let listener = std::net::TcpListener::bind((host.as_str(), port))?;
        println!(
            "push_gateway listening on ws://{}/ws",
            listener.local_addr()?
        );
        server
            .serve_with_graceful_shutdown(listener, signal)
            .await?;
        println!("push_gateway stopped");
        Ok(())
    })
}
