//! The WebSocket protocol layer: the HTTP/1.1 upgrade, RFC 6455 framing, the connection
//! driver (batching, timers, the close handshake), the [`WebSocket`] a gateway holds, and
//! what a connection carries with it (its limits, its guard's identity, its push queue,
//! the server's counters).
//!
//! It knows nothing of providers, patterns or gateways: those are the API layer's, above.
//! It runs on the runtime layer ([`crate::rt`]) below.

mod auth;
mod close;
#[cfg(feature = "deflate")]
mod compression;
mod config;
mod conn;
// permessage-deflate's negotiation and codec.
#[cfg(feature = "deflate")]
pub(crate) mod deflate;
mod extensions;
mod framing;
mod guard;
#[cfg(test)]
pub(crate) mod mock;
mod outbox;
mod socket;
mod stats;
pub mod upgrade;

pub use auth::{AuthIdentity, Forbidden};
pub use close::{close_code, CloseInfo};
#[cfg(feature = "deflate")]
pub use compression::Compression;
pub(crate) use config::normalize_endpoint;
pub use config::WebSocketConfig;
pub(crate) use conn::Conn;
pub(crate) use extensions::Extensions;

pub use framing::Framing;
pub use guard::{guard_fn, Guard, GuardFuture, GuardResult};
pub(crate) use outbox::{Outbox, Popped};
pub use outbox::{Overflow, PushError};
pub(crate) use socket::Home;
pub use socket::WebSocket;
pub(crate) use stats::Stats;
pub use stats::StatsSnapshot;
pub use upgrade::{Headers, Rejection, UpgradeRequest};

/// The sizes of what a connection costs this layer (see
/// `crate::__private::connection_parts`).
pub(crate) fn parts() -> Vec<(&'static str, usize)> {
    use std::mem::size_of;
    vec![
        ("ws: Conn (boxed)", size_of::<Conn>()),
        ("ws: Framing (in Conn)", size_of::<framing::Framing>()),
        (
            "ws: CloseState (in Framing)",
            size_of::<close::CloseState>(),
        ),
        ("ws: WebSocket", size_of::<WebSocket>()),
        ("ws: Outbox (Arc, heap)", 16 + size_of::<Outbox>()),
    ]
}
