//! Sending: messages into the write buffer, flushed unless more input is on its way; pushes
//! drained from the outbox; a peer that stops reading dropped after `send_timeout`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tungstenite::error::Error as WsError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use super::live::would_block;
use super::Conn;
use crate::error::{Error, Result};
use crate::log::event;
use crate::rt::Timer;
use crate::ws::Popped;

/// Replies held back for a frame still arriving stop at this many bytes: a larger write
/// saves no syscalls worth having, and delays the first reply by a whole read of the next
/// large frame (BENCHMARKS.md#replies-held-for-a-frame-on-its-way).
pub(super) const HOLD_BACK: usize = 64 * 1024;

/// One send in progress: the message not yet in the write buffer and the `send_timeout`
/// deadline, started when the send first had to wait.
#[derive(Default)]
pub(crate) struct Sending {
    pub(crate) message: Option<Message>,
    /// Set when the socket first makes the send wait (boxed: rarely there).
    deadline: Option<Box<Timer>>,
}

impl Sending {
    pub(crate) fn new(message: Message) -> Self {
        Sending {
            message: Some(message),
            deadline: None,
        }
    }
}

/// How far [`Conn::poll_send`] takes a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Into the write buffer only (`Sink::poll_ready`).
    No,
    /// To the socket, unless a whole request is already buffered (`Sink::poll_flush`: after
    /// `split`, the reading task may be busy elsewhere, so nothing waits for input that is
    /// still arriving).
    Batched,
    /// As `Batched`, and not while the next request is on its way either (`send`: the task
    /// that sends is the one that reads next, and it flushes before it waits).
    Reply,
    /// To the socket (`Sink::poll_close`).
    Now,
}

impl Conn {
    /// Fails with `AlreadyClosed` once the gateway's reads are over (the connection is
    /// closing or closed).
    pub(crate) fn check_open(&self) -> Result<()> {
        if !self.framing.state().gateway_reads() {
            return Err(Error::WebSocket(WsError::AlreadyClosed));
        }
        Ok(())
    }

    /// Whether a Close frame can still be sent (none was sent or received).
    pub(crate) fn can_close(&self) -> bool {
        self.framing.can_write()
    }

    /// Starts a send by the socket's owner (then driven by `poll_send` with
    /// [`Flush::Reply`]): fails once the connection is closing.
    pub(crate) fn start_send(&mut self) -> Result<()> {
        self.check_open()?;
        // The socket's owner sends: no `Sink` send is parked (one abandoned while parked
        // left the mark, which would keep the reader from flushing what this holds back).
        self.sink_parked = false;
        Ok(())
    }

    /// Queues `message` and flushes it unless more input is already buffered or on its
    /// way ([`Flush::Reply`]); waits at most `send_timeout` for a peer that does not read,
    /// then fails the connection with 1008.
    #[cfg(test)]
    pub(crate) async fn send(&mut self, message: Message) -> Result<()> {
        self.start_send()?;
        let mut sending = Sending::new(message);
        futures_lite::future::poll_fn(|cx| self.poll_send(cx, &mut sending, Flush::Reply)).await
    }

    /// Drives `sending`: its message into the write buffer (flushing to make room when it is
    /// full), then, with [`Flush::Batched`], out to the socket unless more input is already
    /// buffered (the reply of a batch is flushed with the last one), with [`Flush::Reply`]
    /// also not while the next request is on its way, with [`Flush::Now`] out to the
    /// socket. The whole send, however often it is polled, waits at most `send_timeout` for
    /// the socket.
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        sending: &mut Sending,
        flush: Flush,
    ) -> Poll<Result<()>> {
        let result = self.poll_send_once(cx, sending, flush);
        if result.is_ready() {
            sending.deadline = None;
        }
        result
    }

    fn poll_send_once(
        &mut self,
        cx: &mut Context<'_>,
        sending: &mut Sending,
        flush: Flush,
    ) -> Poll<Result<()>> {
        loop {
            if let Some(message) = sending.message.take() {
                match self.write(message) {
                    Ok(()) => {}
                    Err(WsError::WriteBufferFull(message)) => sending.message = Some(*message),
                    Err(e) => return Poll::Ready(Err(self.fail(e))),
                }
            }
            let queued = sending.message.is_none();
            if queued && flush == Flush::No {
                return Poll::Ready(Ok(()));
            }
            if queued && matches!(flush, Flush::Batched | Flush::Reply) {
                if std::mem::take(&mut self.look_ahead_due) {
                    self.look_ahead();
                }
                if self.peeked.is_some() || (flush == Flush::Reply && self.rest_on_its_way()) {
                    return Poll::Ready(Ok(()));
                }
            }
            match self.poll_flush(cx) {
                Poll::Ready(Ok(())) if queued => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.fail(e))),
                Poll::Pending => {
                    let timeout = self.config.send_timeout;
                    let timer = sending
                        .deadline
                        .get_or_insert_with(|| Box::new(Timer::after(timeout)));
                    if Pin::new(&mut **timer).poll(cx).is_ready() {
                        return Poll::Ready(Err(self.slow_consumer()));
                    }
                    self.publish_tally();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Whether the next request is on its way, so that a reply can wait to leave with its
    /// reply: part of a frame is buffered by a read that took all it was offered (the rest
    /// is most likely in the socket already), and less than [`HOLD_BACK`] waits to be
    /// written. The reader flushes before it waits for the socket, so a reply held back
    /// goes out at the latest when the input runs out.
    fn rest_on_its_way(&self) -> bool {
        self.filled && self.framing.holds_partial_frame() && self.framing.unsent() < HOLD_BACK
    }

    /// Queues `message`; gives it back when the write buffer is full.
    pub(super) fn write(&mut self, message: Message) -> std::result::Result<(), WsError> {
        let len = message.len() as u64;
        self.framing.write(message)?;
        self.tally.frames_out += 1;
        self.tally.bytes_out += len;
        Ok(())
    }

    /// [`poll_flush`](Self::poll_flush) from the read side: left to a `Sink` send parked on
    /// the socket, whose waker must stay the registered one (a stream wakes only the waker
    /// of its latest `poll_write`). A send abandoned while parked leaves its bytes to the
    /// next send, flush or close, or to the server's close.
    pub(super) fn poll_flush_for_reader(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<tungstenite::Result<()>> {
        if self.sink_parked {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(cx)
    }

    /// Writes everything buffered. `Ready(Ok)` once the socket took it all (or nothing is
    /// worth writing any more: the connection was given up).
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<tungstenite::Result<()>> {
        if self.framing.state().aborted() {
            return Poll::Ready(Ok(()));
        }
        let (framing, mut live) = self.live(cx);
        match framing.flush(&mut live) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) if would_block(&e) => Poll::Pending,
            Err(e) => {
                self.framing.state_mut().terminate(true, None);
                Poll::Ready(Err(e))
            }
        }
    }

    /// Moves queued pushes into the write buffer (as far as it has room).
    pub(super) fn drain_outbox(&mut self, cx: &mut Context<'_>) {
        let Some(outbox) = self.outbox.take() else {
            return;
        };
        while self.framing.can_write() {
            match outbox.pop(cx.waker()) {
                Popped::Empty => break,
                Popped::Overflowed => {
                    event!(
                        info,
                        "conn={} outbound queue overflow: closing with 1008",
                        self.id
                    );
                    self.close_for_server(CloseCode::Policy);
                    break;
                }
                Popped::Message(message) => match self.write(message) {
                    Ok(()) => {}
                    Err(WsError::WriteBufferFull(message)) => {
                        outbox.unpop(*message);
                        break;
                    }
                    Err(e) => {
                        self.fail(e);
                        break;
                    }
                },
            }
        }
        self.outbox = Some(outbox);
    }

    /// Wakes the task reading this connection, e.g. after a send on another task failed
    /// the connection, so that its `recv` returns `None`.
    pub(crate) fn wake_reader(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.wake();
        }
    }

    /// Whether a message fed through the `Sink` waits to be queued.
    pub(crate) fn sink_holds_message(&self) -> bool {
        self.sink.as_ref().is_some_and(|s| s.message.is_some())
    }

    /// Sets the `Sink`'s message (none is held: see `sink_holds_message`).
    pub(crate) fn sink_message(&mut self, message: Message) {
        self.sink.get_or_insert_with(Box::default).message = Some(message);
    }

    /// Drives the `Sink`'s message (or, with none, flushes as `flush` says), keeping its
    /// deadline across polls.
    pub(crate) fn poll_sink(&mut self, cx: &mut Context<'_>, flush: Flush) -> Poll<Result<()>> {
        let mut sending = self.sink.take();
        let mut spare = Sending::default();
        let result = self.poll_send(cx, sending.as_deref_mut().unwrap_or(&mut spare), flush);
        if sending.is_none() && spare.deadline.is_some() {
            sending = Some(Box::new(spare));
        }
        self.sink = sending;
        result
    }

    /// Marks whether a `Sink` send is parked on the socket (see `sink_parked`).
    pub(crate) fn park_sink(&mut self, parked: bool) {
        self.sink_parked = parked;
    }

    /// The peer stopped reading: record 1008 and drop the connection without waiting.
    #[cold]
    fn slow_consumer(&mut self) -> Error {
        event!(
            info,
            "conn={} not reading for {:?}: dropped (1008)",
            self.id,
            self.config.send_timeout
        );
        self.abort(CloseCode::Policy);
        Error::WebSocket(WsError::Io(io::ErrorKind::TimedOut.into()))
    }
}
