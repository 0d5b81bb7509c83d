//! Building a registry: handlers behind their payload decoding.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::reply::{reply_payload, Failure};
use super::{MicroserviceRegistry, Route, Routes};
use crate::context::{MicroserviceContext, WebSocketContext};
use crate::error::{Error, HandlerError, Result};
use crate::wire::Kind;

/// Collects handlers; [`build`](Self::build) freezes them.
#[derive(Default)]
pub struct MicroserviceRegistryBuilder {
    routes: Routes,
    duplicate: Option<(Kind, String)>,
}

impl MicroserviceRegistryBuilder {
    /// Registers a message handler: an async closure taking the typed payload and a
    /// [`MicroserviceContext`]; its `Ok` value is serialized as the reply's `payload`.
    ///
    /// The payload is deserialized straight from the frame's bytes into `P`
    /// (`()` accepts `null` or an absent payload).
    pub fn message<P, R, F, Fut>(mut self, pattern: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(P, MicroserviceContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        let route: Route = Box::new(move |payload, ctx, head| {
            let future = handler(serde_json::from_str::<P>(payload)?, ctx);
            Ok(Box::pin(async move {
                let reply = future.await.map_err(Failure::Handler)?;
                reply_payload(&reply, head.as_ref())
                    .map(Some)
                    .map_err(Failure::Serialize)
            }))
        });
        let pattern: Arc<str> = pattern.into().into();
        if self
            .routes
            .messages
            .insert(Arc::clone(&pattern), route)
            .is_some()
        {
            self.duplicate
                .get_or_insert((Kind::Message, pattern.to_string()));
        }
        self
    }

    /// Registers an event handler: like [`message`](Self::message), but nothing is sent back.
    pub fn event<P, F, Fut>(mut self, pattern: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(P, MicroserviceContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let route: Route = Box::new(move |payload, ctx, _| {
            let future = handler(serde_json::from_str::<P>(payload)?, ctx);
            Ok(Box::pin(async move {
                future.await.map_err(Failure::Handler)?;
                Ok(None)
            }))
        });
        let pattern: Arc<str> = pattern.into().into();
        if self
            .routes
            .events
            .insert(Arc::clone(&pattern), route)
            .is_some()
        {
            self.duplicate
                .get_or_insert((Kind::Event, pattern.to_string()));
        }
        self
    }

    /// Calls `observer` with every failure of a frame dispatched through
    /// [`handle_websocket_microservice_message`](crate::handle_websocket_microservice_message) (or [`serve_patterns`](crate::serve_patterns)),
    /// before it is returned or answered: the one place that sees them all, including the
    /// failures of requests with an `id`, which are answered with an error frame (`Ok`) rather
    /// than returned as `Err`. For logging and metrics; it runs on the connection's task, so
    /// it should not block. At most one observer: a second call replaces the first.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use nestforge_edge::MicroserviceRegistry;
    ///
    /// let failures = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&failures);
    /// let registry = MicroserviceRegistry::builder()
    ///     .on_error(move |err, ctx| {
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///         eprintln!("conn {}: {} ({})", ctx.connection_id(), err, err.code());
    ///     })
    ///     .build();
    /// # let _ = registry;
    /// ```
    pub fn on_error<F>(mut self, observer: F) -> Self
    where
        F: Fn(&Error, &WebSocketContext) + Send + Sync + 'static,
    {
        self.routes.on_error = Some(Box::new(observer));
        self
    }

    /// Freezes the table, or reports the first pattern registered twice in one namespace
    /// ([`Error::DuplicatePattern`]).
    pub fn try_build(self) -> Result<MicroserviceRegistry> {
        match self.duplicate {
            Some((kind, pattern)) => Err(Error::DuplicatePattern { kind, pattern }),
            None => Ok(MicroserviceRegistry {
                routes: Arc::new(self.routes),
            }),
        }
    }

    /// Freezes the table.
    ///
    /// # Panics
    /// If a pattern was registered twice in one namespace (NestForge silently keeps the
    /// last one). Use [`try_build`](Self::try_build) to get the error instead.
    pub fn build(self) -> MicroserviceRegistry {
        match self.try_build() {
            Ok(registry) => registry,
            Err(e) => panic!("{e}"),
        }
    }
}

impl fmt::Debug for MicroserviceRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicroserviceRegistryBuilder")
            .finish_non_exhaustive()
    }
}
