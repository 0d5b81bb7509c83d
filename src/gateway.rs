//! The gateway trait: what the application does with each connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::context::WebSocketContext;
use crate::ws::CloseInfo;
use crate::ws::WebSocket;

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
/// A closure `Fn(WebSocketContext, WebSocket) -> impl Future<Output = ()>` is a gateway too
/// (NestForge's `websocket_router(|ctx, socket| async move { .. })`); name the argument
/// types, as the closure is not passed where they are known:
///
/// ```
/// use nestforge_edge::prelude::*;
///
/// module! { struct AppModule { providers: [] } }
///
/// let app = NestForgeFactory::<AppModule>::create()?.with_websocket_gateway(
///     |_ctx: WebSocketContext, mut socket: WebSocket| async move {
///         while let Some(Ok(message)) = socket.recv().await {
///             if message.is_text() && socket.send(message).await.is_err() {
///                 break;
///             }
///         }
///     },
/// );
/// # let _ = app;
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
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

impl<F, Fut> WebSocketGateway for F
where
    F: Fn(WebSocketContext, WebSocket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn on_connect(&self, ctx: WebSocketContext, socket: WebSocket) -> WebSocketFuture {
        Box::pin(self(ctx, socket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mountable<G: WebSocketGateway>(gateway: G) -> Box<dyn WebSocketGateway> {
        Box::new(gateway)
    }

    #[test]
    fn closures_and_types_are_gateways_side_by_side() {
        struct Typed;
        impl WebSocketGateway for Typed {
            fn on_connect(&self, _: WebSocketContext, _: WebSocket) -> WebSocketFuture {
                Box::pin(async {})
            }
        }
        let greeting = String::from("hello");
        let _ = mountable(Typed);
        let _ = mountable(move |_ctx: WebSocketContext, _socket: WebSocket| {
            let greeting = greeting.clone();
            async move { drop(greeting) }
        });
        let _ = mountable(|_: WebSocketContext, _: WebSocket| async {});
    }
}
