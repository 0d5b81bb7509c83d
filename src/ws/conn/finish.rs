//! The end of a connection: our Close, the peer's, the half-close, and the report.

use std::pin::Pin;

use futures_lite::future::poll_fn;
use tungstenite::protocol::frame::coding::CloseCode;

use super::{Conn, Reader};
use crate::rt::Timer;
use crate::ws::close::{Closer, Closing};
use crate::ws::CloseInfo;

impl Conn {
    /// Closes the connection: sends Close `code` unless a close is already under way,
    /// flushes, waits for the peer's Close (unless the connection failed), half-closes
    /// and drains, all within `close_timeout`. Returns how the connection ended.
    pub(crate) async fn finish(&mut self, code: CloseCode) -> CloseInfo {
        // An error read ahead but never returned (the gateway stopped reading) still
        // decides the close code.
        if let Some(Err(e)) = self.peeked.take() {
            let _ = self.outcome(Err(e));
        }
        self.close_for_server(code);
        let timeout = self.config.close_timeout;
        let closing = async {
            let flushed = poll_fn(|cx| self.poll_flush(cx)).await;
            if flushed.is_err() || self.framing.state().aborted() {
                return;
            }
            // Wait for the peer's Close (ours initiated) or for the end of the stream,
            // unless we closed because the connection failed.
            if !self.framing.state().failed() {
                while let Some(Ok(_)) = poll_fn(|cx| self.poll_next(cx, Reader::Close)).await {}
            }
            let _ = poll_fn(|cx| Pin::new(&mut *self.io).poll_close(cx)).await;
            // Drain until EOF so unread input does not turn our close into a reset.
            let mut sink = [0u8; 256];
            while let Ok(1..) = poll_fn(|cx| Pin::new(&mut *self.io).poll_read(cx, &mut sink)).await
            {
            }
        };
        futures_lite::future::or(closing, async {
            Timer::after(timeout).await;
        })
        .await;
        self.ended()
    }

    /// How the connection ended (1006 when no close frame went either way), counted once:
    /// after [`finish`](Self::finish), or when the connection is dropped without finishing
    /// (shutdown deadline).
    pub(crate) fn ended(&mut self) -> CloseInfo {
        self.publish_tally();
        let closing = self
            .framing
            .state_mut()
            .take_first()
            .unwrap_or_else(|| Closing::new(CloseCode::Abnormal, "", Closer::Us));
        let code = u16::from(closing.code);
        self.stats.closed(code);
        CloseInfo {
            code,
            reason: closing.reason,
            by_peer: closing.by == Closer::Peer,
            duration: self.opened.elapsed(),
        }
    }
}
