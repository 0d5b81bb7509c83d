//! The connection driver behind [`WebSocket`](crate::WebSocket).
//!
//! RFC 6455 framing is [`Framing`] (sans-I/O, buffers released while idle, the close
//! handshake's state); this module drives it over any byte stream: reading (here), sending
//! and batching (`send`), pings, the idle timeout and shutdown (`timers`), the close
//! (`finish`). Writes are batched: a `send` made while more requests are already buffered
//! (or part of one, read by a read that filled its buffer) is not flushed until the buffered
//! input is consumed, so a burst of pipelined requests costs one read and one write syscall,
//! and a burst of large ones a read each and a write per 64 KiB of replies. A fairness
//! budget lets the other connections of the thread run.

mod finish;
mod live;
mod send;
#[cfg(test)]
mod tests;
mod timers;

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tungstenite::error::Error as WsError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

pub(crate) use send::{Flush, Sending};

use super::close::{close_code_of, Closing};
use super::framing::Framing;
use super::{Extensions, Outbox, Stats, WebSocketConfig};
use crate::error::{Error, Result};
use crate::log::event;
use crate::rt::{self, Deadlines, Signal, Stream};
use live::{still_empty, would_block, Live};

pub(crate) struct Conn {
    io: Stream,
    /// The framing and the close handshake's state.
    framing: Framing,
    /// A message (or error) read ahead from bytes already buffered: more input is pending,
    /// so sends are not flushed yet.
    peeked: Option<tungstenite::Result<Message>>,
    /// A message was returned and nothing has been parsed behind it yet: `send` parses
    /// ahead (after the message it answers was consumed, so its bytes no longer pin the
    /// read buffer) to decide whether to flush.
    look_ahead_due: bool,
    /// Messages left in this turn.
    budget: u32,
    /// Bytes left to read in this turn.
    read_left: usize,
    /// The peer sent bytes since the last check (for the idle timeout).
    heard: bool,
    /// The last read emptied the socket: wait for its readiness before reading again (see
    /// `Io::arm_readable`).
    socket_empty: bool,
    /// The last read took all it was offered: more input is most likely in the socket.
    filled: bool,
    /// A send through the `Sink` (on its own task, after `split`) waits for the socket to
    /// take its bytes and flushes them itself: reads do not register for writing meanwhile,
    /// or the two tasks would take turns replacing each other's write waker (each
    /// replacement wakes the other) for as long as the peer is slow.
    sink_parked: bool,
    /// The `Sink`'s message in progress (made at the first `start_send`, then kept).
    sink: Option<Box<Sending>>,
    config: Arc<WebSocketConfig>,
    stats: Arc<Stats>,
    opened: Instant,
    last_seen: Instant,
    /// When the next ping is due.
    ping_due: Option<Instant>,
    /// The idle timeout closed the connection: its deadline is no longer watched.
    idle_expired: bool,
    /// The deadline (ping or idle) registered with `deadlines`, and the waker it wakes.
    alarm: Option<(Instant, Waker)>,
    deadlines: Arc<Deadlines>,
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

/// Who reads: the gateway (its reads end when the server starts the close) or the close
/// itself (it reads on until the peer's Close or the end of the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Gateway,
    Close,
}

impl Conn {
    // Not inlined: run once per connection, it stays out of the connection's future.
    #[inline(never)]
    pub(crate) fn new(
        io: Stream,
        read_ahead: Vec<u8>,
        extensions: Extensions,
        config: Arc<WebSocketConfig>,
        stats: Arc<Stats>,
        signal: Arc<Signal>,
        deadlines: Arc<Deadlines>,
    ) -> Self {
        let mut framing = Framing::new(&read_ahead, &config);
        framing.agree(extensions);
        let now = Instant::now();
        let mut conn = Conn {
            io,
            framing,
            peeked: None,
            look_ahead_due: false,
            budget: 0,
            read_left: 0,
            heard: false,
            socket_empty: false,
            filled: false,
            sink_parked: false,
            sink: None,
            ping_due: config.ping_interval.map(|every| now + every),
            idle_expired: false,
            alarm: None,
            deadlines,
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
    pub(crate) fn attach(&mut self, id: u64, outbox: Arc<Outbox>) {
        self.id = id;
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
                socket_empty: &mut self.socket_empty,
                filled: &mut self.filled,
            },
        )
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

    /// Whether `reader` may still read.
    fn reads(&self, reader: Reader) -> bool {
        match reader {
            Reader::Gateway => self.framing.state().gateway_reads(),
            Reader::Close => self.framing.state().can_read(),
        }
    }

    /// Turns a read result into what `recv` returns, recording failures.
    fn outcome(&mut self, result: tungstenite::Result<Message>) -> Option<Result<Message>> {
        match result {
            Ok(message) => {
                self.tally.frames_in += 1;
                self.tally.bytes_in += message.len() as u64;
                Some(Ok(message))
            }
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => None,
            Err(e) => Some(Err(self.fail(e))),
        }
    }

    /// Fails the connection: queues the close frame for `e`'s code (the gateway's reads end),
    /// or, when no frame can go, gives it up.
    #[cold]
    fn fail(&mut self, e: WsError) -> Error {
        match close_code_of(&e) {
            Some(code) => {
                event!(
                    info,
                    "conn={} closing with {}: {e}",
                    self.id,
                    u16::from(code)
                );
                self.close_for_server(code);
            }
            None => self.framing.state_mut().terminate(true, None),
        }
        Error::WebSocket(e)
    }

    /// Reads ahead from already-buffered bytes only.
    fn look_ahead(&mut self) {
        if self.framing.waits_for_input() {
            return; // nothing to read ahead from
        }
        match self.framing.read(&mut live::Offline) {
            Err(e) if would_block(&e) => {}
            other => self.peeked = Some(other),
        }
    }

    /// The gateway's `recv`.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.poll_next(cx, Reader::Gateway)
    }

    fn poll_next(&mut self, cx: &mut Context<'_>, reader: Reader) -> Poll<Option<Result<Message>>> {
        if let Some(result) = self.peeked.take() {
            // Nothing behind an error is read: a frame after a protocol violation must not
            // be answered (a ping would get its pong after our close).
            self.look_ahead_due = result.is_ok();
            return Poll::Ready(self.outcome(result));
        }
        if !self.reads(reader) {
            let _ = self.poll_flush_for_reader(cx);
            return Poll::Ready(None);
        }
        self.poll_read(cx, reader)
    }

    /// Reads the next message from the stream (within the turn's budgets), flushing,
    /// draining the outbox and running the timers while it waits.
    fn poll_read(&mut self, cx: &mut Context<'_>, reader: Reader) -> Poll<Option<Result<Message>>> {
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
            let skip = self.framing.waits_for_input()
                && still_empty(&mut *self.io, cx, &mut self.socket_empty);
            let read = if skip {
                Err(WsError::Io(io::ErrorKind::WouldBlock.into()))
            } else {
                let (framing, mut live) = self.live(cx);
                framing.read_from(&mut live)
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
                    if !self.reads(reader) {
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

    /// Queues our Close with `code` (unless a Close already went) and ends the gateway's
    /// reads: the server closes (shutdown, idle timeout, overflow, a failure).
    fn close_for_server(&mut self, code: CloseCode) {
        self.framing.close_for_server(code);
    }

    /// Starts a server-initiated close with `code` (shutdown: 1001).
    pub(crate) fn start_close(&mut self, code: CloseCode) {
        self.close_for_server(code);
    }

    /// Gives the connection up with `code` (the peer stopped reading): nothing more is
    /// written.
    fn abort(&mut self, code: CloseCode) {
        self.framing
            .state_mut()
            .terminate(true, Some(Closing::by_server(code)));
    }
}
