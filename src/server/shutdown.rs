//! The handle that stops a running server.

use std::sync::Arc;

use crate::push::Connections;
use crate::rt::Signal;

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
