//! Server push: the registry of open connections (their outbound queues) and rooms.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tungstenite::Message;

use crate::error::{Error, Result};
use crate::rt::sync::lock;
use crate::wire::event_frame;
use crate::ws::{Outbox, PushError};

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
            outbox.wake();
        }
    }

    pub(crate) fn register(&self, id: u64, outbox: Arc<Outbox>) {
        lock(&self.table).outboxes.insert(id, outbox);
    }

    pub(crate) fn unregister(&self, id: u64) {
        let mut table = lock(&self.table);
        if let Some(outbox) = table.outboxes.remove(&id) {
            outbox.close();
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ws::{Overflow, Popped};

    fn popped(outbox: &Outbox) -> String {
        match outbox.pop(std::task::Waker::noop()) {
            Popped::Message(message) => message.into_text().unwrap().to_string(),
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
