//! NestForge's `hello-nestforge-websockets` example on nestforge-edge.
//!
//! ```text
//! cargo run --release --example events_gateway      # ws://127.0.0.1:3002/ws
//! cargo run --release --example client              # in another terminal
//! ```
//! `HOST`, `PORT` and `APP_NAME` override the defaults. SIGINT or SIGTERM shuts it down
//! gracefully (Close 1001 to every client, then exit 0).
//!
//! The gateway, patterns and module below are NestForge's code with only the `use` lines
//! changed (and the module written with `module!` instead of `#[module]`).

use std::future::Future;
use std::pin::Pin;

use nestforge_edge::prelude::*;

// --- src/app_config.rs ---------------------------------------------------------------
pub struct AppConfig {
    pub app_name: String,
}

fn load_app_config() -> AppConfig {
    AppConfig {
        app_name: std::env::var("APP_NAME").unwrap_or_else(|_| "NestForge WebSockets".to_string()),
    }
}

// --- src/ws/patterns.rs ----------------------------------------------------------------
pub struct WsPatterns {
    registry: MicroserviceRegistry,
}

impl WsPatterns {
    pub fn registry(&self) -> &MicroserviceRegistry {
        &self.registry
    }
}

fn build_ws_patterns() -> WsPatterns {
    let registry = MicroserviceRegistry::builder()
        .message("app.info", |_payload: (), ctx| async move {
            let config = ctx.resolve::<AppConfig>()?;
            Ok(serde_json::json!({
                "app_name": config.app_name,
                "transport": ctx.transport(),
            }))
        })
        .event("app.ping", |_payload: serde_json::Value, _ctx| async move {
            Ok(())
        })
        .build();

    WsPatterns { registry }
}

// --- src/ws/events_gateway.rs ------------------------------------------------------------
pub struct EventsGateway;

impl WebSocketGateway for EventsGateway {
    fn on_connect(
        &self,
        ctx: WebSocketContext,
        mut socket: WebSocket,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let app_name = ctx
                .resolve::<AppConfig>()
                .map(|config| config.app_name.clone())
                .unwrap_or_else(|_| "NestForge WebSockets".to_string());
            let patterns = ctx.resolve::<WsPatterns>().ok();

            let _ = socket
                .send(Message::Text(
                    format!(
                        "connected:{app_name}; send {{\"kind\":\"message\",\"pattern\":\"app.info\",\"payload\":null,\"metadata\":{{}}}}"
                    )
                    .into(),
                ))
                .await;

            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }

                let Some(patterns) = patterns.as_ref() else {
                    continue;
                };

                match handle_websocket_microservice_message(&ctx, patterns.registry(), message)
                    .await
                {
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
        })
    }
}

// --- src/app_module.rs -------------------------------------------------------------------
module! {
    pub struct AppModule {
        providers: [load_app_config(), build_ws_patterns()],
    }
}

// --- src/main.rs -------------------------------------------------------------------------
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3002);
    nestforge_edge::block_on(async {
        let server = NestForgeFactory::<AppModule>::create()?
            .with_websocket_gateway(EventsGateway)
            .with_server_config(
                ServerConfig::default()
                    .host(&host)
                    .health_endpoint(Some("/healthz")),
            )
            .into_server()?;
        let signal = nestforge_edge::shutdown_signal()?;
        let listener = std::net::TcpListener::bind((host.as_str(), port))?;
        println!(
            "events_gateway listening on ws://{}/ws",
            listener.local_addr()?
        );
        // Returns once a signal has started the shutdown and the connections are gone.
        server
            .serve_with_graceful_shutdown(listener, signal)
            .await?;
        println!("events_gateway stopped");
        Ok(())
    })
}
