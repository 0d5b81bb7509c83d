//! A gateway's compression setting (feature `deflate`): whether it accepts
//! `permessage-deflate` (RFC 7692), and which of its messages it compresses.

/// Whether a gateway accepts `permessage-deflate` (RFC 7692), and which messages it
/// compresses (feature `deflate`). Set with
/// [`WebSocketConfig::compression`](crate::WebSocketConfig::compression).
///
/// A connection never holds compression state: both directions run without context
/// takeover, with one compressor and one inflater per thread, shared by every connection
/// and reset for each message.
///
/// # Examples
/// ```
/// use nestforge_edge::{Compression, WebSocketConfig};
///
/// let config = WebSocketConfig::new("events").compression(Compression::Deflate { min_size: 512 });
/// assert_eq!(config.get_compression(), Compression::Deflate { min_size: 512 });
/// // The default, and a gateway that declines compression.
/// let default = WebSocketConfig::default().get_compression();
/// assert_eq!(default, Compression::Deflate { min_size: 128 });
/// let plain = WebSocketConfig::new("raw").compression(Compression::Off);
/// assert_eq!(plain.get_compression(), Compression::Off);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Every `permessage-deflate` offer is declined: messages go uncompressed both ways.
    Off,
    /// The first valid `permessage-deflate` offer is accepted, answered with
    /// `server_no_context_takeover` and `client_no_context_takeover`. The client's messages
    /// may then arrive compressed (inflated within `max_message_size`); text and binary
    /// messages the gateway sends (replies and pushes) of at least `min_size` bytes go
    /// compressed when that makes them smaller, shorter ones as they are. The default:
    /// `Deflate { min_size: 128 }`.
    Deflate {
        /// The smallest payload, in bytes, compressed on sending: below about a hundred
        /// bytes DEFLATE saves little and costs a compression each.
        min_size: usize,
    },
}

impl Default for Compression {
    /// `Deflate { min_size: 128 }`.
    fn default() -> Self {
        Compression::Deflate { min_size: 128 }
    }
}
