//! The provider map (NestForge's container): built once at start-up from the modules, then
//! frozen. Singletons are shared values; request-scoped providers are made once per
//! connection (the scope a [`WebSocketContext`](crate::WebSocketContext) carries) and
//! transient ones at every resolve, by factories that see the providers themselves.

mod builder;
mod lifecycle;
mod module;
mod provider;
#[cfg(test)]
mod tests;

use std::any::{type_name, Any, TypeId};
use std::fmt;
use std::sync::{Arc, Weak};

pub use builder::{Module, ProvidersBuilder};
pub use lifecycle::LifecycleHook;
pub(crate) use lifecycle::{Lifecycle, Phase};
pub use module::private;
pub use provider::Provider;

use crate::error::{Error, HandlerError, Result};

/// A provider's instance, type-erased.
pub(crate) type Instance = Arc<dyn Any + Send + Sync>;

/// A factory of request-scoped or transient instances.
pub(crate) type Factory = Arc<dyn Fn(&Providers) -> Result<Instance> + Send + Sync>;

/// How a type is provided.
#[derive(Clone)]
pub(crate) enum Kind {
    /// One instance, shared.
    Singleton(Instance),
    /// One instance per request scope (a connection), made on its first resolve there.
    Request(Factory),
    /// A new instance at every resolve.
    Transient(Factory),
}

#[derive(Clone)]
pub(crate) struct Entry {
    id: TypeId,
    name: &'static str,
    kind: Kind,
}

/// A request scope: what a connection's context lends to the providers resolved in it.
pub(crate) trait Scope: Send + Sync {
    /// A value the scope provides itself (the connection's `RequestId`, its
    /// `AuthIdentity`), for `id` when no provider of that type is registered.
    fn own(&self, id: TypeId) -> Option<Instance>;
    /// The instance of a request-scoped provider already made in this scope.
    fn made(&self, id: TypeId) -> Option<Instance>;
    /// Keeps `instance` as this scope's (a concurrent first one wins); the one kept.
    fn keep(&self, id: TypeId, instance: Instance) -> Instance;
}

/// A request scope being resolved in, and how a factory called in it sees it.
#[derive(Clone, Copy)]
pub(crate) struct ScopeRef<'a> {
    pub(crate) scope: &'a dyn Scope,
    pub(crate) weak: &'a Weak<dyn Scope>,
}

/// Providers keyed by type, built once at start-up and frozen.
///
/// Lookups are a binary search over a sorted slice: no lock, no allocation, no hashing for a
/// singleton. Clones share the same map. What a request-scoped or transient factory gets is
/// a `Providers` that also resolves the scope it was called in (its connection's
/// [`RequestId`](crate::RequestId) and [`AuthIdentity`](crate::AuthIdentity), the other
/// request-scoped providers).
///
/// # Examples
/// ```
/// use nestforge_edge::Providers;
/// struct AppConfig { app_name: String }
///
/// let mut builder = Providers::builder();
/// builder.provide(AppConfig { app_name: "edge".into() })?;
/// let providers = builder.build();
/// assert_eq!(providers.resolve::<AppConfig>()?.app_name, "edge");
/// assert_eq!(
///     providers.resolve::<u8>().unwrap_err().to_string(),
///     "Type not registered: u8"
/// );
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Providers {
    entries: Arc<[Entry]>,
    /// The request scope this view resolves in (weak: an instance kept in the scope may hold
    /// this view without keeping the scope alive).
    scope: Option<Weak<dyn Scope>>,
}

impl Providers {
    /// Starts a builder.
    pub fn builder() -> ProvidersBuilder {
        ProvidersBuilder::default()
    }

    /// The provider of type `T`: the singleton; the instance of this request scope (made
    /// now if it is the first resolve in it) for a request-scoped provider; a new instance
    /// for a transient one. [`Error::TypeNotRegistered`] (`Type not registered: <type
    /// name>`) when no module provides `T`, [`Error::RequestScopeRequired`] for a
    /// request-scoped provider outside a request scope, [`Error::Provider`] when its factory
    /// fails.
    pub fn resolve<T: Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        downcast(self.resolve_id(TypeId::of::<T>(), type_name::<T>()))
    }

    /// [`resolve`](Self::resolve)'s work, by type id (one copy of this code for every
    /// provider type).
    fn resolve_id(&self, id: TypeId, type_name: &'static str) -> Result<Instance> {
        let weak = self.scope.as_ref();
        match weak.and_then(Weak::upgrade) {
            Some(scope) => self.instance(
                id,
                type_name,
                weak.map(|weak| ScopeRef {
                    scope: &*scope,
                    weak,
                }),
            ),
            None => self.instance(id, type_name, None),
        }
    }

    /// The instance of the provider of type `id` (called `type_name`), resolved in `scope`.
    fn instance(
        &self,
        id: TypeId,
        type_name: &'static str,
        scope: Option<ScopeRef<'_>>,
    ) -> Result<Instance> {
        match self.find(id) {
            Some(Kind::Singleton(instance)) => Ok(Arc::clone(instance)),
            Some(Kind::Request(factory)) => {
                let Some(scope) = scope else {
                    return Err(Error::RequestScopeRequired { type_name });
                };
                match scope.scope.made(id) {
                    Some(instance) => Ok(instance),
                    None => {
                        let made = factory(&self.in_scope(Some(scope.weak.clone())))?;
                        Ok(scope.scope.keep(id, made))
                    }
                }
            }
            Some(Kind::Transient(factory)) => {
                factory(&self.in_scope(scope.map(|scope| scope.weak.clone())))
            }
            None => scope
                .and_then(|scope| scope.scope.own(id))
                .ok_or(Error::TypeNotRegistered { type_name }),
        }
    }

    /// [`resolve`](Self::resolve) in `scope`, this view's own scope (a context resolves
    /// through its scope without upgrading its weak reference to itself).
    pub(crate) fn resolve_with<T: Send + Sync + 'static>(
        &self,
        scope: &dyn Scope,
    ) -> Result<Arc<T>> {
        // A singleton (the usual provider) without the non-generic path's `Result` round
        // trip: a handler that resolves one per message pays no more than before.
        match self.singleton::<T>() {
            Some(instance) => Ok(instance),
            None => downcast(self.resolve_with_id(scope, TypeId::of::<T>(), type_name::<T>())),
        }
    }

    /// [`resolve_with`](Self::resolve_with)'s work, by type id.
    fn resolve_with_id(
        &self,
        scope: &dyn Scope,
        id: TypeId,
        type_name: &'static str,
    ) -> Result<Instance> {
        let weak = self.scope.as_ref().expect("a scoped view");
        self.instance(id, type_name, Some(ScopeRef { scope, weak }))
    }

    /// This map, resolving in `scope` (a context's).
    pub(crate) fn scoped(&self, scope: Weak<dyn Scope>) -> Providers {
        self.in_scope(Some(scope))
    }

    /// This map, resolving in `scope`.
    fn in_scope(&self, scope: Option<Weak<dyn Scope>>) -> Providers {
        Providers {
            entries: Arc::clone(&self.entries),
            scope,
        }
    }

    /// A borrowed reference to the singleton of type `T`, if registered (`None` for a
    /// request-scoped or transient provider: use [`resolve`](Self::resolve)).
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        match self.find(TypeId::of::<T>()) {
            Some(Kind::Singleton(instance)) => instance.downcast_ref::<T>(),
            _ => None,
        }
    }

    /// The singleton of type `T`, shared, if registered.
    pub(crate) fn singleton<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        match self.find(TypeId::of::<T>()) {
            Some(Kind::Singleton(instance)) => Arc::clone(instance).downcast::<T>().ok(),
            _ => None,
        }
    }

    /// How many providers are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no provider is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A copy with `value` added as the provider of `T` (which must not be registered).
    // Only the MQTT bridge adds providers after `create()`.
    #[cfg(feature = "mqtt")]
    pub(crate) fn with<T: Send + Sync + 'static>(&self, value: T) -> Result<Providers> {
        let mut builder = ProvidersBuilder::from_entries(self.entries.to_vec());
        builder.provide(value)?;
        Ok(builder.build())
    }

    fn find(&self, id: TypeId) -> Option<&Kind> {
        position(&self.entries, id)
            .ok()
            .map(|i| &self.entries[i].kind)
    }
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.name))
            .finish()
    }
}

/// Where the entry of type `id` is in `entries` (sorted by type id), or would be.
pub(crate) fn position(entries: &[Entry], id: TypeId) -> std::result::Result<usize, usize> {
    entries.binary_search_by(|entry| entry.id.cmp(&id))
}

/// A resolved instance as a `T` (it is one: instances are keyed by their type's id).
fn downcast<T: Send + Sync + 'static>(instance: Result<Instance>) -> Result<Arc<T>> {
    instance?
        .downcast::<T>()
        .map_err(|_| Error::TypeNotRegistered {
            type_name: type_name::<T>(),
        })
}

/// What a constructor's error becomes: [`Error::Provider`] naming `T`.
pub(crate) fn construct_error<T>(source: HandlerError) -> Error {
    Error::provider::<T>(source)
}
