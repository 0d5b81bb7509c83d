//! The static provider map (NestForge's container, frozen) and the `Module` trait.

use std::any::{type_name, Any, TypeId};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, HandlerError, Result};

type Entry = (TypeId, &'static str, Arc<dyn Any + Send + Sync>);

/// Providers keyed by type, built once at start-up and frozen.
///
/// Lookups are a binary search over a sorted slice: no lock, no allocation, no hashing.
/// Clones share the same map.
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
}

impl Providers {
    /// Starts a builder.
    pub fn builder() -> ProvidersBuilder {
        ProvidersBuilder::default()
    }

    /// The provider of type `T`, or [`Error::TypeNotRegistered`]
    /// (`Type not registered: <type name>`).
    pub fn resolve<T: Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.find(TypeId::of::<T>())
            .and_then(|any| Arc::clone(any).downcast::<T>().ok())
            .ok_or(Error::TypeNotRegistered {
                type_name: type_name::<T>(),
            })
    }

    /// A borrowed reference to the provider of type `T`, if registered.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.find(TypeId::of::<T>())
            .and_then(|any| any.downcast_ref::<T>())
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
    // Only optional transports add providers after `create()`.
    #[allow(dead_code)]
    pub(crate) fn with<T: Send + Sync + 'static>(&self, value: T) -> Result<Providers> {
        let mut builder = ProvidersBuilder {
            entries: self.entries.to_vec(),
            ..ProvidersBuilder::default()
        };
        builder.provide(value)?;
        Ok(builder.build())
    }

    fn find(&self, id: TypeId) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.entries
            .binary_search_by(|entry| entry.0.cmp(&id))
            .ok()
            .map(|i| &self.entries[i].2)
    }
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|s| s.1))
            .finish()
    }
}

/// Collects providers before they are frozen into [`Providers`].
#[derive(Default)]
pub struct ProvidersBuilder {
    entries: Vec<Entry>,
    /// Modules imported so far (each registers once).
    imported: Vec<TypeId>,
    /// The modules being registered, innermost last.
    importing: Vec<&'static str>,
    /// Which module provided each type (when one did).
    owners: Vec<(TypeId, &'static str)>,
}

impl ProvidersBuilder {
    /// Registers `value` as the provider of its type. A type may be provided once;
    /// a second time is [`Error::DuplicateProvider`] ([`Error::ProviderConflict`], naming
    /// both, when two modules provide it).
    pub fn provide<T: Send + Sync + 'static>(&mut self, value: T) -> Result<&mut Self> {
        self.provide_arc(Arc::new(value))
    }

    /// Registers an already shared value as the provider of `T`.
    pub fn provide_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) -> Result<&mut Self> {
        // Kept sorted as it grows (a handful of entries): no sort routine in the binary.
        let id = TypeId::of::<T>();
        let module = self.importing.last().copied();
        match self.entries.binary_search_by(|entry| entry.0.cmp(&id)) {
            Ok(_) => {
                let first = self.owners.iter().find(|o| o.0 == id).map(|o| o.1);
                Err(match (first, module) {
                    (Some(first), Some(second)) if first != second => Error::ProviderConflict {
                        type_name: type_name::<T>(),
                        first,
                        second,
                    },
                    _ => Error::DuplicateProvider {
                        type_name: type_name::<T>(),
                    },
                })
            }
            Err(i) => {
                self.entries.insert(i, (id, type_name::<T>(), value));
                if let Some(module) = module {
                    self.owners.push((id, module));
                }
                Ok(self)
            }
        }
    }

    /// Registers module `M` unless it was already imported: a module reached twice through
    /// imports (a shared config module) registers its providers once. A type provided by
    /// two different modules is [`Error::ProviderConflict`], naming both.
    ///
    /// An import cycle ends at the module already being registered.
    pub fn import<M: Module + 'static>(&mut self) -> Result<&mut Self> {
        let id = TypeId::of::<M>();
        if self.imported.contains(&id) {
            return Ok(self);
        }
        self.imported.push(id);
        self.importing.push(type_name::<M>());
        let registered = M::register(self);
        self.importing.pop();
        registered.map(|()| self)
    }

    /// Runs a fallible constructor and registers what it returns. A failure becomes
    /// [`Error::Provider`] naming the type, and `create()` fails with it.
    pub fn provide_with<T, E, F>(&mut self, factory: F) -> Result<&mut Self>
    where
        T: Send + Sync + 'static,
        E: Into<HandlerError>,
        F: FnOnce() -> std::result::Result<T, E>,
    {
        match factory() {
            Ok(value) => self.provide(value),
            Err(e) => Err(Error::Provider {
                type_name: type_name::<T>(),
                source: e.into(),
            }),
        }
    }

    /// Whether a provider of `T` is already registered (for modules imported twice).
    pub fn contains<T: 'static>(&self) -> bool {
        let id = TypeId::of::<T>();
        self.entries
            .binary_search_by(|entry| entry.0.cmp(&id))
            .is_ok()
    }

    /// Freezes the map.
    pub fn build(self) -> Providers {
        Providers {
            entries: self.entries.into(),
        }
    }
}

impl fmt::Debug for ProvidersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|s| s.1))
            .finish()
    }
}

/// An application module: registers its providers (NestForge's
/// `#[module(providers = [...])]`, without a proc-macro).
///
/// Imports are `providers.import::<OtherModule>()?`, which registers a module reached
/// twice only once (calling `OtherModule::register(providers)` directly would register it
/// again).
///
/// # Examples
/// ```
/// use nestforge_edge::{Module, ProvidersBuilder, Result};
///
/// struct AppConfig { app_name: String }
/// impl AppConfig {
///     fn from_env() -> Result<Self, std::env::VarError> {
///         Ok(AppConfig { app_name: std::env::var("APP_NAME").unwrap_or_else(|_| "edge".into()) })
///     }
/// }
///
/// struct AppModule;
/// impl Module for AppModule {
///     fn register(providers: &mut ProvidersBuilder) -> Result<()> {
///         providers.provide_with(AppConfig::from_env)?;
///         Ok(())
///     }
/// }
/// ```
///
/// The [`module!`](crate::module) macro writes the same impl from a list of expressions.
pub trait Module {
    /// Registers this module's providers (and its imports').
    fn register(providers: &mut ProvidersBuilder) -> Result<()>;

    /// Builds the frozen provider map of this module.
    fn providers() -> Result<Providers>
    where
        Self: Sized + 'static,
    {
        let mut builder = Providers::builder();
        builder.import::<Self>()?;
        Ok(builder.build())
    }
}

/// Declares a [`Module`]: a unit struct whose providers are the listed expressions,
/// each evaluated once at start-up, in order. An expression may use `?` on any error
/// that converts into [`HandlerError`](crate::HandlerError); imports are other modules,
/// registered before the providers, each once however often it is imported.
///
/// # Examples
/// ```
/// use nestforge_edge::{module, Module};
///
/// struct AppConfig { app_name: String }
/// struct Counter(std::sync::atomic::AtomicUsize);
///
/// module! {
///     /// The shared core.
///     pub struct CoreModule {
///         providers: [Counter(0.into())],
///     }
/// }
/// module! {
///     pub struct AppModule {
///         imports: [CoreModule],
///         providers: [AppConfig { app_name: std::env::var("APP_NAME").unwrap_or_default() }],
///     }
/// }
/// let providers = AppModule::providers()?;
/// assert_eq!(providers.len(), 2);
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
#[macro_export]
macro_rules! module {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(imports: [$($import:ty),* $(,)?],)?
            providers: [$($provider:expr),* $(,)?] $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;

        impl $crate::Module for $name {
            fn register(providers: &mut $crate::ProvidersBuilder) -> $crate::Result<()> {
                $($(providers.import::<$import>()?;)*)?
                $(
                    providers.provide_with(|| -> ::core::result::Result<_, $crate::HandlerError> {
                        Ok($provider)
                    })?;
                )*
                Ok(())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Config(&'static str);
    struct Users;
    struct Audit;

    crate::module! { struct ConfigModule { providers: [Config("edge")] } }
    crate::module! { struct UsersModule { imports: [ConfigModule], providers: [Users] } }
    crate::module! { struct AuditModule { imports: [ConfigModule], providers: [Audit] } }
    crate::module! {
        struct AppModule { imports: [UsersModule, AuditModule, ConfigModule], providers: [] }
    }

    #[test]
    fn a_module_imported_twice_registers_once() {
        let providers = AppModule::providers().unwrap();
        assert_eq!(providers.len(), 3);
        assert_eq!(providers.resolve::<Config>().unwrap().0, "edge");
    }

    crate::module! { struct OtherConfigModule { providers: [Config("other")] } }
    crate::module! { struct ClashModule { imports: [ConfigModule, OtherConfigModule], providers: [] } }

    #[test]
    fn one_type_from_two_modules_names_both() {
        let err = ClashModule::providers().unwrap_err();
        assert!(matches!(err, Error::ProviderConflict { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("Type already registered: "), "{text}");
        assert!(
            text.contains("ConfigModule`") && text.contains("OtherConfigModule`"),
            "{text}"
        );
    }

    #[test]
    fn one_type_twice_in_one_module_stays_a_duplicate() {
        crate::module! { struct Twice { providers: [1u8, 2u8] } }
        let err = Twice::providers().unwrap_err();
        assert!(
            matches!(err, Error::DuplicateProvider { type_name: "u8" }),
            "{err:?}"
        );
    }

    #[test]
    fn an_import_cycle_ends_at_the_module_being_registered() {
        struct A;
        struct B;
        impl Module for A {
            fn register(providers: &mut ProvidersBuilder) -> Result<()> {
                providers.import::<B>()?.provide(1u8)?;
                Ok(())
            }
        }
        impl Module for B {
            fn register(providers: &mut ProvidersBuilder) -> Result<()> {
                providers.import::<A>()?.provide(2u16)?;
                Ok(())
            }
        }
        assert_eq!(A::providers().unwrap().len(), 2);
    }
}
