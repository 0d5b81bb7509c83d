//! How a module provides a type: a value, or a factory that sees the providers.

use std::fmt;
use std::sync::Arc;

use super::Providers;
use crate::error::HandlerError;

/// A factory's result, its error boxed.
type Made<T> = Result<T, HandlerError>;
/// A singleton's factory, run once.
type Once<T> = Box<dyn FnOnce(&Providers) -> Made<T> + Send>;
/// A request-scoped or transient provider's factory, run at resolves.
type Each<T> = Arc<dyn Fn(&Providers) -> Made<T> + Send + Sync>;

/// How a module provides `T` (NestForge's `Provider`): an item of [`module!`]'s
/// `providers: [..]` list, beside plain expressions (which are `Provider::value`s).
///
/// - [`value`](Self::value): one instance, shared (a singleton);
/// - [`factory`](Self::factory): a singleton built once, at start-up, by a function that
///   resolves what the service depends on from the providers registered before it (the
///   imported modules' first, NestForge's order);
/// - [`request_factory`](Self::request_factory): one instance per request scope, a
///   WebSocket connection: made at its first resolve within the connection (its
///   [`WebSocketContext`](crate::WebSocketContext) and every
///   [`MicroserviceContext`](crate::MicroserviceContext) made from it), shared for the rest
///   of it, dropped with it; the factory may resolve the connection's
///   [`RequestId`](crate::RequestId) and [`AuthIdentity`](crate::AuthIdentity);
/// - [`transient_factory`](Self::transient_factory): a new instance at every resolve.
///
/// A factory may fail with any error that converts into [`HandlerError`] (this crate's
/// [`Error`](crate::Error), `anyhow::Error`, `io::Error`, ...): start-up (for `factory`) or
/// the resolve (for the others) then fails with [`Error::Provider`](crate::Error) naming `T`.
///
/// # Examples
/// ```
/// use nestforge_edge::{module, Module, Provider, Providers, RequestId};
///
/// struct AppConfig { greeting: &'static str }
/// struct Greeter { greeting: String }
/// struct Session { request: String }
///
/// fn build_greeter(container: &Providers) -> nestforge_edge::Result<Greeter> {
///     let config = container.resolve::<AppConfig>()?;
///     Ok(Greeter { greeting: config.greeting.to_uppercase() })
/// }
///
/// module! {
///     struct AppModule {
///         providers: [
///             AppConfig { greeting: "hello" },
///             Provider::factory(build_greeter),
///             Provider::request_factory(|container| {
///                 let request = container.resolve::<RequestId>()?;
///                 Ok(Session { request: request.value().to_owned() })
///             }),
///         ],
///     }
/// }
///
/// let providers = AppModule::providers()?;
/// assert_eq!(providers.resolve::<Greeter>()?.greeting, "HELLO");
/// let ctx = nestforge_edge::WebSocketContext::detached(providers);
/// assert_eq!(ctx.resolve::<Session>()?.request, "detached");
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
///
/// [`module!`]: crate::module
pub struct Provider<T> {
    pub(super) kind: ProviderKind<T>,
}

pub(super) enum ProviderKind<T> {
    Value(T),
    Factory(Once<T>),
    Request(Each<T>),
    Transient(Each<T>),
}

impl<T: Send + Sync + 'static> Provider<T> {
    /// `value`, shared: a singleton.
    pub fn value(value: T) -> Self {
        Provider {
            kind: ProviderKind::Value(value),
        }
    }

    /// A singleton built once at start-up by `factory`, which sees the providers registered
    /// before it (imports first).
    pub fn factory<E, F>(factory: F) -> Self
    where
        E: Into<HandlerError>,
        F: FnOnce(&Providers) -> Result<T, E> + Send + 'static,
    {
        Provider {
            kind: ProviderKind::Factory(Box::new(move |p| factory(p).map_err(Into::into))),
        }
    }

    /// One instance per request scope (a connection), made by `factory` at its first
    /// resolve there; `factory` sees the scope (its `RequestId`, its `AuthIdentity`, the
    /// other request-scoped providers).
    pub fn request_factory<E, F>(factory: F) -> Self
    where
        E: Into<HandlerError>,
        F: Fn(&Providers) -> Result<T, E> + Send + Sync + 'static,
    {
        Provider {
            kind: ProviderKind::Request(Arc::new(move |p| factory(p).map_err(Into::into))),
        }
    }

    /// A new instance, made by `factory`, at every resolve.
    pub fn transient_factory<E, F>(factory: F) -> Self
    where
        E: Into<HandlerError>,
        F: Fn(&Providers) -> Result<T, E> + Send + Sync + 'static,
    {
        Provider {
            kind: ProviderKind::Transient(Arc::new(move |p| factory(p).map_err(Into::into))),
        }
    }
}

impl<T> fmt::Debug for Provider<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ProviderKind::Value(_) => "value",
            ProviderKind::Factory(_) => "factory",
            ProviderKind::Request(_) => "request_factory",
            ProviderKind::Transient(_) => "transient_factory",
        };
        write!(f, "Provider::{kind}::<{}>", std::any::type_name::<T>())
    }
}
