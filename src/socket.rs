//! `WebSocket`: one upgraded connection, as the gateway sees it. The connection itself
//! (framing, batching, timers, closing) is driven by [`Conn`] in `conn.rs`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_lite::future::poll_fn;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::sync::lock;

/// Where a dropped [`WebSocket`] leaves its connection for the server to close.
pub(crate) type Home = Arc<Mutex<Option<Box<Conn>>>>;

/// One upgraded WebSocket connection: receive with [`recv`](Self::recv), send with
/// [`send`](Self::send).
///
/// Pings are answered automatically (and still returned by `recv`, as in NestForge); the
/// server pings and closes idle peers per [`WebSocketConfig`](crate::WebSocketConfig). Dropping the socket (or
/// returning from `on_connect`) does not cut the TCP connection: the server completes the
/// close handshake (close code 1000, or the code of the error that ended the connection).
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

    /// Sends a message. Flushed at once unless more requests are already buffered (then
    /// with the last reply of the batch). Waits for a peer that does not read at most
    /// `send_timeout`, then closes it with 1008 and returns an error.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.conn().send(message).await
    }

    /// `recv` as a poll function, for loops that wait on several things.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.conn().poll_recv(cx)
    }

    /// Counts a failed dispatch in the server's counters.
    pub(crate) fn count_dispatch_error(&mut self) {
        self.conn().count_dispatch_error();
    }

    /// Writes out everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        let conn = self.conn();
        poll_fn(|cx| conn.poll_flush(cx))
            .await
            .map_err(Error::WebSocket)
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
