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
/// assert_eq!(config.get_prefix(), "nestforge");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MqttConfig {
    /// See [`get_url`](Self::get_url).
    pub(crate) url: String,
    /// See [`get_client_id`](Self::get_client_id).
    pub(crate) client_id: Option<String>,
    /// See [`get_group`](Self::get_group).
    pub(crate) group: String,
    /// See [`get_prefix`](Self::get_prefix).
    pub(crate) prefix: String,
    /// See [`get_request_timeout`](Self::get_request_timeout).
    pub(crate) request_timeout: Duration,
    /// See [`get_forward`](Self::get_forward).
    pub(crate) forward: Forward,
    /// See [`get_serve`](Self::get_serve).
    pub(crate) serve: bool,
    /// See [`get_publish_events`](Self::get_publish_events).
    pub(crate) publish_events: bool,
    /// See [`get_event_qos`](Self::get_event_qos).
    pub(crate) event_qos: Qos,
    /// See [`get_protocol`](Self::get_protocol).
    pub(crate) protocol: Protocol,
    /// See [`get_keep_alive`](Self::get_keep_alive).
    pub(crate) keep_alive: Duration,
    /// See [`get_max_packet_size`](Self::get_max_packet_size).
    pub(crate) max_packet_size: usize,
    /// See [`get_max_pending`](Self::get_max_pending).
    pub(crate) max_pending: usize,
    /// See [`get_max_remote_patterns`](Self::get_max_remote_patterns).
    pub(crate) max_remote_patterns: usize,
    /// See [`get_outbound_queue`](Self::get_outbound_queue).
    pub(crate) outbound_queue: usize,
    /// See [`get_max_in_flight`](Self::get_max_in_flight).
    pub(crate) max_in_flight: usize,
    /// See [`get_reconnect_min`](Self::get_reconnect_min).
    pub(crate) reconnect_min: Duration,
    /// See [`get_reconnect_max`](Self::get_reconnect_max).
    pub(crate) reconnect_max: Duration,
    /// See [`get_connect_timeout`](Self::get_connect_timeout).
    pub(crate) connect_timeout: Duration,
    /// See [`get_expose_remote_errors`](Self::get_expose_remote_errors).
    pub(crate) expose_remote_errors: bool,
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

    /// Sets [`get_client_id`](Self::get_client_id).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Sets [`get_group`](Self::get_group).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets [`get_prefix`](Self::get_prefix).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    setters! {
        /// Sets [`get_request_timeout`](Self::get_request_timeout).
        request_timeout: Duration;
        /// Sets [`get_forward`](Self::get_forward).
        forward: Forward;
        /// Sets [`get_serve`](Self::get_serve).
        serve: bool;
        /// Sets [`get_publish_events`](Self::get_publish_events).
        publish_events: bool;
        /// Sets [`get_event_qos`](Self::get_event_qos).
        event_qos: Qos;
        /// Sets [`get_protocol`](Self::get_protocol).
        protocol: Protocol;
        /// Sets [`get_keep_alive`](Self::get_keep_alive).
        keep_alive: Duration;
        /// Sets [`get_max_packet_size`](Self::get_max_packet_size).
        max_packet_size: usize;
        /// Sets [`get_max_pending`](Self::get_max_pending).
        max_pending: usize;
        /// Sets [`get_max_remote_patterns`](Self::get_max_remote_patterns).
        max_remote_patterns: usize;
        /// Sets [`get_outbound_queue`](Self::get_outbound_queue).
        outbound_queue: usize;
        /// Sets [`get_max_in_flight`](Self::get_max_in_flight).
        max_in_flight: usize;
        /// Sets [`get_reconnect_min`](Self::get_reconnect_min).
        reconnect_min: Duration;
        /// Sets [`get_reconnect_max`](Self::get_reconnect_max).
        reconnect_max: Duration;
        /// Sets [`get_connect_timeout`](Self::get_connect_timeout).
        connect_timeout: Duration;
        /// Sets [`get_expose_remote_errors`](Self::get_expose_remote_errors).
        expose_remote_errors: bool;
    }

    /// The broker: `mqtt://host:port`, `tcp://host:port` or `host:port` (port 1883 when
    /// omitted). Default `mqtt://127.0.0.1:1883`. No TLS: use a local broker or a tunnel.
    pub fn get_url(&self) -> &str {
        &self.url
    }

    /// The client id, unique per instance (a duplicate makes the broker drop the other
    /// session); also the instance name for broadcasts and pushes: 1-128 ASCII letters,
    /// digits, `-`, `_`, `.` or `:`. Default `None`: a random `nestforge-<hex>` per process.
    pub fn get_client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The `$share` group served message patterns are subscribed in, so that each request
    /// is handled once per group. Default `nestforge`.
    pub fn get_group(&self) -> &str {
        &self.group
    }

    /// Namespace of the broadcast and push topics. Default `nestforge`.
    pub fn get_prefix(&self) -> &str {
        &self.prefix
    }

    /// How long a forwarded request waits for its reply before the client gets `timeout`.
    /// Default 5 s.
    pub fn get_request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Which unknown message patterns are forwarded. Default [`Forward::Unknown`].
    pub fn get_forward(&self) -> &Forward {
        &self.forward
    }

    /// Serve the registry's message and event patterns to the broker. Default `true`.
    pub fn get_serve(&self) -> bool {
        self.serve
    }

    /// Publish WebSocket events to the broker (besides handling them locally). Default `true`.
    pub fn get_publish_events(&self) -> bool {
        self.publish_events
    }

    /// QoS of published and subscribed events. Default [`Qos::AtMostOnce`].
    pub fn get_event_qos(&self) -> Qos {
        self.event_qos
    }

    /// Protocol version. Default [`Protocol::V5`].
    pub fn get_protocol(&self) -> Protocol {
        self.protocol
    }

    /// MQTT keep-alive: a PINGREQ after half of it without output; the link is declared
    /// dead after 1.5× without input. Default 30 s.
    pub fn get_keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// Largest packet accepted from the broker, checked on its header before it is
    /// buffered; a larger one closes the link (reconnect). Default 64 KiB.
    pub fn get_max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Forwarded requests awaiting a reply, at most; beyond it `unavailable`. Default 1024.
    pub fn get_max_pending(&self) -> usize {
        self.max_pending
    }

    /// Distinct remote patterns whose `P/reply` topic is subscribed, at most. Default 256.
    pub fn get_max_remote_patterns(&self) -> usize {
        self.max_remote_patterns
    }

    /// Packets queued for the broker, at most; beyond it publishes fail (`unavailable`) or
    /// are dropped (events, broadcasts). Default 256.
    pub fn get_outbound_queue(&self) -> usize {
        self.outbound_queue
    }

    /// Requests from the broker handled concurrently; beyond it reading pauses. Default 32.
    pub fn get_max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// First reconnect delay, doubled up to [`Self::reconnect_max`], ±20 % jitter.
    /// Default 100 ms.
    pub fn get_reconnect_min(&self) -> Duration {
        self.reconnect_min
    }

    /// Longest reconnect delay. Default 10 s.
    pub fn get_reconnect_max(&self) -> Duration {
        self.reconnect_max
    }

    /// TCP connect plus CONNACK deadline. Default 5 s.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Put a remote service's error text in the `detail` of `remote_error` frames.
    /// Default `false`.
    pub fn get_expose_remote_errors(&self) -> bool {
        self.expose_remote_errors
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
