//! Shutdown signalling: one flag and one `event_listener::Event`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_listener::{Event, EventListener};

use crate::push::Connections;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    flag: AtomicBool,
    event: Event,
}

impl Signal {
    pub(crate) fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub(crate) fn listen(&self) -> EventListener {
        self.event.listen()
    }

    /// Resolves once triggered.
    pub(crate) async fn wait(&self) {
        loop {
            let listener = self.listen();
            if self.is_set() {
                return;
            }
            listener.await;
        }
    }
}

/// Stops a running server: it stops accepting, sends Close 1001 to every connection, waits
/// for their close handshakes up to [`ServerConfig::shutdown_timeout`](crate::ServerConfig)
/// (default 5 s), drops what remains, and `serve`/`listen` return `Ok(())`.
///
/// Cheap to clone; may be triggered from any thread (a signal handler thread, for example).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    pub(crate) signal: Arc<Signal>,
    pub(crate) connections: Option<Arc<Connections>>,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown. Idempotent.
    pub fn shutdown(&self) {
        self.signal.trigger();
        if let Some(connections) = &self.connections {
            connections.wake_all();
        }
    }

    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        self.signal.is_set()
    }
}
