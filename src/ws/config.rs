//! A gateway's settings: its endpoint, upgrade checks and per-connection limits. Every
//! default is chosen for a small device and written in its doc.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "deflate")]
use super::compression::Compression;
use super::guard::Guard;
use super::outbox::Overflow;

/// Per-gateway settings: the endpoint and the per-connection limits.
///
/// # Examples
/// ```
/// use nestforge_edge::WebSocketConfig;
/// use std::time::Duration;
///
/// let config = WebSocketConfig::new("events")
///     .max_message_size(16 * 1024)
///     .ping_interval(Some(Duration::from_secs(10)));
/// assert_eq!(config.get_endpoint(), "/events");
/// assert_eq!(WebSocketConfig::new(" / ").get_endpoint(), "/ws");
/// assert_eq!(config.get_max_message_size(), 16 * 1024);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WebSocketConfig {
    /// See [`get_endpoint`](Self::get_endpoint).
    pub(crate) endpoint: String,
    /// See [`get_max_frame_size`](Self::get_max_frame_size).
    pub(crate) max_frame_size: usize,
    /// See [`get_max_message_size`](Self::get_max_message_size).
    pub(crate) max_message_size: usize,
    /// See [`get_read_buffer_size`](Self::get_read_buffer_size).
    pub(crate) read_buffer_size: usize,
    /// See [`get_max_write_buffer_size`](Self::get_max_write_buffer_size).
    pub(crate) max_write_buffer_size: usize,
    /// See [`get_send_timeout`](Self::get_send_timeout).
    pub(crate) send_timeout: Duration,
    /// See [`get_outbound_queue`](Self::get_outbound_queue).
    pub(crate) outbound_queue: usize,
    /// See [`get_overflow`](Self::get_overflow).
    pub(crate) overflow: Overflow,
    /// See [`get_ping_interval`](Self::get_ping_interval).
    pub(crate) ping_interval: Option<Duration>,
    /// See [`get_idle_timeout`](Self::get_idle_timeout).
    pub(crate) idle_timeout: Option<Duration>,
    /// See [`get_close_timeout`](Self::get_close_timeout).
    pub(crate) close_timeout: Duration,
    /// See [`get_fairness_budget`](Self::get_fairness_budget).
    pub(crate) fairness_budget: u32,
    /// See [`get_allowed_origins`](Self::get_allowed_origins).
    pub(crate) allowed_origins: Option<Vec<String>>,
    /// See [`get_protocols`](Self::get_protocols).
    pub(crate) protocols: Vec<String>,
    /// The upgrade guard (see [`WebSocketConfig::guard`]). Default none.
    pub(crate) guard: Option<Arc<dyn Guard>>,
    /// See [`get_compression`](Self::get_compression).
    #[cfg(feature = "deflate")]
    pub(crate) compression: Compression,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            endpoint: "/ws".into(),
            max_frame_size: 16 * 1024,
            max_message_size: 64 * 1024,
            read_buffer_size: 4 * 1024,
            max_write_buffer_size: 64 * 1024,
            send_timeout: Duration::from_secs(5),
            outbound_queue: 16,
            overflow: Overflow::Close,
            ping_interval: Some(Duration::from_secs(20)),
            idle_timeout: Some(Duration::from_secs(45)),
            close_timeout: Duration::from_secs(2),
            fairness_budget: 32,
            allowed_origins: None,
            protocols: Vec::new(),
            guard: None,
            #[cfg(feature = "deflate")]
            compression: Compression::default(),
        }
    }
}

/// NestForge's endpoint normalisation.
pub(crate) fn normalize_endpoint(endpoint: &str) -> String {
    let trimmed = endpoint.trim();
    match trimmed {
        "" | "/" => "/ws".into(),
        p if p.starts_with('/') => p.into(),
        p => format!("/{p}"),
    }
}

impl WebSocketConfig {
    /// Defaults with `endpoint` (normalised).
    pub fn new(endpoint: impl Into<String>) -> Self {
        WebSocketConfig {
            endpoint: normalize_endpoint(&endpoint.into()),
            ..Self::default()
        }
    }

    setters! {
        /// Sets [`get_max_frame_size`](Self::get_max_frame_size).
        max_frame_size: usize;
        /// Sets [`get_max_message_size`](Self::get_max_message_size).
        max_message_size: usize;
        /// Sets [`get_read_buffer_size`](Self::get_read_buffer_size).
        read_buffer_size: usize;
        /// Sets [`get_max_write_buffer_size`](Self::get_max_write_buffer_size).
        max_write_buffer_size: usize;
        /// Sets [`get_send_timeout`](Self::get_send_timeout).
        send_timeout: Duration;
        /// Sets [`get_outbound_queue`](Self::get_outbound_queue).
        outbound_queue: usize;
        /// Sets [`get_overflow`](Self::get_overflow).
        overflow: Overflow;
        /// Sets [`get_ping_interval`](Self::get_ping_interval).
        ping_interval: Option<Duration>;
        /// Sets [`get_idle_timeout`](Self::get_idle_timeout).
        idle_timeout: Option<Duration>;
        /// Sets [`get_close_timeout`](Self::get_close_timeout).
        close_timeout: Duration;
        /// Sets [`get_fairness_budget`](Self::get_fairness_budget).
        fairness_budget: u32;
    }

    /// Sets [`get_compression`](Self::get_compression) (feature `deflate`).
    #[cfg(feature = "deflate")]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`get_endpoint`](Self::get_endpoint) (normalised).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = normalize_endpoint(&endpoint.into());
        self
    }

    /// Sets [`get_allowed_origins`](Self::get_allowed_origins).
    pub fn allowed_origins<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        origins: I,
    ) -> Self {
        self.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Sets [`get_protocols`](Self::get_protocols).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protocols: I) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the upgrade guard: an async check of the upgrade request run before the `101`,
    /// which accepts (optionally attaching an [`AuthIdentity`](crate::AuthIdentity)) or
    /// rejects with a status. See [`Guard`].
    pub fn guard(mut self, guard: impl Guard) -> Self {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// The path the gateway is mounted on. Default `/ws`. Normalised as NestForge does:
    /// trimmed; empty or `/` gives `/ws`; a missing leading `/` is added.
    pub fn get_endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Largest frame payload accepted, checked as soon as the frame header arrives (before
    /// any payload is buffered); beyond it the connection is closed with 1009.
    /// Default 16 KiB.
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Largest message accepted, fragments included; beyond it, close 1009. Default 64 KiB.
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Bytes asked of the socket per read. Nothing is held while a connection is idle: a
    /// read lands in one per-thread buffer of this size and only the bytes received are
    /// kept until parsed; a payload larger than this is read straight into a buffer of its
    /// own, grown with what has arrived (what the socket holds, or a read at a time), so a
    /// frame or message in progress holds at most about twice its bytes received, whatever
    /// size its header announced. A read that starts a frame asks for more when the connection's last frame was
    /// larger than this (a whole frame of that size, up to 32 KiB, into the same per-thread
    /// buffer). Default 4 KiB.
    pub fn get_read_buffer_size(&self) -> usize {
        self.read_buffer_size
    }

    /// Most bytes of outgoing frames buffered per connection before `send` waits for the
    /// peer to read. Default 64 KiB.
    pub fn get_max_write_buffer_size(&self) -> usize {
        self.max_write_buffer_size
    }

    /// How long a `send` (or a queued push) may wait for a peer that does not read before
    /// the connection is closed with 1008. Default 5 s.
    pub fn get_send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// Capacity of each connection's outbound push queue (messages). Default 16.
    pub fn get_outbound_queue(&self) -> usize {
        self.outbound_queue
    }

    /// What a push to a connection whose queue is full does. Default [`Overflow::Close`]
    /// (close with 1008).
    pub fn get_overflow(&self) -> Overflow {
        self.overflow
    }

    /// Interval between server pings; `None` disables them. Default 20 s.
    pub fn get_ping_interval(&self) -> Option<Duration> {
        self.ping_interval
    }

    /// A connection that sent nothing (no frame, no pong) for this long is closed with
    /// 1001 (going away; the TCP connection is then dropped, which the peer may see as
    /// 1006). `None` disables it. Default 45 s.
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// How long the closing handshake may take before the socket is dropped. Default 2 s.
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Consecutive messages one connection may process before yielding to the others on
    /// the thread; it also yields after reading `fairness_budget × read_buffer_size` bytes
    /// in one turn (128 KiB by default), whatever the frames. Default 32.
    pub fn get_fairness_budget(&self) -> u32 {
        self.fairness_budget
    }

    /// Allowed `Origin` values; when set, any other Origin (or none) gets 403 before the
    /// upgrade. Default `None` (no check).
    pub fn get_allowed_origins(&self) -> Option<&[String]> {
        self.allowed_origins.as_deref()
    }

    /// Subprotocols the gateway speaks, in preference order; the first one the client also
    /// offers is selected. Default none.
    pub fn get_protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Whether `permessage-deflate` (RFC 7692) is accepted when a client offers it (every
    /// browser does), and the smallest reply or push compressed (feature `deflate`). Default
    /// [`Compression::Deflate`]` { min_size: 128 }`: on, messages under 128 bytes sent as
    /// they are. A compressed message from the client is inflated within
    /// [`get_max_message_size`](Self::get_max_message_size) (its compressed bytes count
    /// against it too; beyond it, 1009), and one that does not inflate closes the
    /// connection with 1007. No compression state is kept per connection.
    #[cfg(feature = "deflate")]
    pub fn get_compression(&self) -> Compression {
        self.compression
    }
}

impl fmt::Debug for WebSocketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("WebSocketConfig");
        f.field("endpoint", &self.endpoint)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_message_size", &self.max_message_size)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("max_write_buffer_size", &self.max_write_buffer_size)
            .field("send_timeout", &self.send_timeout)
            .field("outbound_queue", &self.outbound_queue)
            .field("overflow", &self.overflow)
            .field("ping_interval", &self.ping_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("fairness_budget", &self.fairness_budget)
            .field("allowed_origins", &self.allowed_origins)
            .field("protocols", &self.protocols)
            .field("guard", &self.guard.as_ref().map(|_| "Guard"));
        #[cfg(feature = "deflate")]
        f.field("compression", &self.compression);
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_endpoint;

    #[test]
    fn nestforge_normalisation_table() {
        for (input, want) in [
            ("socket", "/socket"),
            ("/socket", "/socket"),
            ("", "/ws"),
            ("   ", "/ws"),
            ("/", "/ws"),
            (" /events ", "/events"),
            ("socket/", "/socket/"),
            ("//x", "//x"),
            ("/a b", "/a b"),
        ] {
            assert_eq!(normalize_endpoint(input), want, "{input:?}");
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::WebSocketConfig;

    #[test]
    fn debug_names_every_setting() {
        let text = format!("{:?}", WebSocketConfig::default());
        for field in [
            "endpoint",
            "max_frame_size",
            "max_message_size",
            "read_buffer_size",
            "max_write_buffer_size",
            "send_timeout",
            "outbound_queue",
            "overflow",
            "ping_interval",
            "idle_timeout",
            "close_timeout",
            "fairness_budget",
            "allowed_origins",
            "protocols",
            "guard",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
        #[cfg(feature = "deflate")]
        assert!(
            text.contains("compression: Deflate { min_size: 128 }"),
            "{text}"
        );
    }
}
