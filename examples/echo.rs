//! Echoes every text and binary message on `/ws` (port 9001): the conformance and
//! throughput target.
//!
//! ```text
//! cargo run --release --example echo
//! ../shared/autobahn/run ws://127.0.0.1:9001/ws target/autobahn
//! ```
//! `HOST` and `PORT` override the defaults, `READ_BUFFER` the 4 KiB read buffer,
//! `MAX_MESSAGE` the 16 MiB frame and message limit, `MAX_CONNECTIONS` the limit of 1,024
//! open connections; SIGINT or SIGTERM shuts it down gracefully. Built with the feature
//! `deflate`, it accepts `permessage-deflate` (the default `WebSocketConfig::compression`).

use nestforge_edge::prelude::*;

/// Echoes every text and binary message (the integration tests and the bench use this one
/// too).
pub struct Echo;

impl WebSocketGateway for Echo {
    fn on_connect(&self, _ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            while let Some(Ok(message)) = socket.recv().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err()
                {
                    break;
                }
            }
        })
    }
}

module! { struct AppModule { providers: [] } }

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    // Conformance and load tests send up to 16 MiB messages and open many connections.
    let max_message = std::env::var("MAX_MESSAGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16 << 20);
    let config = WebSocketConfig::default()
        .max_frame_size(max_message)
        .max_message_size(max_message)
        .max_write_buffer_size(256 * 1024)
        // READ_BUFFER trades RAM per connection for fewer reads per large frame.
        .read_buffer_size(
            std::env::var("READ_BUFFER")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(4096),
        );
    let max_connections = std::env::var("MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let server_config = ServerConfig::default()
        .host(&host)
        .max_connections(max_connections);
    nestforge_edge::block_on(async {
        let server = NestForgeFactory::<AppModule>::create()?
            .with_websocket_gateway_config(Echo, config)
            .with_server_config(server_config)
            .into_server()?;
        let signal = nestforge_edge::shutdown_signal()?;
        let listener = std::net::TcpListener::bind((host.as_str(), port))?;
        println!("echo listening on ws://{}/ws", listener.local_addr()?);
        server
            .serve_with_graceful_shutdown(listener, signal)
            .await?;
        Ok(())
    })
}
