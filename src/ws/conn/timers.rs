//! Pings, the idle timeout and the shutdown signal, checked while the connection waits.
//!
//! The connection keeps no timer of its own: it registers its next deadline (the earlier of
//! the next ping and the idle deadline) with the server's [`Deadlines`](crate::rt::Deadlines),
//! which wakes it then.

use std::task::Context;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use super::Conn;
use crate::rt;

impl Conn {
    /// Sends due pings, closes an idle peer, starts the close on shutdown; `true` when
    /// something was queued.
    pub(super) fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        // A shutdown wakes every connection through its outbox.
        if self.framing.can_write() && self.signal.is_set() {
            self.start_close(CloseCode::Away);
            return true;
        }
        // The time of this turn (no clock read per message): a deadline registered for
        // this task that is still ahead needs nothing more.
        let now = rt::now();
        if let Some((at, waker)) = &self.alarm {
            if *at > now && waker.will_wake(cx.waker()) {
                return false;
            }
        }
        let mut queued = false;
        if let (Some(due), Some(every)) = (self.ping_due, self.config.ping_interval) {
            if due <= now {
                // The next one an interval after this one, or after now when late.
                self.ping_due = Some((due + every).max(now));
                if self.framing.can_write() {
                    let _ = self.framing.write(Message::Ping(Default::default()));
                    self.tally.frames_out += 1;
                    queued = true;
                }
            }
        }
        let idle_deadline = match self.config.idle_timeout {
            Some(idle) if !self.idle_expired => Some(self.last_seen + idle),
            _ => None,
        };
        if idle_deadline.is_some_and(|deadline| deadline <= now) {
            self.idle_expired = true;
            self.close_for_server(CloseCode::Away);
            queued = true;
        }
        let next = match (self.ping_due, idle_deadline.filter(|_| !self.idle_expired)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.alarm = next.map(|at| {
            let waker = cx.waker().clone();
            self.deadlines.add(at, waker.clone());
            (at, waker)
        });
        queued
    }
}
