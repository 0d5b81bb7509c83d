//! The server's settings: address, connection cap, upgrade limits, shutdown. Every default
//! is chosen for a small device and written in its doc.

use crate::ws::normalize_endpoint;

/// Server-wide settings: address, connection cap, upgrade limits, shutdown.
///
/// # Examples
/// ```
/// use nestforge_edge::ServerConfig;
/// let config = ServerConfig::default().host("0.0.0.0").max_connections(16).health_endpoint(Some("/healthz"));
/// assert_eq!(config.get_max_connections(), 16);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// See [`get_host`](Self::get_host).
    pub(crate) host: String,
    /// See [`get_max_connections`](Self::get_max_connections).
    pub(crate) max_connections: usize,
    /// See [`get_max_head_size`](Self::get_max_head_size).
    pub(crate) max_head_size: usize,
    /// See [`get_max_headers`](Self::get_max_headers).
    pub(crate) max_headers: usize,
    /// See [`get_handshake_timeout`](Self::get_handshake_timeout).
    pub(crate) handshake_timeout: std::time::Duration,
    /// See [`get_shutdown_timeout`](Self::get_shutdown_timeout).
    pub(crate) shutdown_timeout: std::time::Duration,
    /// See [`get_health_endpoint`](Self::get_health_endpoint).
    pub(crate) health_endpoint: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            max_connections: 64,
            max_head_size: 8 * 1024,
            max_headers: 32,
            handshake_timeout: std::time::Duration::from_secs(5),
            shutdown_timeout: std::time::Duration::from_secs(5),
            health_endpoint: None,
        }
    }
}

impl ServerConfig {
    setters! {
        /// Sets [`get_max_connections`](Self::get_max_connections).
        max_connections: usize;
        /// Sets [`get_max_head_size`](Self::get_max_head_size).
        max_head_size: usize;
        /// Sets [`get_max_headers`](Self::get_max_headers).
        max_headers: usize;
        /// Sets [`get_handshake_timeout`](Self::get_handshake_timeout).
        handshake_timeout: std::time::Duration;
        /// Sets [`get_shutdown_timeout`](Self::get_shutdown_timeout).
        shutdown_timeout: std::time::Duration;
    }

    /// Address `listen(port)` binds. Default `127.0.0.1` (as NestForge).
    pub fn get_host(&self) -> &str {
        &self.host
    }

    /// Open connections (upgraded or upgrading) beyond which new ones get `503` before the
    /// upgrade. Default 64. On Linux `serve` first grows the process's descriptor table to
    /// hold this many more (and an eighth), within `RLIMIT_NOFILE` and at most 65,536 entries,
    /// rounded up to a power of two (8 bytes of kernel memory each): the table then never
    /// grows under load, where each growth stalls the serving thread for milliseconds.
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// Largest request head; beyond it `431`. Default 8 KiB.
    pub fn get_max_head_size(&self) -> usize {
        self.max_head_size
    }

    /// Most request headers; beyond it `431`. Default 32 (at most 128).
    pub fn get_max_headers(&self) -> usize {
        self.max_headers
    }

    /// Time allowed for the whole upgrade (head, guard, `101`); then `408` and close.
    /// Default 5 s.
    pub fn get_handshake_timeout(&self) -> std::time::Duration {
        self.handshake_timeout
    }

    /// After a shutdown starts, how long connections get to finish their close handshake
    /// before they are dropped. Default 5 s.
    pub fn get_shutdown_timeout(&self) -> std::time::Duration {
        self.shutdown_timeout
    }

    /// Path answering `GET` with `200` and the counters as JSON; `None` disables it.
    /// Default `None`.
    pub fn get_health_endpoint(&self) -> Option<&str> {
        self.health_endpoint.as_deref()
    }

    /// Sets [`get_host`](Self::get_host).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets [`get_health_endpoint`](Self::get_health_endpoint) (normalised like an endpoint).
    pub fn health_endpoint(mut self, path: Option<&str>) -> Self {
        self.health_endpoint = path.map(normalize_endpoint);
        self
    }
}
