//! `WebSocket`: one upgraded connection, as the gateway sees it. The connection itself
//! (framing, batching, timers, closing) is driven by [`Conn`] in `conn.rs`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_lite::future::poll_fn;
use futures_lite::Stream;
use futures_sink::Sink;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::conn::{Conn, Flush, Sending};
use crate::error::{Error, Result};
use crate::rt::sync::lock;

/// Where a dropped [`WebSocket`] leaves its connection for the server to close.
pub(crate) type Home = Arc<Mutex<Option<Box<Conn>>>>;

/// One upgraded WebSocket connection: receive with [`recv`](Self::recv), send with
/// [`send`](Self::send); or use it as a [`Stream`] of messages and a [`Sink`] for them
/// (axum's socket is both, so NestForge gateways that `split()` it compile unchanged).
///
/// Pings are answered automatically (and still returned by `recv`, as in NestForge); the
/// server pings and closes idle peers per [`WebSocketConfig`](crate::WebSocketConfig). Dropping the socket (or
/// returning from `on_connect`) does not cut the TCP connection: the server completes the
/// close handshake (close code 1000, or the code of the error that ended the connection).
///
/// # Which to use
/// - **`recv`/`send`**, in one loop: the plain way and the cheapest (no lock). A reply sent
///   while more requests are already buffered (or part of one, the rest on its way) is
///   flushed with the last reply of the batch, at the latest when `recv` waits.
/// - **`Stream`/`Sink`** with futures' `StreamExt`/`SinkExt`: when another task must send
///   while this one reads (`let (mut sender, mut receiver) = socket.split();` and the sender
///   moved into that task, on the same thread or, the halves being `Send`, another), or to
///   `forward` a stream of messages into the socket. `SinkExt::send` goes through the same
///   path as `send`: the same batching (held back only while whole requests are buffered:
///   the reading task, perhaps busy elsewhere, is not waited for), the bounded write buffer
///   (`poll_ready` waits while it is full; nothing is queued elsewhere) and `send_timeout`
///   for a peer that stops reading.
///   `SinkExt::feed` fills the write buffer without flushing; `flush` sends it in one write.
///   `close` sends Close 1000; keep reading the stream for the peer's answer, or return and
///   let the server complete the handshake.
///
/// The socket is closed by the server once `on_connect`'s future ends and the socket (both
/// halves, after `split`) is dropped.
///
/// # Examples
/// ```
/// use futures::{SinkExt, StreamExt};
/// use nestforge_edge::prelude::*;
///
/// // An echo whose sending runs apart from its reading, through a bounded channel (joined
/// // here; spawned as a task of its own it works the same, the halves being `Send`).
/// let gateway = |_ctx: WebSocketContext, socket: WebSocket| async move {
///     let (mut sender, mut receiver) = socket.split();
///     let (tx, rx) = futures::channel::mpsc::channel::<Message>(8);
///     let sending = async move {
///         let mut rx = rx;
///         while let Some(message) = rx.next().await {
///             if sender.send(message).await.is_err() {
///                 break;
///             }
///         }
///     };
///     let receiving = async move {
///         let mut tx = tx;
///         while let Some(Ok(message)) = receiver.next().await {
///             if message.is_text() && tx.send(message).await.is_err() {
///                 break;
///             }
///         }
///     };
///     futures::join!(sending, receiving);
/// };
/// # let _ = NestForgeFactory::<AppModule>::create()?.with_websocket_gateway(gateway);
/// # module! { struct AppModule { providers: [] } }
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
pub struct WebSocket {
    conn: Option<Box<Conn>>,
    home: Home,
}

impl WebSocket {
    pub(crate) fn new(conn: Box<Conn>, home: Home) -> Self {
        WebSocket {
            conn: Some(conn),
            home,
        }
    }

    /// Drives the `Sink`'s message; records whether it is parked on the socket.
    fn poll_sink(&mut self, cx: &mut Context<'_>, flush: Flush) -> Poll<Result<()>> {
        let conn = self.conn();
        let result = conn.poll_sink(cx, flush);
        conn.park_sink(result.is_pending());
        if let Poll::Ready(Err(_)) = result {
            // The connection failed; a reader parked on another task must see it end.
            conn.wake_reader();
        }
        result
    }

    fn conn(&mut self) -> &mut Conn {
        // Only `Drop` takes the connection out.
        self.conn.as_mut().expect("connection present until drop")
    }

    /// The next message: `None` once the connection is closed (after the peer's Close, or
    /// after an error was returned).
    ///
    /// A protocol violation returns `Some(Err(..))` once; the connection is then closed
    /// with the matching code (1002, 1007, 1009).
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        let conn = self.conn();
        poll_fn(|cx| conn.poll_recv(cx)).await
    }

    /// Sends a message. Flushed at once unless more requests are already buffered, or part
    /// of one whose rest is on its way: then with the last reply of the batch, at the latest
    /// when `recv` waits (up to 64 KiB is held back this way); a loop that does something
    /// else than `recv` next and wants the reply out first calls [`flush`](Self::flush).
    /// Waits for a peer that does not read at most `send_timeout`, then closes it with 1008
    /// and returns an error.
    pub fn send(&mut self, message: Message) -> impl Future<Output = Result<()>> + Send + '_ {
        // A named future rather than an `async fn`: the gateway's future, which holds it
        // while a send waits, carries the message once (BENCHMARKS.md#memory-per-connection).
        SendMessage {
            ws: self,
            sending: Sending::new(message),
            started: false,
        }
    }

    /// `recv` as a poll function, for loops that wait on several things.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.conn().poll_recv(cx)
    }

    /// Writes out what `send` held back, as far as the socket takes it now (for loops that
    /// stop reading for a while: a reply held for input still arriving must not wait for a
    /// read that is not coming). An error is left to the next `recv` or `send`.
    pub(crate) fn poll_write_held(&mut self, cx: &mut Context<'_>) {
        let _ = self.conn().poll_flush(cx);
    }

    /// Counts a failed dispatch in the server's counters.
    pub(crate) fn count_dispatch_error(&mut self) {
        self.conn().count_dispatch_error();
    }

    /// Writes out everything queued (a message fed through the `Sink` included); waits at
    /// most `send_timeout` for a peer that does not read, as `send` does.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_sink(cx, Flush::Now)).await
    }

    /// Starts the close handshake with `code` and `reason`; the server completes it.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<()> {
        self.send(Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        })))
        .await
    }
}

/// The messages the peer sends, as [`recv`](WebSocket::recv) returns them.
impl Stream for WebSocket {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

/// Sends as [`send`](WebSocket::send) does; see "Which to use" on [`WebSocket`].
impl Sink<Message> for WebSocket {
    type Error = Error;

    /// Ready once the previous message is in the write buffer (which is flushed to make
    /// room when full, waiting at most `send_timeout`).
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if !this.conn().sink_holds_message() {
            return Poll::Ready(Ok(()));
        }
        this.poll_sink(cx, Flush::No)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<()> {
        let conn = self.get_mut().conn();
        conn.check_open()?;
        if conn.sink_holds_message() {
            // `poll_ready` was skipped: refuse rather than queue.
            return Err(Error::WebSocket(tungstenite::Error::WriteBufferFull(
                Box::new(message),
            )));
        }
        conn.sink_message(message);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_sink(cx, Flush::Batched)
    }

    /// Flushes, then sends Close 1000 (unless a close is under way) and flushes it.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.conn().sink_holds_message() {
            futures_lite::ready!(this.poll_sink(cx, Flush::Batched))?;
        }
        let conn = this.conn();
        if conn.can_close() {
            conn.sink_message(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })));
        }
        this.poll_sink(cx, Flush::Now)
    }
}

/// [`WebSocket::send`]'s future.
struct SendMessage<'a> {
    ws: &'a mut WebSocket,
    sending: Sending,
    /// The `Sink`'s message went first and the connection was found open.
    started: bool,
}

impl Future for SendMessage<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if !this.started {
            if this.ws.conn().sink_holds_message() {
                // A message fed through the `Sink` goes first.
                futures_lite::ready!(this.ws.poll_sink(cx, Flush::No))?;
            }
            this.ws.conn().start_send()?;
            this.started = true;
        }
        this.ws
            .conn()
            .poll_send(cx, &mut this.sending, Flush::Reply)
    }
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            *lock(&self.home) = Some(conn);
        }
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt, StreamExt};

    use super::*;
    use crate::ws::mock::{text_frame, Mock};
    use crate::ws::WebSocketConfig;

    /// A socket over `mock`, with `input` already received.
    fn socket(mock: &Mock, input: &[u8]) -> WebSocket {
        mock.socket(input, WebSocketConfig::default())
    }

    #[test]
    fn a_reply_held_after_an_abandoned_sink_flush_leaves_when_recv_waits() {
        let mock = Mock::default();
        let rest = text_frame(&"x".repeat(100));
        // A read of 64 bytes takes "a" and the start of the next frame: "A" is held.
        let input = [text_frame("a"), rest[..57].to_vec()].concat();
        mock.0.lock().unwrap().input = input;
        let mut ws = mock.socket(&[], WebSocketConfig::default().read_buffer_size(64));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut ws = Pin::new(&mut ws);
        assert!(matches!(
            ws.as_mut().poll_next(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        // A `Sink` flush parks on a socket that takes nothing, then is abandoned.
        mock.block_writes(true);
        ws.as_mut().start_send(Message::text("x")).unwrap();
        assert!(ws.as_mut().poll_flush(&mut cx).is_pending());
        mock.block_writes(false);
        // The loop answers "a" and waits for the next request: both leave.
        futures_lite::future::block_on(ws.as_mut().get_mut().send(Message::text("A"))).unwrap();
        assert!(ws.as_mut().poll_next(&mut cx).is_pending());
        assert_eq!(mock.0.lock().unwrap().output, b"\x81\x01x\x81\x01A");
    }

    #[test]
    fn fed_messages_leave_in_one_write_on_flush() {
        let mock = Mock::default();
        let mut ws = socket(&mock, &[]);
        futures_lite::future::block_on(async {
            for text in ["a", "b", "c"] {
                ws.feed(Message::text(text)).await.unwrap();
            }
            assert_eq!(mock.0.lock().unwrap().writes, 0, "feed does not write");
            SinkExt::flush(&mut ws).await.unwrap();
            assert_eq!(mock.0.lock().unwrap().writes, 1);
            // The inherent `send` and `flush` keep the order of what was fed.
            ws.feed(Message::text("d")).await.unwrap();
            ws.send(Message::text("e")).await.unwrap();
            ws.feed(Message::text("f")).await.unwrap();
            WebSocket::flush(&mut ws).await.unwrap();
        });
        let pipe = mock.0.lock().unwrap();
        assert_eq!(pipe.writes, 3);
        assert_eq!(
            pipe.output,
            b"\x81\x01a\x81\x01b\x81\x01c\x81\x01d\x81\x01e\x81\x01f"
        );
    }

    #[test]
    fn the_stream_yields_what_the_peer_sent_and_close_sends_1000() {
        let mock = Mock::default();
        let input = [text_frame("hi"), text_frame("there")].concat();
        let mut ws = socket(&mock, &input);
        futures_lite::future::block_on(async {
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("there"));
            SinkExt::close(&mut ws).await.unwrap();
        });
        assert_eq!(mock.0.lock().unwrap().output, b"\x88\x02\x03\xe8");
    }

    #[test]
    fn start_send_without_poll_ready_is_refused_not_queued() {
        let mock = Mock::default();
        let mut ws = socket(&mock, &[]);
        let mut ws = Pin::new(&mut ws);
        ws.as_mut().start_send(Message::text("1")).unwrap();
        let err = ws.as_mut().start_send(Message::text("2")).unwrap_err();
        assert!(matches!(
            err,
            Error::WebSocket(tungstenite::Error::WriteBufferFull(_))
        ));
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_parked_sink_keeps_the_write_waker_while_the_reader_polls() {
        let mock = Mock::default();
        mock.block_writes(true);
        let mut ws = socket(&mock, &[]);
        let mut ws = Pin::new(&mut ws);
        let (sender, reader) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let sender_waker = std::task::Waker::from(Arc::clone(&sender));
        let reader_waker = std::task::Waker::from(Arc::clone(&reader));
        let mut sender_cx = Context::from_waker(&sender_waker);
        let mut reader_cx = Context::from_waker(&reader_waker);

        ws.as_mut().start_send(Message::text("x")).unwrap();
        assert!(ws.as_mut().poll_flush(&mut sender_cx).is_pending());
        for _ in 0..3 {
            assert!(ws.as_mut().poll_next(&mut reader_cx).is_pending());
            let pipe = mock.0.lock().unwrap();
            let writer = pipe.writer.as_ref().expect("a write waker");
            // The reader left the sender's waker registered.
            assert!(
                writer.will_wake(&sender_waker),
                "the reader took the write waker"
            );
        }
        // Once the peer reads, the sender is the one woken and finishes its flush.
        let writer = {
            let mut pipe = mock.0.lock().unwrap();
            pipe.blocked = false;
            pipe.writer.take().unwrap()
        };
        writer.wake();
        assert_eq!(sender.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(ws.as_mut().poll_flush(&mut sender_cx).is_ready());
        assert_eq!(mock.0.lock().unwrap().output, b"\x81\x01x");
    }

    #[test]
    fn split_halves_are_send() {
        fn send<T: Send>(_: &T) {}
        let mock = Mock::default();
        let (sink, stream) = socket(&mock, &[]).split::<Message>();
        send(&sink);
        send(&stream);
    }
}
