//! A gateway instance bridged to an MQTT broker (feature `mqtt`): run several against one
//! broker and each reaches the others' patterns, events, broadcasts and pushes.
//!
//! ```text
//! mosquitto -p 1883 &
//! INSTANCE=gw-a SERVE=app.info PORT=3002 cargo run --features mqtt --example mqtt_gateway
//! INSTANCE=gw-b SERVE=math.sum PORT=3003 cargo run --features mqtt --example mqtt_gateway
//! ```
//!
//! Environment:
//! - `HOST`, `PORT` (default 3002; `0` picks a free port, printed on the first line);
//! - `MQTT_URL` (default `mqtt://127.0.0.1:1883`), `INSTANCE` (the client id; default a
//!   random one), `MQTT_GROUP`, `MQTT_TIMEOUT_MS`, `MQTT_RECONNECT_MAX_MS`,
//!   `MQTT_PROTOCOL` (`5` or `3.1.1`), `MQTT_EVENT_QOS` (`0` or `1`);
//! - `SERVE`: comma-separated patterns served by this instance, among `app.info`,
//!   `math.sum` and `shared.echo` (default all three).
//!
//! Always served locally: `whoami` (instance and connection id), `push.to`
//! (`{"instance","conn","text"}`: a push to a connection of any instance), `broadcast`
//! (`{"text"}`: to every client of every instance), `local.echo`, `audit.count` (how many
//! `audit.log` events this instance handled), `mqtt.stats`, and the event `audit.log`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use nestforge_edge::mqtt::{MqttBridge, MqttConfig, Protocol, Qos};
use nestforge_edge::prelude::*;
use nestforge_edge::serve_patterns;
use serde::Deserialize;

struct Patterns(MicroserviceRegistry);

#[derive(Default)]
struct Audit(AtomicUsize);

struct Instance(String);

#[derive(Deserialize)]
struct PushTo {
    instance: String,
    conn: u64,
    text: String,
}

#[derive(Deserialize)]
struct Text {
    text: String,
}

fn registry(instance: &str, serve: &[String]) -> MicroserviceRegistry {
    let serves = |p: &str| serve.iter().any(|s| s == p);
    let me = instance.to_owned();
    let mut builder = MicroserviceRegistry::builder();
    if serves("app.info") {
        let me = me.clone();
        builder =
            builder.message("app.info", move |data: serde_json::Value, _| {
                let me = me.clone();
                async move {
                    Ok(serde_json::json!({"name": "mqtt_gateway", "servedBy": me, "data": data}))
                }
            });
    }
    if serves("math.sum") {
        let me = me.clone();
        builder =
            builder.message("math.sum", move |numbers: Vec<i64>, _| {
                let me = me.clone();
                async move {
                    Ok(serde_json::json!({"sum": numbers.iter().sum::<i64>(), "servedBy": me}))
                }
            });
    }
    if serves("shared.echo") {
        let me = me.clone();
        builder = builder.message("shared.echo", move |data: serde_json::Value, _| {
            let me = me.clone();
            async move { Ok(serde_json::json!({"echo": data, "servedBy": me})) }
        });
    }
    builder
        .message("whoami", |_: (), ctx: MicroserviceContext| async move {
            let instance = ctx.resolve::<Instance>()?;
            Ok(serde_json::json!({
                "instance": instance.0,
                "conn": ctx.websocket().connection_id(),
            }))
        })
        .message(
            "push.to",
            |p: PushTo, ctx: MicroserviceContext| async move {
                let bridge = ctx.resolve::<MqttBridge>()?;
                let sent = bridge.send(&p.instance, p.conn, Message::Text(p.text.into()));
                Ok(sent.is_ok())
            },
        )
        .message(
            "broadcast",
            |p: Text, ctx: MicroserviceContext| async move {
                let bridge = ctx.resolve::<MqttBridge>()?;
                Ok(bridge.broadcast(Message::Text(p.text.into())).delivered)
            },
        )
        .message("local.echo", |data: serde_json::Value, _| async move {
            Ok(data)
        })
        .message(
            "audit.count",
            |_: (), ctx: MicroserviceContext| async move {
                Ok(ctx.resolve::<Audit>()?.0.load(Ordering::Relaxed))
            },
        )
        .message("mqtt.stats", |_: (), ctx: MicroserviceContext| async move {
            let s = ctx.resolve::<MqttBridge>()?.stats();
            Ok(serde_json::json!({
                "connected": s.connected, "connects": s.connects, "forwarded": s.forwarded,
                "served": s.served, "timeouts": s.timeouts, "unavailable": s.unavailable,
                "eventsIn": s.events_in, "eventsOut": s.events_out, "malformed": s.malformed,
            }))
        })
        .event(
            "audit.log",
            |_: serde_json::Value, ctx: MicroserviceContext| async move {
                ctx.resolve::<Audit>()?.0.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
        )
        .build()
}

struct Gateway;

impl WebSocketGateway for Gateway {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let Ok(patterns) = ctx.resolve::<Patterns>() else {
                return;
            };
            let _ = serve_patterns(&ctx, &mut socket, &patterns.0, 16).await;
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn millis(name: &str) -> Option<Duration> {
    env(name)
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = env("HOST").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = env("PORT").and_then(|p| p.parse().ok()).unwrap_or(3002);
    let serve: Vec<String> = env("SERVE")
        .unwrap_or_else(|| "app.info,math.sum,shared.echo".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let mut config =
        MqttConfig::new(env("MQTT_URL").unwrap_or_else(|| "mqtt://127.0.0.1:1883".into()));
    if let Some(id) = env("INSTANCE") {
        config = config.client_id(id);
    }
    if let Some(group) = env("MQTT_GROUP") {
        config = config.group(group);
    }
    if let Some(t) = millis("MQTT_TIMEOUT_MS") {
        config = config.request_timeout(t);
    }
    if let Some(t) = millis("MQTT_RECONNECT_MAX_MS") {
        config = config.reconnect_max(t);
    }
    if env("MQTT_EVENT_QOS").as_deref() == Some("1") {
        config = config.event_qos(Qos::AtLeastOnce);
    }
    if env("MQTT_PROTOCOL").as_deref() == Some("3.1.1") {
        config = config.protocol(Protocol::V311);
    }
    // The instance name is needed by the registry and the module's providers.
    let probe = MqttBridge::new(config.clone(), MicroserviceRegistry::default())?;
    let instance = probe.instance_id().to_owned();
    let config = config.client_id(instance.clone());
    let registry = registry(&instance, &serve);
    let _ = SETUP.set((instance.clone(), registry.clone()));

    nestforge_edge::block_on(async {
        let server = NestForgeFactory::<AppModule>::create()?
            .with_mqtt(config, registry)?
            .with_websocket_gateway(Gateway)
            .with_server_config(ServerConfig::default().host(&host))
            .into_server()?;
        let listener = std::net::TcpListener::bind((host.as_str(), port))?;
        println!(
            "mqtt_gateway listening on ws://{}/ws instance={instance}",
            listener.local_addr()?
        );
        server.serve(listener).await?;
        Ok(())
    })
}

static SETUP: OnceLock<(String, MicroserviceRegistry)> = OnceLock::new();

fn setup() -> &'static (String, MicroserviceRegistry) {
    SETUP.get_or_init(|| ("unset".into(), MicroserviceRegistry::default()))
}

module! {
    struct AppModule {
        providers: [Audit::default(), Instance(setup().0.clone()), Patterns(setup().1.clone())],
    }
}
