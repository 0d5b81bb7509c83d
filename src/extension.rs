//! The extension point of the core: what an optional transport (the MQTT bridge) plugs into,
//! so that the registry and the server know nothing about it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::error::{Request, Result};
use crate::providers::Providers;

/// A future an extension hands to the core.
pub(crate) type ExtensionFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Hooks a transport installs next to the providers
/// ([`Providers::with_extension`]).
pub(crate) trait Extension: Send + Sync + 'static {
    /// A WebSocket request for a message pattern no local handler serves: the reply's
    /// payload, or `None` when the extension does not serve `request.pattern` either.
    fn on_unknown_message(
        &self,
        request: &Request,
        payload: &RawValue,
    ) -> Option<ExtensionFuture<Result<Box<RawValue>>>>;

    /// An event from a WebSocket client, before it is handled locally; `true` when the
    /// extension carried it (then it is not an unknown pattern without a local handler).
    fn on_event(&self, pattern: &str, payload: &RawValue) -> bool;

    /// A task to run on the server's thread while it serves.
    fn background_task(&self, providers: Providers) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// Where [`Providers`] keep the installed extension. Without a transport that can install
/// one it holds nothing, so that the core's hook calls compile away.
#[derive(Clone, Default)]
pub(crate) struct Installed {
    #[cfg(feature = "mqtt")]
    extension: Option<Arc<dyn Extension>>,
}

impl Installed {
    /// Installs `extension`.
    pub(crate) fn new(extension: Arc<dyn Extension>) -> Self {
        #[cfg(feature = "mqtt")]
        return Installed {
            extension: Some(extension),
        };
        #[cfg(not(feature = "mqtt"))]
        {
            drop(extension);
            Installed {}
        }
    }

    /// The extension, if one was installed.
    #[inline]
    pub(crate) fn get(&self) -> Option<&dyn Extension> {
        #[cfg(feature = "mqtt")]
        return self.extension.as_deref();
        #[cfg(not(feature = "mqtt"))]
        None
    }
}
