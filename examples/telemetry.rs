//! A device's everyday job: read a sensor every second and push the reading to the clients
//! that subscribed, with NestForge's schedules, lifecycle hooks and provider factories.
//!
//! ```text
//! cargo run --release --example telemetry        # ws://127.0.0.1:3004/ws
//! ```
//! A client sends `{"kind":"message","pattern":"telemetry.subscribe","id":1}` and then gets
//! `{"kind":"event","pattern":"telemetry.reading","payload":{"celsius":..,"seq":..}}` every
//! `TELEMETRY_EVERY_MS` (default 1000). `readings.latest` answers the last reading;
//! `readings.put` records one from the client, and answers a reading over 85 °C with the
//! application's own error code, `sensor.too_hot`. `HOST`, `PORT` as in the other examples;
//! SIGINT or SIGTERM shuts it down gracefully (Close 1001, the shutdown hooks, exit 0).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nestforge_edge::prelude::*;
use serde::{Deserialize, Serialize};

/// Where to listen and how often to read the sensor, from the environment.
struct AppConfig {
    host: String,
    port: u16,
    every: Duration,
}

fn load_config() -> anyhow::Result<AppConfig> {
    let env = |name: &str| std::env::var(name).ok();
    Ok(AppConfig {
        host: env("HOST").unwrap_or_else(|| "127.0.0.1".into()),
        port: env("PORT").map(|p| p.parse()).transpose()?.unwrap_or(3004),
        every: Duration::from_millis(
            env("TELEMETRY_EVERY_MS")
                .map(|v| v.parse())
                .transpose()?
                .unwrap_or(1000),
        ),
    })
}

#[derive(Clone, Copy, Serialize, Deserialize)]
struct Reading {
    celsius: f64,
    seq: u64,
}

/// The sensor (simulated: a slow warm-up) and the last reading.
struct Sensor {
    // 32 bits: devices without 64-bit atomics (ARMv5TE, MIPS32) run this example too.
    seq: AtomicU32,
    latest: Mutex<Option<Reading>>,
}

impl Sensor {
    fn read(&self) -> Reading {
        let seq = u64::from(self.seq.fetch_add(1, Ordering::Relaxed));
        let reading = Reading {
            celsius: 21.0 + (seq % 10) as f64 * 0.5,
            seq,
        };
        self.record(reading);
        reading
    }

    fn record(&self, reading: Reading) {
        *self.latest.lock().unwrap() = Some(reading);
    }
}

/// The room the readings go to.
const ROOM: &str = "telemetry";

/// Reads the sensor every `every` and pushes the reading to the room.
fn build_schedules(container: &Container) -> Result<ScheduleRegistry, Error> {
    let config = container.resolve::<AppConfig>()?;
    let (sensor, connections) = (
        container.resolve::<Sensor>()?,
        container.resolve::<Connections>()?,
    );
    Ok(ScheduleRegistry::builder()
        .every_named("telemetry.push", config.every, move || {
            let reading = sensor.read();
            let _ = connections.emit_to_room(ROOM, "telemetry.reading", &reading);
            async {}
        })
        .build())
}

struct Patterns(MicroserviceRegistry);

fn build_patterns() -> Patterns {
    let registry = MicroserviceRegistry::builder()
        .message(
            "telemetry.subscribe",
            |_: (), ctx: MicroserviceContext| async move {
                let id = ctx.websocket().connection_id();
                Ok(ctx.resolve::<Connections>()?.join(id, ROOM))
            },
        )
        .message(
            "readings.latest",
            |_: (), ctx: MicroserviceContext| async move {
                Ok(*ctx.resolve::<Sensor>()?.latest.lock().unwrap())
            },
        )
        .message(
            "readings.put",
            |reading: Reading, ctx: MicroserviceContext| async move {
                if reading.celsius > 85.0 {
                    let error = AppError::new(
                        "sensor.too_hot",
                        format!("{} °C is too hot", reading.celsius),
                    )
                    .with_detail(serde_json::json!({ "max": 85.0, "celsius": reading.celsius }));
                    return Err(error.into());
                }
                ctx.resolve::<Sensor>()?.record(reading);
                Ok(reading.seq)
            },
        )
        .build();
    Patterns(registry)
}

struct TelemetryGateway;

impl WebSocketGateway for TelemetryGateway {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let Ok(patterns) = ctx.resolve::<Patterns>() else {
                return;
            };
            let _ = serve_patterns(&ctx, &mut socket, &patterns.0, 8).await;
        })
    }
}

fn announce(container: &Container) -> anyhow::Result<()> {
    let config = container.resolve::<AppConfig>()?;
    println!(
        "telemetry listening on ws://{}:{}/ws",
        config.host, config.port
    );
    Ok(())
}

fn farewell(_: &Container) -> anyhow::Result<()> {
    println!("telemetry stopped");
    Ok(())
}

module! {
    struct AppModule {
        providers: [
            load_config()?,
            Sensor { seq: AtomicU32::new(0), latest: Mutex::new(None) },
            Provider::factory(build_schedules),
            build_patterns(),
        ],
        on_application_bootstrap: [start_schedules, announce],
        on_application_shutdown: [shutdown_schedules, farewell],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    nestforge_edge::block_on(async {
        let app = NestForgeFactory::<AppModule>::create()?;
        let config = app.providers().resolve::<AppConfig>()?;
        app.with_websocket_gateway(TelemetryGateway)
            .with_server_config(ServerConfig::default().host(&config.host))
            .listen_with_graceful_shutdown(config.port, shutdown_signal()?)
            .await
    })?;
    Ok(())
}
