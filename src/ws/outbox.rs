//! One connection's bounded queue of pushed messages, which the connection drains into its
//! write buffer while the gateway awaits `recv`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::task::Waker;

use tungstenite::Message;

use crate::rt::sync::lock;

/// Why a push did not enqueue its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError {
    /// No open connection has this id.
    NotConnected,
    /// The connection's queue is full; the message was dropped ([`Overflow::Drop`]).
    Dropped,
    /// The connection's queue is full; the connection is being closed with 1008
    /// ([`Overflow::Close`]).
    Closing,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PushError::NotConnected => "no such connection",
            PushError::Dropped => "outbound queue full: message dropped",
            PushError::Closing => "outbound queue full: connection closed (1008)",
        })
    }
}

impl std::error::Error for PushError {}

/// What a push to a connection with a full outbound queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Drop the message; the connection stays.
    Drop,
    /// Close the connection with 1008 (policy violation: slow consumer).
    Close,
}

/// One connection's bounded outbound queue.
pub(crate) struct Outbox {
    state: Mutex<OutboxState>,
    capacity: usize,
    overflow: Overflow,
}

#[derive(Default)]
struct OutboxState {
    queue: VecDeque<Message>,
    waker: Option<Waker>,
    overflowed: bool,
    closed: bool,
}

/// What the connection task takes from its outbox in one go.
pub(crate) enum Popped {
    /// Nothing queued.
    Empty,
    /// The next message.
    Message(Message),
    /// The queue overflowed under [`Overflow::Close`]: close with 1008.
    Overflowed,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        Outbox {
            state: Mutex::default(),
            capacity: capacity.max(1),
            overflow,
        }
    }

    pub(crate) fn push(&self, message: Message) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.closed || state.overflowed {
            return Err(PushError::NotConnected);
        }
        if state.queue.len() >= self.capacity {
            if self.overflow == Overflow::Drop {
                return Err(PushError::Dropped);
            }
            state.overflowed = true;
            state.queue.clear();
        } else {
            state.queue.push_back(message);
        }
        if let Some(waker) = &state.waker {
            waker.wake_by_ref();
        }
        if state.overflowed {
            Err(PushError::Closing)
        } else {
            Ok(())
        }
    }

    /// Takes the next queued message, registering `waker` for later pushes.
    pub(crate) fn pop(&self, waker: &Waker) -> Popped {
        let mut state = lock(&self.state);
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
        if state.overflowed {
            return Popped::Overflowed;
        }
        state
            .queue
            .pop_front()
            .map_or(Popped::Empty, Popped::Message)
    }

    /// Wakes the connection's reading task (the one that last drained this outbox).
    pub(crate) fn wake(&self) {
        if let Some(waker) = &lock(&self.state).waker {
            waker.wake_by_ref();
        }
    }

    /// The connection is gone: pushes fail with [`PushError::NotConnected`].
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
    }

    /// Puts back a message the write buffer had no room for.
    pub(crate) fn unpop(&self, message: Message) {
        lock(&self.state).queue.push_front(message);
    }
}
