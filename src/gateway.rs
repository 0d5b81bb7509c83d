//! The gateway trait: what the application does with each connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::conn::CloseInfo;
use crate::context::WebSocketContext;
use crate::socket::WebSocket;

/// The future `on_connect` returns; the connection lives as long as it runs.
///
/// NestForge keeps this alias private; here it is public, so implementations may write
/// `-> WebSocketFuture` instead of the full type.
pub type WebSocketFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A WebSocket gateway (NestForge's `WebSocketGateway`), mounted on an endpoint.
///
/// `on_connect` is called once per upgraded connection; the returned future *is* the
/// connection. When it completes, the server closes the connection (close code 1000; 1011
/// if it panicked). The other hooks have empty defaults.
///
/// # Examples
/// ```
/// use nestforge_edge::prelude::*;
/// use std::future::Future;
/// use std::pin::Pin;
///
/// struct Echo;
/// impl WebSocketGateway for Echo {
///     fn on_connect(&self, _ctx: WebSocketContext, mut socket: WebSocket) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         Box::pin(async move {
///             while let Some(Ok(message)) = socket.recv().await {
///                 if message.is_text() || message.is_binary() {
///                     if socket.send(message).await.is_err() { break; }
///                 }
///             }
///         })
///     }
/// }
/// ```
pub trait WebSocketGateway: Send + Sync + 'static {
    /// Runs one connection.
    fn on_connect(&self, ctx: WebSocketContext, socket: WebSocket) -> WebSocketFuture;

    /// Called once after the server bound its listener (before the first connection).
    fn on_init(&self, local_addr: Option<SocketAddr>) {
        let _ = local_addr;
    }

    /// Called exactly once per upgraded connection, after it closed (cleanly, on error, on
    /// a vanished peer or on shutdown), with the close code and reason.
    fn on_disconnect(&self, ctx: &WebSocketContext, close: &CloseInfo) {
        let _ = (ctx, close);
    }
}
