//! The connection driver behind [`WebSocket`](crate::WebSocket).
//!
//! RFC 6455 framing is [`Framing`] (sans-I/O, buffers released while idle); this module
//! drives it over any `AsyncRead + AsyncWrite` stream. Writes are batched: a `send` made while
//! more requests are already buffered (or part of one, read by a read that filled its buffer)
//! is not flushed until the buffered input is consumed, so a burst of pipelined requests costs
//! one read and one write syscall, and a burst of large ones a read each and a write per 64 KiB
//! of replies. Pings, the idle timeout, a fairness budget and the close codes of protocol
//! errors are handled here too.

mod close;
mod live;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_lite::future::poll_fn;
use tungstenite::error::Error as WsError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::error::{Error, Result};
use crate::log::event;
use crate::rt::{self, Signal, Stream, Timer};
use crate::ws::framing::Framing;
use crate::ws::{Outbox, Popped, Stats, WebSocketConfig};

pub use close::{close_code, CloseInfo};
use close::{close_code_of, reason_for, Closer, Closing};
use live::{still_drained, would_block, Live, Offline};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading and writing.
    Open,
    /// Reads are over for the gateway (it closed, the peer closed, the connection failed or
    /// idled): `recv` answers `None`; what is queued still goes out.
    Closing,
    /// [`Conn::finish`] reads until the peer's Close or the end of the stream.
    AwaitingPeer,
    /// Writing is pointless (the peer vanished or stopped reading): dropped without a close.
    Aborted,
}

impl State {
    fn reading(self) -> bool {
        matches!(self, State::Open | State::AwaitingPeer)
    }
}

/// Replies held back for a frame still arriving stop at this many bytes: a larger write
/// saves no syscalls worth having, and delays the first reply by a whole read of the next
/// large frame (BENCHMARKS.md, "Replies held for a frame on its way").
const HOLD_BACK: usize = 64 * 1024;

pub(crate) struct Conn {
    io: Stream,
    framing: Framing,
    /// A message (or error) read ahead from bytes already buffered: more input is pending,
    /// so sends are not flushed yet.
    peeked: Option<tungstenite::Result<Message>>,
    /// A message was returned and nothing has been parsed behind it yet: `send` parses
    /// ahead (after the message it answers was consumed, so its bytes no longer pin the
    /// read buffer) to decide whether to flush.
    look_ahead_due: bool,
    state: State,
    /// The close sent or received first.
    closing: Option<Closing>,
    /// Messages left in this turn.
    budget: u32,
    /// Bytes left to read in this turn.
    read_left: usize,
    /// The peer sent bytes since the last check (for the idle timeout).
    heard: bool,
    /// Non-zero once a read emptied the socket: wait for readiness before reading again
    /// (counts the polls that found none; see `Live`).
    drained: u8,
    /// The last read took all it was offered: more input is most likely in the socket.
    filled: bool,
    /// A send through the `Sink` (on its own task, after `split`) waits for the socket to
    /// take its bytes and flushes them itself: reads do not register for writing meanwhile,
    /// or the two tasks would take turns replacing each other's write waker (each
    /// replacement wakes the other) for as long as the peer is slow.
    sink_parked: bool,
    config: Arc<WebSocketConfig>,
    stats: Arc<Stats>,
    opened: Instant,
    last_seen: Instant,
    /// The ping interval's timer and when it fires next.
    ping_timer: Option<(Timer, Instant)>,
    /// The idle timeout's timer and when it fires (the deadline is checked then).
    idle_timer: Option<(Timer, Instant)>,
    /// The waker the timers hold: they are polled only when due or for a new waker.
    timer_waker: Option<Waker>,
    signal: Arc<Signal>,
    outbox: Option<Arc<Outbox>>,
    /// The connection id, for logs.
    id: u64,
    /// Counts not yet added to the server's counters.
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    frames_in: u64,
    bytes_in: u64,
    frames_out: u64,
    bytes_out: u64,
}

impl Conn {
    pub(crate) fn new(
        io: Stream,
        read_ahead: Vec<u8>,
        config: Arc<WebSocketConfig>,
        stats: Arc<Stats>,
        signal: Arc<Signal>,
    ) -> Self {
        let framing = Framing::new(&read_ahead, &config);
        let now = Instant::now();
        let mut conn = Conn {
            io,
            framing,
            peeked: None,
            look_ahead_due: false,
            state: State::Open,
            closing: None,
            budget: 0,
            read_left: 0,
            heard: false,
            drained: 0,
            filled: false,
            sink_parked: false,
            ping_timer: config
                .ping_interval
                .map(|every| (Timer::interval_at(now + every, every), now + every)),
            idle_timer: config
                .idle_timeout
                .map(|idle| (Timer::at(now + idle), now + idle)),
            timer_waker: None,
            config,
            stats,
            opened: now,
            last_seen: now,
            signal,
            outbox: None,
            id: 0,
            tally: Tally::default(),
        };
        conn.refill();
        conn
    }

    /// Names the connection (for logs) and attaches the queue server pushes arrive on.
    pub(crate) fn attach(mut self, id: u64, outbox: Arc<Outbox>) -> Self {
        self.id = id;
        self.outbox = Some(outbox);
        self
    }

    /// Moves queued pushes into the write buffer (as far as it has room).
    fn drain_outbox(&mut self, cx: &mut Context<'_>) {
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
                    self.stop_reading();
                    self.queue_close(CloseCode::Policy);
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

    fn live<'a, 'b>(&'a mut self, cx: &'a mut Context<'b>) -> (&'a mut Framing, Live<'a, 'b>) {
        (
            &mut self.framing,
            Live {
                io: &mut *self.io,
                cx,
                read_left: &mut self.read_left,
                heard: &mut self.heard,
                drained: &mut self.drained,
                filled: &mut self.filled,
            },
        )
    }

    /// Reads are over (unless writing already is).
    fn stop_reading(&mut self) {
        if self.state != State::Aborted {
            self.state = State::Closing;
        }
    }

    /// Starts a new turn: full message and byte budgets.
    fn refill(&mut self) {
        self.budget = self.config.fairness_budget.max(1);
        self.read_left = self.turn_bytes();
    }

    fn turn_bytes(&self) -> usize {
        (self.config.fairness_budget.max(1) as usize)
            .saturating_mul(self.config.read_buffer_size.max(1024))
    }

    /// Turns a read result into what `recv` returns, recording close and failure.
    fn outcome(&mut self, result: tungstenite::Result<Message>) -> Option<Result<Message>> {
        match result {
            Ok(message) => {
                self.tally.frames_in += 1;
                self.tally.bytes_in += message.len() as u64;
                if let Message::Close(frame) = &message {
                    self.closing.get_or_insert_with(|| match frame {
                        Some(f) => Closing::new(f.code, f.reason.as_str(), Closer::Peer),
                        None => Closing::new(CloseCode::Status, "", Closer::Peer),
                    });
                }
                Some(Ok(message))
            }
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                self.stop_reading();
                None
            }
            Err(e) => Some(Err(self.fail(e))),
        }
    }

    /// Fails the connection: queues the close frame for `e`'s code, stops reading.
    #[cold]
    fn fail(&mut self, e: WsError) -> Error {
        self.stop_reading();
        match close_code_of(&e) {
            Some(code) => {
                event!(
                    info,
                    "conn={} closing with {}: {e}",
                    self.id,
                    u16::from(code)
                );
                self.queue_close(code)
            }
            None => {
                self.state = State::Aborted;
                self.closing
                    .get_or_insert(Closing::new(CloseCode::Abnormal, "", Closer::Us));
            }
        }
        Error::WebSocket(e)
    }

    /// Queues a close frame with `code` (once); the server flushes it.
    fn queue_close(&mut self, code: CloseCode) {
        self.closing
            .get_or_insert_with(|| Closing::new(code, reason_for(code), Closer::Us));
        let frame = CloseFrame {
            code,
            reason: reason_for(code).into(),
        };
        self.framing.close(Some(frame));
    }

    /// Whether the next request is on its way, so that a reply can wait to leave with its
    /// reply: part of a frame is buffered by a read that took all it was offered (the rest
    /// is most likely in the socket already), and less than [`HOLD_BACK`] waits to be
    /// written. The reader flushes before it waits for the socket, so a reply held back
    /// goes out at the latest when the input runs out.
    fn rest_on_its_way(&self) -> bool {
        self.filled && self.framing.holds_partial_frame() && self.framing.unsent() < HOLD_BACK
    }

    /// Reads ahead from already-buffered bytes only.
    fn look_ahead(&mut self) {
        if self.framing.waits_for_input() {
            return; // nothing to read ahead from
        }
        match self.framing.read(&mut Offline) {
            Err(e) if would_block(&e) => {}
            other => self.peeked = Some(other),
        }
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        if let Some(result) = self.peeked.take() {
            // Nothing behind an error is read: a frame after a protocol violation must not
            // be answered (a ping would get its pong after our close).
            self.look_ahead_due = result.is_ok();
            return Poll::Ready(self.outcome(result));
        }
        if !self.state.reading() {
            let _ = self.poll_flush_for_reader(cx);
            return Poll::Ready(None);
        }
        self.poll_read(cx)
    }

    /// Reads the next message from the stream (within the turn's budgets), flushing,
    /// draining the outbox and running the timers while it waits.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        if self.budget == 0 {
            // Let the other connections on this thread run.
            self.refill();
            if let Poll::Ready(Err(e)) = self.poll_flush_for_reader(cx) {
                return Poll::Ready(self.outcome(Err(e)));
            }
            cx.waker().wake_by_ref();
            self.publish_tally();
            return Poll::Pending;
        }
        loop {
            // Nothing buffered and the socket not ready since the last read emptied it:
            // `WouldBlock` without a parse attempt (`Live` answers the same way).
            // (An error polling readiness is left to that read to return.)
            let skip = self.framing.waits_for_input()
                && matches!(
                    still_drained(&mut *self.io, cx, &mut self.drained),
                    Ok(true)
                );
            let read = if skip {
                Err(WsError::Io(io::ErrorKind::WouldBlock.into()))
            } else {
                let (framing, mut live) = self.live(cx);
                framing.read(&mut live)
            };
            if std::mem::take(&mut self.heard) {
                self.last_seen = rt::now();
            }
            match read {
                Ok(message) => {
                    self.budget -= 1;
                    self.look_ahead_due = true;
                    return Poll::Ready(self.outcome(Ok(message)));
                }
                Err(e) if would_block(&e) => {
                    self.refill();
                    self.drain_outbox(cx);
                    if let Poll::Ready(Err(e)) = self.poll_flush_for_reader(cx) {
                        return Poll::Ready(self.outcome(Err(e)));
                    }
                    if self.poll_timers(cx) {
                        continue;
                    }
                    if !self.state.reading() {
                        return Poll::Ready(None);
                    }
                    self.publish_tally();
                    return Poll::Pending;
                }
                Err(e) => {
                    // Replies held back for the frame that was arriving leave first (the
                    // stream may have ended in the middle of it: they are still owed).
                    let _ = self.poll_flush_for_reader(cx);
                    return Poll::Ready(self.outcome(Err(e)));
                }
            }
        }
    }

    /// Sends due pings, closes an idle peer, starts the close on shutdown; `true` when
    /// something was queued.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        let mut queued = false;
        // A shutdown wakes every connection through its outbox.
        if self.framing.can_write() && self.signal.is_set() {
            self.start_close(CloseCode::Away);
            return true;
        }
        // Polling a timer reads the clock: with a message per wake-up, one read for both
        // (the waker they hold is still this task's) is enough until one is due.
        let same_waker = (self.timer_waker.as_ref()).is_some_and(|w| w.will_wake(cx.waker()));
        if same_waker {
            let now = rt::now();
            let due = |timer: &Option<(Timer, Instant)>| timer.as_ref().is_some_and(|t| t.1 <= now);
            if !due(&self.ping_timer) && !due(&self.idle_timer) {
                return false;
            }
        }
        if !same_waker {
            self.timer_waker = Some(cx.waker().clone());
        }
        if let (Some((timer, due)), Some(every)) = (&mut self.ping_timer, self.config.ping_interval)
        {
            if let Poll::Ready(fired) = Pin::new(timer).poll(cx) {
                *due = fired + every;
                if self.framing.can_write() {
                    let _ = self.framing.write(Message::Ping(Default::default()));
                    self.tally.frames_out += 1;
                    queued = true;
                }
            }
        }
        if let (Some((timer, due)), Some(idle)) = (&mut self.idle_timer, self.config.idle_timeout) {
            if Pin::new(&mut *timer).poll(cx).is_ready() {
                let deadline = self.last_seen + idle;
                if Instant::now() >= deadline {
                    self.idle_timer = None;
                    self.stop_reading();
                    self.queue_close(CloseCode::Away);
                    queued = true;
                } else {
                    timer.set_at(deadline);
                    *due = deadline;
                    // Register the new deadline.
                    let _ = Pin::new(timer).poll(cx);
                }
            }
        }
        queued
    }

    /// [`poll_flush`](Self::poll_flush) from the read side: left to a `Sink` send parked on
    /// the socket, whose waker must stay the registered one (a stream wakes only the waker
    /// of its latest `poll_write`). A send abandoned while parked leaves its bytes to the
    /// next send, flush or close, or to the server's close.
    fn poll_flush_for_reader(&mut self, cx: &mut Context<'_>) -> Poll<tungstenite::Result<()>> {
        if self.sink_parked {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(cx)
    }

    /// Writes everything buffered. `Ready(Ok)` once the socket took it all.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<tungstenite::Result<()>> {
        if self.state == State::Aborted {
            return Poll::Ready(Ok(()));
        }
        let (framing, mut live) = self.live(cx);
        match framing.flush(&mut live) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) if would_block(&e) => Poll::Pending,
            Err(e) => {
                self.state = State::Aborted;
                Poll::Ready(Err(e))
            }
        }
    }

    /// Queues `message`; gives it back when the write buffer is full.
    fn write(&mut self, message: Message) -> std::result::Result<(), WsError> {
        let len = message.len() as u64;
        self.framing.write(message)?;
        self.tally.frames_out += 1;
        self.tally.bytes_out += len;
        Ok(())
    }

    /// Fails with `AlreadyClosed` once the connection is closed and reads are over.
    pub(crate) fn check_open(&self) -> Result<()> {
        if !self.state.reading() && self.closing.is_some() {
            return Err(Error::WebSocket(WsError::AlreadyClosed));
        }
        Ok(())
    }

    /// Whether a Close frame can still be sent (none was sent or queued).
    pub(crate) fn can_close(&self) -> bool {
        self.framing.can_write() && self.state != State::Aborted
    }

    /// Queues `message` and flushes it unless more input is already buffered or on its
    /// way ([`Flush::Reply`]); waits at most `send_timeout` for a peer that does not read,
    /// then fails the connection with 1008.
    pub(crate) async fn send(&mut self, message: Message) -> Result<()> {
        self.check_open()?;
        // The socket's owner sends: no `Sink` send is parked (one abandoned while parked
        // left the mark, which would keep the reader from flushing what this holds back).
        self.sink_parked = false;
        let mut sending = Sending::new(message);
        poll_fn(|cx| self.poll_send(cx, &mut sending, Flush::Reply)).await
    }

    /// Drives `sending`: its message into the write buffer (flushing to make room when it is
    /// full), then, with [`Flush::Batched`], out to the socket unless more input is already
    /// buffered (the reply of a batch is flushed with the last one), with [`Flush::Reply`]
    /// also not while the next request is on its way, with [`Flush::Now`] out to the
    /// socket. The whole send,
    /// however often it is polled, waits at most `send_timeout` for the socket.
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
                        .get_or_insert_with(|| Timer::after(timeout));
                    if Pin::new(timer).poll(cx).is_ready() {
                        return Poll::Ready(Err(self.slow_consumer()));
                    }
                    self.publish_tally();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Wakes the task reading this connection, e.g. after a send on another task failed
    /// the connection, so that its `recv` returns `None`.
    pub(crate) fn wake_reader(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.wake();
        }
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
        self.state = State::Aborted;
        self.closing.get_or_insert_with(|| {
            Closing::new(CloseCode::Policy, reason_for(CloseCode::Policy), Closer::Us)
        });
        Error::WebSocket(WsError::Io(io::ErrorKind::TimedOut.into()))
    }

    /// Closes the connection: sends Close `code` unless a close is already under way,
    /// flushes, waits for the peer's Close (unless the connection failed), half-closes
    /// and drains, all within `close_timeout`. Returns how the connection ended.
    pub(crate) async fn finish(&mut self, code: CloseCode) -> CloseInfo {
        // An error read ahead but never returned (the gateway stopped reading) still
        // decides the close code.
        if let Some(Err(e)) = self.peeked.take() {
            let _ = self.outcome(Err(e));
        }
        if self.framing.can_write() && self.state != State::Aborted {
            self.queue_close(code);
        }
        let timeout = self.config.close_timeout;
        let closing = async {
            if poll_fn(|cx| self.poll_flush(cx)).await.is_err() || self.state == State::Aborted {
                return;
            }
            // Wait for the peer's Close (ours initiated) or for the end of the stream,
            // unless we closed because the connection failed.
            if !self.closing.as_ref().is_some_and(Closing::failed) {
                self.state = State::AwaitingPeer;
                while let Some(Ok(_)) = poll_fn(|cx| self.poll_recv(cx)).await {}
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
            .closing
            .take()
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

    /// Adds this connection's counts since the last call to the server's counters: once per
    /// batch rather than four atomic operations per message.
    fn publish_tally(&mut self) {
        let t = std::mem::take(&mut self.tally);
        if t.frames_in | t.frames_out != 0 {
            Stats::add(&self.stats.frames_in, t.frames_in);
            Stats::add(&self.stats.bytes_in, t.bytes_in);
            Stats::add(&self.stats.frames_out, t.frames_out);
            Stats::add(&self.stats.bytes_out, t.bytes_out);
        }
    }

    /// Counts a failed dispatch in the server's counters.
    pub(crate) fn count_dispatch_error(&self) {
        Stats::add(&self.stats.dispatch_errors, 1);
    }

    /// Starts a server-initiated close with `code` (shutdown: 1001).
    pub(crate) fn start_close(&mut self, code: CloseCode) {
        if self.framing.can_write() {
            self.queue_close(code);
        }
        self.stop_reading();
    }
}

/// One send in progress: the message not yet in the write buffer and the `send_timeout`
/// deadline, started when the send first had to wait.
#[derive(Default)]
pub(crate) struct Sending {
    pub(crate) message: Option<Message>,
    deadline: Option<Timer>,
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

#[cfg(test)]
mod tests;
