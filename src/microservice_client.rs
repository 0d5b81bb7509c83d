//! NestForge's microservice client: patterns called from code (services, tests) through the
//! registry's one dispatch path, without a transport.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::MicroserviceContext;
use crate::envelope::{EventEnvelope, MessageEnvelope};
use crate::error::{Error, Request, Result};
use crate::providers::Providers;
use crate::registry::MicroserviceRegistry;
use crate::wire::TransportMetadata;

/// Calls message and event patterns (NestForge's `MicroserviceClient`).
///
/// The methods are generic, so the trait is not object-safe (as in NestForge); the futures
/// are `Send` and `'static`.
pub trait MicroserviceClient: Send + Sync + 'static {
    /// Calls message `pattern` with `payload`; resolves to the handler's reply decoded into
    /// `R` ([`Error::DecodeReply`] when it does not fit).
    fn send<P, R>(
        &self,
        pattern: impl Into<String>,
        payload: P,
    ) -> Pin<Box<dyn Future<Output = Result<R>> + Send>>
    where
        P: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static;

    /// Emits event `pattern` with `payload`; resolves once the handler finished.
    fn emit<P>(
        &self,
        pattern: impl Into<String>,
        payload: P,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>
    where
        P: Serialize + Send + 'static;
}

/// A [`MicroserviceClient`] that dispatches into a registry in this process (NestForge's
/// `InProcessMicroserviceClient`): each call builds a fresh [`MicroserviceContext`] over the
/// providers, with the client's transport name (`"in-process"` unless set) and metadata.
///
/// Errors are the registry's: [`Error::UnknownPattern`], [`Error::BadPayload`],
/// [`Error::Handler`], with their codes.
///
/// # Examples
/// ```
/// use nestforge_edge::{InProcessMicroserviceClient, MicroserviceClient, MicroserviceContext,
///     MicroserviceRegistry, Providers};
///
/// let registry = MicroserviceRegistry::builder()
///     .message("users.count", |_payload: (), ctx: MicroserviceContext| async move {
///         Ok(format!("42 via {}", ctx.transport()))
///     })
///     .build();
/// let client = InProcessMicroserviceClient::new(Providers::default(), registry)
///     .with_transport("test-client");
/// let reply: String = futures_lite::future::block_on(client.send("users.count", ()))?;
/// assert_eq!(reply, "42 via test-client");
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
#[derive(Clone)]
pub struct InProcessMicroserviceClient {
    providers: Providers,
    registry: MicroserviceRegistry,
    transport: Arc<str>,
    metadata: TransportMetadata,
}

impl InProcessMicroserviceClient {
    /// A client over `container` (the providers handlers resolve from) and `registry`.
    pub fn new(container: Providers, registry: MicroserviceRegistry) -> Self {
        InProcessMicroserviceClient {
            providers: container,
            registry,
            transport: Arc::from("in-process"),
            metadata: TransportMetadata::default(),
        }
    }

    /// Sets the transport name handlers see in `ctx.transport()` (builder style).
    pub fn with_transport(mut self, transport: impl Into<String>) -> Self {
        self.transport = Arc::from(transport.into());
        self
    }

    /// Sets the metadata handlers see in `ctx.metadata()` (builder style).
    pub fn with_metadata(mut self, metadata: TransportMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    fn context(&self, pattern: &str) -> MicroserviceContext {
        MicroserviceContext::with_transport(
            self.providers.clone(),
            Arc::clone(&self.transport),
            pattern,
            self.metadata.clone(),
        )
    }
}

impl MicroserviceClient for InProcessMicroserviceClient {
    fn send<P, R>(
        &self,
        pattern: impl Into<String>,
        payload: P,
    ) -> Pin<Box<dyn Future<Output = Result<R>> + Send>>
    where
        P: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let pattern = pattern.into();
        let ctx = self.context(&pattern);
        let envelope = MessageEnvelope::new(pattern, payload);
        let registry = self.registry.clone();
        Box::pin(async move {
            let envelope = envelope?;
            let reply = registry.call_message(&envelope, ctx).await?;
            serde_json::from_str(reply.as_str()).map_err(|source| Error::DecodeReply {
                request: Request::new(None, &envelope.pattern),
                source,
            })
        })
    }

    fn emit<P>(
        &self,
        pattern: impl Into<String>,
        payload: P,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>
    where
        P: Serialize + Send + 'static,
    {
        let pattern = pattern.into();
        let ctx = self.context(&pattern);
        let envelope = EventEnvelope::new(pattern, payload);
        let registry = self.registry.clone();
        Box::pin(async move { registry.dispatch_event(envelope?, ctx).await })
    }
}

impl fmt::Debug for InProcessMicroserviceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessMicroserviceClient")
            .field("transport", &self.transport)
            .field("metadata", &self.metadata)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MicroserviceContext;

    fn send_static<T: Send + 'static>(_: &T) {}

    #[test]
    fn calls_see_the_default_transport_and_the_futures_are_send() {
        let registry = MicroserviceRegistry::builder()
            .message("t", |_: (), ctx: MicroserviceContext| async move {
                Ok(ctx.transport().to_owned())
            })
            .event("e", |_: (), _ctx| async move { Ok(()) })
            .build();
        let client = InProcessMicroserviceClient::new(Providers::default(), registry);
        let send = client.send::<_, String>("t", ());
        let emit = client.emit("e", ());
        send_static(&send);
        send_static(&emit);
        assert_eq!(futures_lite::future::block_on(send).unwrap(), "in-process");
        futures_lite::future::block_on(emit).unwrap();
        // A payload that is not JSON is refused before dispatch.
        let bad: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let err = futures_lite::future::block_on(client.emit("e", bad)).unwrap_err();
        assert_eq!(err.to_string(), "Failed to serialize event payload");
    }
}
