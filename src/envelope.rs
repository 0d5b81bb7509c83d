//! NestForge's envelopes: a pattern call built in code rather than read from a frame, for
//! [`MicroserviceRegistry::dispatch_message`](crate::MicroserviceRegistry::dispatch_message)
//! and [`dispatch_event`](crate::MicroserviceRegistry::dispatch_event).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Request, Result};
use crate::wire::{Kind, TransportMetadata};

/// A message call (it gets a reply): pattern, payload and metadata, as NestForge's
/// `MessageEnvelope`. Its JSON is a request frame without `kind`.
///
/// # Examples
/// ```
/// use nestforge_edge::{MessageEnvelope, TransportMetadata};
///
/// let envelope = MessageEnvelope::new("users.count", ())?
///     .with_metadata(TransportMetadata::new().insert("trace", "abc"));
/// assert_eq!(envelope.payload, serde_json::Value::Null);
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEnvelope {
    /// The pattern to call.
    pub pattern: String,
    /// The payload, decoded into the handler's type at dispatch.
    pub payload: serde_json::Value,
    /// Metadata for the handler's context.
    #[serde(default)]
    pub metadata: TransportMetadata,
}

/// An event (no reply): pattern, payload and metadata, as NestForge's `EventEnvelope`.
///
/// # Examples
/// ```
/// use nestforge_edge::EventEnvelope;
///
/// let envelope = EventEnvelope::new("users.created", serde_json::json!({ "id": 1 }))?;
/// assert_eq!(envelope.pattern, "users.created");
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// The pattern to call.
    pub pattern: String,
    /// The payload, decoded into the handler's type at dispatch.
    pub payload: serde_json::Value,
    /// Metadata for the handler's context.
    #[serde(default)]
    pub metadata: TransportMetadata,
}

impl MessageEnvelope {
    /// An envelope for `pattern` with `payload` serialized, and empty metadata. Fails with
    /// [`Error::EncodePayload`] (`Failed to serialize message payload`).
    pub fn new(pattern: impl Into<String>, payload: impl Serialize) -> Result<Self> {
        let pattern = pattern.into();
        Ok(MessageEnvelope {
            payload: encode(Kind::Message, &pattern, payload)?,
            pattern,
            metadata: TransportMetadata::default(),
        })
    }

    /// Replaces the metadata (builder style).
    pub fn with_metadata(mut self, metadata: TransportMetadata) -> Self {
        self.metadata = metadata;
        self
    }
}

impl EventEnvelope {
    /// An envelope for `pattern` with `payload` serialized, and empty metadata. Fails with
    /// [`Error::EncodePayload`] (`Failed to serialize event payload`).
    pub fn new(pattern: impl Into<String>, payload: impl Serialize) -> Result<Self> {
        let pattern = pattern.into();
        Ok(EventEnvelope {
            payload: encode(Kind::Event, &pattern, payload)?,
            pattern,
            metadata: TransportMetadata::default(),
        })
    }

    /// Replaces the metadata (builder style).
    pub fn with_metadata(mut self, metadata: TransportMetadata) -> Self {
        self.metadata = metadata;
        self
    }
}

fn encode(kind: Kind, pattern: &str, payload: impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(payload).map_err(|source| Error::EncodePayload {
        kind,
        request: Request::new(None, pattern),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn envelopes_serialize_as_request_frames_without_kind() {
        let envelope = MessageEnvelope::new("app.add", (1, 2))
            .unwrap()
            .with_metadata(TransportMetadata::new().insert("k", "v"));
        assert_eq!(
            serde_json::to_string(&envelope).unwrap(),
            r#"{"pattern":"app.add","payload":[1,2],"metadata":{"values":{"k":"v"}}}"#
        );
        let event: EventEnvelope =
            serde_json::from_str(r#"{"pattern":"app.ping","payload":null}"#).unwrap();
        assert_eq!(event.metadata, TransportMetadata::default());
    }

    #[test]
    fn a_payload_that_cannot_be_serialized_is_an_error_with_nestforge_text() {
        // JSON object keys must be strings.
        let payload: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let err = EventEnvelope::new("app.ping", payload).unwrap_err();
        assert_eq!(err.to_string(), "Failed to serialize event payload");
        assert!(format!("{err:#}").starts_with("Failed to serialize event payload: "));
        let err = MessageEnvelope::new(
            "app.add",
            [((1u8, 2u8), 3u8)].into_iter().collect::<BTreeMap<_, _>>(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Failed to serialize message payload");
    }
}
