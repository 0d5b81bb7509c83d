//! A ready-made pattern loop with bounded per-connection concurrency.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_lite::future::poll_fn;
use tungstenite::Message;

use crate::context::WebSocketContext;
use crate::error::{Error, Result};
use crate::registry::{dispatch_frame, error_reply, MicroserviceRegistry};
use crate::ws::WebSocket;

/// A handler's reply, or its failure with the error frame that answers it (when the request
/// could be matched: it carried an `id`).
type Dispatch =
    Pin<Box<dyn Future<Output = Result<Option<Message>, (Error, Option<Message>)>> + Send>>;

enum Step {
    Frame(Option<Result<Message>>),
    Done(Result<Option<Message>, (Error, Option<Message>)>),
}

/// Serves request frames on `socket` with `registry`, running up to `max_in_flight`
/// handlers of this connection at once, until the connection closes.
///
/// Replies are sent as their handlers finish (so possibly out of order: clients correlate
/// them by `id`), failures as JSON error frames ([`Error::to_message`](crate::Error)). While
/// handlers run, the connection keeps reading: pings are answered, a Close is handled at
/// once and further requests start, until `max_in_flight` handlers are running; only then
/// does reading pause (backpressure). With `max_in_flight == 1` it behaves like NestForge's
/// sequential loop, except that a slow handler no longer delays pongs.
///
/// Returns `Ok(())` when the peer closed, or the error that ended the connection.
///
/// # Examples
/// ```
/// use nestforge_edge::prelude::*;
/// use nestforge_edge::serve_patterns;
///
/// struct Patterns(MicroserviceRegistry);
/// struct Gateway;
/// impl WebSocketGateway for Gateway {
///     fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
///         Box::pin(async move {
///             let Ok(patterns) = ctx.resolve::<Patterns>() else { return };
///             let _ = serve_patterns(&ctx, &mut socket, &patterns.0, 8).await;
///         })
///     }
/// }
/// ```
pub async fn serve_patterns(
    ctx: &WebSocketContext,
    socket: &mut WebSocket,
    registry: &MicroserviceRegistry,
    max_in_flight: usize,
) -> Result<()> {
    let max_in_flight = max_in_flight.max(1);
    let mut in_flight: Vec<Dispatch> = Vec::new();
    loop {
        let step = poll_fn(|cx| {
            for i in 0..in_flight.len() {
                if let Poll::Ready(result) = in_flight[i].as_mut().poll(cx) {
                    drop(in_flight.swap_remove(i));
                    return Poll::Ready(Step::Done(result));
                }
            }
            if in_flight.len() < max_in_flight {
                if let Poll::Ready(frame) = socket.poll_recv(cx) {
                    return Poll::Ready(Step::Frame(frame));
                }
            } else {
                // Not reading until a handler finishes: replies `send` held back for
                // requests still arriving go out now.
                socket.poll_write_held(cx);
            }
            Poll::Pending
        })
        .await;
        match step {
            Step::Done(Ok(Some(reply))) => socket.send(reply).await?,
            Step::Done(Ok(None)) => {}
            Step::Done(Err((err, reply))) => {
                socket.count_dispatch_error();
                socket
                    .send(reply.unwrap_or_else(|| err.to_message()))
                    .await?
            }
            Step::Frame(None) => return Ok(()),
            Step::Frame(Some(Err(err))) => return Err(err),
            Step::Frame(Some(Ok(message))) => {
                if message.is_text() || message.is_binary() {
                    let (ctx, registry) = (ctx.clone(), registry.clone());
                    in_flight.push(Box::pin(async move {
                        dispatch_frame(&ctx, &registry, &message)
                            .await
                            .map_err(|err| {
                                let reply = error_reply(&message, &err);
                                (err, reply)
                            })
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Context;

    use super::*;
    use crate::providers::Providers;
    use crate::ws::mock::{text_frame, Mock};
    use crate::ws::WebSocketConfig;

    #[test]
    fn a_reply_is_not_held_while_the_slots_are_full() {
        // One slot: a fast request, then a slow one whose first read ends inside its frame.
        // The fast reply must not wait for the slow handler (which never finishes).
        let mock = Mock::default();
        let slow = format!(
            r#"{{"kind":"message","pattern":"slow","id":2,"payload":"{}"}}"#,
            "x".repeat(250)
        );
        mock.0.lock().unwrap().input = [
            text_frame(r#"{"kind":"message","pattern":"fast","id":1}"#),
            text_frame(&slow),
        ]
        .concat();
        let config = WebSocketConfig::default()
            .idle_timeout(None)
            .read_buffer_size(128);
        let mut socket = mock.socket(&[], config);
        let ctx = WebSocketContext::detached(Providers::default());
        let registry = MicroserviceRegistry::builder()
            .message("fast", |_: (), _| async { Ok("fast") })
            .message("slow", |_: String, _| async {
                std::future::pending::<()>().await;
                Ok("slow")
            })
            .build();
        let mut serve = Box::pin(serve_patterns(&ctx, &mut socket, &registry, 1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..20 {
            assert!(serve.as_mut().poll(&mut cx).is_pending());
        }
        drop(serve);
        let output = String::from_utf8_lossy(&mock.0.lock().unwrap().output).into_owned();
        assert!(
            output.contains(r#""id":1,"pattern":"fast","payload":"fast""#),
            "{output:?}"
        );
    }
}
