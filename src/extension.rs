//! The extension point of the core: what an optional transport (the MQTT bridge) plugs
//! into, so that the registry and the server know nothing about it. An extension is
//! installed as a provider; without a transport compiled in (the `cfg`s below list them),
//! looking it up compiles away.

use std::future::Future;
use std::pin::Pin;

use serde_json::value::RawValue;

use crate::error::{Request, Result};
use crate::providers::Providers;

/// A future an extension hands to the core.
pub(crate) type ExtensionFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The hooks of a transport.
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

    /// A task to run on the server's thread while it serves `providers`.
    fn background_task(&self, providers: Providers) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// The provider an extension is installed as.
#[cfg(feature = "mqtt")]
struct Installed(std::sync::Arc<dyn Extension>);

/// A copy of `providers` with `extension` added as the provider of `T` and installed (one
/// extension per server: a second one is [`Error::DuplicateProvider`](crate::Error)).
#[cfg(feature = "mqtt")]
pub(crate) fn install<T: Extension + Clone>(
    providers: &Providers,
    extension: T,
) -> Result<Providers> {
    let installed = Installed(std::sync::Arc::new(extension.clone()));
    providers.with(extension)?.with(installed)
}

/// The installed extension, if any.
#[inline]
pub(crate) fn installed(providers: &Providers) -> Option<&dyn Extension> {
    #[cfg(feature = "mqtt")]
    return providers.get::<Installed>().map(|installed| &*installed.0);
    #[cfg(not(feature = "mqtt"))]
    {
        let _ = providers;
        None
    }
}
