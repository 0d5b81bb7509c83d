//! A one-way signal (a server's shutdown): one flag and one `event_listener::Event`.

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::{Event, EventListener};

/// Set once, seen by polling ([`is_set`](Self::is_set)) or awaited ([`wait`](Self::wait)).
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
