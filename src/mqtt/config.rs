//! The bridge's settings: broker, identity, forwarding, bounds; every default in its doc.

use std::time::Duration;

use crate::error::{Error, Result};

/// Which message patterns without a local handler are sent to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forward {
    /// Every message pattern with no local handler (the default).
    Unknown,
    /// Only these patterns; other unknown patterns get `unknown_pattern` as without the
    /// bridge.
    Patterns(Vec<String>),
    /// None: the bridge only serves local patterns and carries broadcasts and pushes.
    Off,
}

/// Quality of service for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Qos {
    /// QoS 0: at most once (the default, as NestJS).
    AtMostOnce,
    /// QoS 1: at least once while connected (duplicates possible).
    AtLeastOnce,
}

/// MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// MQTT 3.1.1. The broker echoes our own events back; they are recognised by content
    /// (a bounded list of recent publishes) and dropped.
    V311,
    /// MQTT 5.0 (the default): No Local keeps our own events and broadcasts from coming
    /// back, Maximum Packet Size makes the broker enforce the packet cap.
    V5,
}

/// Settings of the MQTT bridge. Every default is written in its field's doc.
///
/// # Examples
/// ```
/// use nestforge_edge::mqtt::MqttConfig;
/// use std::time::Duration;
///
/// let config = MqttConfig::new("mqtt://127.0.0.1:1883")
///     .client_id("gw-a")
///     .group("nestforge")
///     .request_timeout(Duration::from_secs(2));
/// assert_eq!(config.prefix, "nestforge");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MqttConfig {
    /// The broker: `mqtt://host:port`, `tcp://host:port` or `host:port` (port 1883 when
    /// omitted). Default `mqtt://127.0.0.1:1883`. No TLS: use a local broker or a tunnel.
    pub url: String,
    /// The client id, unique per instance (a duplicate makes the broker drop the other
    /// session); also the instance name for broadcasts and pushes: 1-128 ASCII letters,
    /// digits, `-`, `_`, `.` or `:`. Default `None`: a random `nestforge-<hex>` per process.
    pub client_id: Option<String>,
    /// The `$share` group served message patterns are subscribed in, so that each request
    /// is handled once per group. Default `nestforge`.
    pub group: String,
    /// Namespace of the broadcast and push topics. Default `nestforge`.
    pub prefix: String,
    /// How long a forwarded request waits for its reply before the client gets `timeout`.
    /// Default 5 s.
    pub request_timeout: Duration,
    /// Which unknown message patterns are forwarded. Default [`Forward::Unknown`].
    pub forward: Forward,
    /// Serve the registry's message and event patterns to the broker. Default `true`.
    pub serve: bool,
    /// Publish WebSocket events to the broker (besides handling them locally). Default `true`.
    pub publish_events: bool,
    /// QoS of published and subscribed events. Default [`Qos::AtMostOnce`].
    pub event_qos: Qos,
    /// Protocol version. Default [`Protocol::V5`].
    pub protocol: Protocol,
    /// MQTT keep-alive: a PINGREQ after half of it without output; the link is declared
    /// dead after 1.5× without input. Default 30 s.
    pub keep_alive: Duration,
    /// Largest packet accepted from the broker, checked on its header before it is
    /// buffered; a larger one closes the link (reconnect). Default 64 KiB.
    pub max_packet_size: usize,
    /// Forwarded requests awaiting a reply, at most; beyond it `unavailable`. Default 1024.
    pub max_pending: usize,
    /// Distinct remote patterns whose `P/reply` topic is subscribed, at most. Default 256.
    pub max_remote_patterns: usize,
    /// Packets queued for the broker, at most; beyond it publishes fail (`unavailable`) or
    /// are dropped (events, broadcasts). Default 256.
    pub outbound_queue: usize,
    /// Requests from the broker handled concurrently; beyond it reading pauses. Default 32.
    pub max_in_flight: usize,
    /// First reconnect delay, doubled up to [`Self::reconnect_max`], ±20 % jitter.
    /// Default 100 ms.
    pub reconnect_min: Duration,
    /// Longest reconnect delay. Default 10 s.
    pub reconnect_max: Duration,
    /// TCP connect plus CONNACK deadline. Default 5 s.
    pub connect_timeout: Duration,
    /// Put a remote service's error text in the `detail` of `remote_error` frames.
    /// Default `false`.
    pub expose_remote_errors: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: None,
            group: "nestforge".into(),
            prefix: "nestforge".into(),
            request_timeout: Duration::from_secs(5),
            forward: Forward::Unknown,
            serve: true,
            publish_events: true,
            event_qos: Qos::AtMostOnce,
            protocol: Protocol::V5,
            keep_alive: Duration::from_secs(30),
            max_packet_size: 64 * 1024,
            max_pending: 1024,
            max_remote_patterns: 256,
            outbound_queue: 256,
            max_in_flight: 32,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            expose_remote_errors: false,
        }
    }
}

impl MqttConfig {
    /// Defaults with the broker `url`.
    pub fn new(url: impl Into<String>) -> Self {
        MqttConfig {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Sets [`Self::client_id`].
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Sets [`Self::group`].
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets [`Self::prefix`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    setters! {
        /// Sets [`Self::request_timeout`].
        request_timeout: Duration;
        /// Sets [`Self::forward`].
        forward: Forward;
        /// Sets [`Self::serve`].
        serve: bool;
        /// Sets [`Self::publish_events`].
        publish_events: bool;
        /// Sets [`Self::event_qos`].
        event_qos: Qos;
        /// Sets [`Self::protocol`].
        protocol: Protocol;
        /// Sets [`Self::keep_alive`].
        keep_alive: Duration;
        /// Sets [`Self::max_packet_size`].
        max_packet_size: usize;
        /// Sets [`Self::max_pending`].
        max_pending: usize;
        /// Sets [`Self::max_remote_patterns`].
        max_remote_patterns: usize;
        /// Sets [`Self::outbound_queue`].
        outbound_queue: usize;
        /// Sets [`Self::max_in_flight`].
        max_in_flight: usize;
        /// Sets [`Self::reconnect_min`].
        reconnect_min: Duration;
        /// Sets [`Self::reconnect_max`].
        reconnect_max: Duration;
        /// Sets [`Self::connect_timeout`].
        connect_timeout: Duration;
        /// Sets [`Self::expose_remote_errors`].
        expose_remote_errors: bool;
    }

    /// `host:port` from the URL.
    pub(super) fn address(&self) -> Result<String> {
        let url = self.url.trim();
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .unwrap_or(url);
        if url.contains("://") && rest.len() == url.len() {
            return Err(config_error("only mqtt:// and tcp:// URLs are supported"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(config_error("the URL must be mqtt://host[:port]"));
        }
        let has_port = match rest.rfind(']') {
            Some(bracket) => rest[bracket..].contains(':'),
            None => rest.contains(':'),
        };
        Ok(if has_port {
            rest.to_owned()
        } else {
            format!("{rest}:1883")
        })
    }
}

pub(super) fn config_error(reason: &str) -> Error {
    Error::MqttConfig {
        reason: reason.into(),
    }
}
