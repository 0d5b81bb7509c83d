//! Server push: the registry of open connections, their bounded outbound queues, rooms.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use serde::Serialize;
use tungstenite::Message;

use crate::error::{Error, Result};
use crate::sync::lock;
use crate::wire::event_frame;

/// The open connections, to push to one by id, to a room, or to all.
///
/// Provided automatically by [`NestForgeFactory::create`](crate::NestForgeFactory): resolve it
/// like any provider (`ctx.resolve::<Connections>()`). Pushing never waits: each connection
/// has a bounded queue ([`WebSocketConfig::outbound_queue`](crate::WebSocketConfig), default
/// 16) that its connection task drains while the gateway awaits `recv`; a full queue drops
/// the message or closes that connection with 1008, per
/// [`WebSocketConfig::overflow`](crate::WebSocketConfig). A peer that stops reading therefore
/// never blocks the sender or any other connection.
///
/// # Examples
/// ```
/// use nestforge_edge::{Connections, Message};
/// let connections = Connections::default();
/// let report = connections.broadcast(Message::Text("tick".into()));
/// assert_eq!(report.delivered, 0);
/// ```
#[derive(Default)]
pub struct Connections {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    outboxes: HashMap<u64, Arc<Outbox>>,
    rooms: HashMap<Box<str>, HashSet<u64>>,
}

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

/// What a broadcast did, connection by connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// Queued for delivery.
    pub delivered: usize,
    /// Dropped because the connection's queue was full.
    pub dropped: usize,
    /// Connections closed (1008) because their queue was full.
    pub closed: usize,
}

impl Broadcast {
    fn count(&mut self, result: std::result::Result<(), PushError>) {
        match result {
            Ok(()) => self.delivered += 1,
            Err(PushError::Dropped) => self.dropped += 1,
            Err(PushError::Closing) => self.closed += 1,
            Err(PushError::NotConnected) => {}
        }
    }
}

impl Connections {
    /// Queues `message` for connection `id`.
    pub fn send(&self, id: u64, message: Message) -> std::result::Result<(), PushError> {
        let outbox = lock(&self.table).outboxes.get(&id).cloned();
        outbox.ok_or(PushError::NotConnected)?.push(message)
    }

    /// Queues `message` for every open connection.
    pub fn broadcast(&self, message: Message) -> Broadcast {
        let table = lock(&self.table);
        let mut report = Broadcast::default();
        for outbox in table.outboxes.values() {
            report.count(outbox.push(message.clone()));
        }
        report
    }

    /// Pushes the event `pattern` with `payload` to connection `id`: the frame
    /// `{"kind":"event","pattern":..,"payload":..}` ([`event_frame`](crate::event_frame)),
    /// which clients (the JavaScript client's `on(pattern, ..)`) tell apart from replies.
    /// Fails with [`Error::EncodePayload`](crate::Error) when `payload` does not serialize,
    /// [`Error::Push`](crate::Error) when it was not queued.
    pub fn emit<T: Serialize + ?Sized>(&self, id: u64, pattern: &str, payload: &T) -> Result<()> {
        self.send(id, event_frame(pattern, payload)?)
            .map_err(Error::Push)
    }

    /// Pushes the event `pattern` with `payload` to every connection in `room` (serialized
    /// once). See [`emit`](Self::emit).
    pub fn emit_to_room<T: Serialize + ?Sized>(
        &self,
        room: &str,
        pattern: &str,
        payload: &T,
    ) -> Result<Broadcast> {
        Ok(self.to_room(room, event_frame(pattern, payload)?))
    }

    /// Pushes the event `pattern` with `payload` to every open connection (serialized
    /// once). See [`emit`](Self::emit).
    pub fn emit_to_all<T: Serialize + ?Sized>(
        &self,
        pattern: &str,
        payload: &T,
    ) -> Result<Broadcast> {
        Ok(self.broadcast(event_frame(pattern, payload)?))
    }

    /// Adds connection `id` to `room`; `false` if it is not open.
    pub fn join(&self, id: u64, room: &str) -> bool {
        let mut table = lock(&self.table);
        if !table.outboxes.contains_key(&id) {
            return false;
        }
        table.rooms.entry(room.into()).or_default().insert(id);
        true
    }

    /// Removes connection `id` from `room`.
    pub fn leave(&self, id: u64, room: &str) {
        let mut table = lock(&self.table);
        if let Some(members) = table.rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                table.rooms.remove(room);
            }
        }
    }

    /// Queues `message` for every connection in `room`.
    pub fn to_room(&self, room: &str, message: Message) -> Broadcast {
        let table = lock(&self.table);
        let mut report = Broadcast::default();
        for id in table.rooms.get(room).into_iter().flatten() {
            if let Some(outbox) = table.outboxes.get(id) {
                report.count(outbox.push(message.clone()));
            }
        }
        report
    }

    /// The ids of the open connections.
    pub fn ids(&self) -> Vec<u64> {
        lock(&self.table).outboxes.keys().copied().collect()
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        lock(&self.table).outboxes.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every connection's task (shutdown: they then see the signal and close).
    pub(crate) fn wake_all(&self) {
        for outbox in lock(&self.table).outboxes.values() {
            if let Some(waker) = &lock(&outbox.state).waker {
                waker.wake_by_ref();
            }
        }
    }

    pub(crate) fn register(&self, id: u64, outbox: Arc<Outbox>) {
        lock(&self.table).outboxes.insert(id, outbox);
    }

    pub(crate) fn unregister(&self, id: u64) {
        let mut table = lock(&self.table);
        if let Some(outbox) = table.outboxes.remove(&id) {
            lock(&outbox.state).closed = true;
        }
        table.rooms.retain(|_, members| {
            members.remove(&id);
            !members.is_empty()
        });
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = lock(&self.table);
        f.debug_struct("Connections")
            .field("open", &table.outboxes.len())
            .field("rooms", &table.rooms.len())
            .finish()
    }
}

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
pub(crate) enum Drained {
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

    fn push(&self, message: Message) -> std::result::Result<(), PushError> {
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
    pub(crate) fn pop(&self, waker: &Waker) -> Drained {
        let mut state = lock(&self.state);
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
        if state.overflowed {
            return Drained::Overflowed;
        }
        state
            .queue
            .pop_front()
            .map_or(Drained::Empty, Drained::Message)
    }

    /// Wakes the connection's reading task (the one that last drained this outbox).
    pub(crate) fn wake(&self) {
        if let Some(waker) = &lock(&self.state).waker {
            waker.wake_by_ref();
        }
    }

    /// Puts back a message the write buffer had no room for.
    pub(crate) fn unpop(&self, message: Message) {
        lock(&self.state).queue.push_front(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn popped(outbox: &Outbox) -> String {
        match outbox.pop(std::task::Waker::noop()) {
            Drained::Message(message) => message.into_text().unwrap().to_string(),
            _ => panic!("nothing queued"),
        }
    }

    #[test]
    fn emit_pushes_event_frames_to_one_a_room_and_all() {
        let connections = Connections::default();
        let (a, b) = (
            Arc::new(Outbox::new(4, Overflow::Drop)),
            Arc::new(Outbox::new(4, Overflow::Drop)),
        );
        connections.register(1, Arc::clone(&a));
        connections.register(2, Arc::clone(&b));
        assert!(connections.join(2, "kitchen"));
        connections.emit(1, "t", &1).unwrap();
        assert_eq!(popped(&a), r#"{"kind":"event","pattern":"t","payload":1}"#);
        let report = connections.emit_to_room("kitchen", "temp", &21.5).unwrap();
        assert_eq!(report.delivered, 1);
        assert_eq!(
            popped(&b),
            r#"{"kind":"event","pattern":"temp","payload":21.5}"#
        );
        assert_eq!(connections.emit_to_all("x", "y").unwrap().delivered, 2);
        assert!(matches!(
            connections.emit(9, "t", &()),
            Err(Error::Push(PushError::NotConnected))
        ));
        let unencodable: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert!(matches!(
            connections.emit_to_all("x", &unencodable),
            Err(Error::EncodePayload { .. })
        ));
    }
}
