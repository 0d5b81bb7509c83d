//! Pings, the idle timeout and the shutdown signal, checked while the connection waits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use super::Conn;
use crate::rt::{self, Timer};

impl Conn {
    /// Sends due pings, closes an idle peer, starts the close on shutdown; `true` when
    /// something was queued.
    pub(super) fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
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
                    self.close_for_server(CloseCode::Away);
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
}
