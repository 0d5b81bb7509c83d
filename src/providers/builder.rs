//! Collecting providers, module by module, before they are frozen.

use std::any::{type_name, TypeId};
use std::fmt;
use std::sync::Arc;

use super::lifecycle::{short_name, Lifecycle, LifecycleHook, Phase};
use super::provider::{Provider, ProviderKind};
use super::{construct_error, Entry, Instance, Kind, Providers};
use crate::error::{Error, HandlerError, Result};

/// Collects providers before they are frozen into [`Providers`].
#[derive(Default)]
pub struct ProvidersBuilder {
    /// Sorted by type id.
    entries: Vec<Entry>,
    /// Types a test provided before the modules (see `TestFactory::override_provider`): a
    /// module providing them again is skipped, its factory never run.
    overridden: Vec<TypeId>,
    /// Types the application provides unless a module does (`Connections`, `Spawner`).
    defaults: Vec<TypeId>,
    /// Modules whose registration finished (each registers once).
    imported: Vec<TypeId>,
    /// The modules being registered, innermost last.
    importing: Vec<(TypeId, &'static str)>,
    /// Which module provided each type (when one did).
    owners: Vec<(TypeId, &'static str)>,
    /// The modules' lifecycle hooks, in registration order.
    lifecycle: Lifecycle,
}

impl ProvidersBuilder {
    /// A builder holding `entries` (for [`Providers::with`]).
    #[cfg(feature = "mqtt")]
    pub(crate) fn from_entries(entries: Vec<Entry>) -> Self {
        ProvidersBuilder {
            entries,
            ..ProvidersBuilder::default()
        }
    }

    /// Registers `value` as the provider of its type. A type may be provided once;
    /// a second time is [`Error::DuplicateProvider`] ([`Error::ProviderConflict`], naming
    /// both, when two modules provide it).
    pub fn provide<T: Send + Sync + 'static>(&mut self, value: T) -> Result<&mut Self> {
        self.provide_arc(Arc::new(value))
    }

    /// Registers an already shared value as the provider of `T`.
    pub fn provide_arc<T: Send + Sync + 'static>(&mut self, value: Arc<T>) -> Result<&mut Self> {
        self.insert::<T>(Kind::Singleton(value))?;
        Ok(self)
    }

    /// Registers `provider` (a value, or a singleton, request-scoped or transient factory);
    /// a singleton factory runs now, with the providers registered so far. See
    /// [`Provider`].
    pub fn register<T: Send + Sync + 'static>(
        &mut self,
        provider: Provider<T>,
    ) -> Result<&mut Self> {
        let kind = match provider.kind {
            ProviderKind::Value(value) => Kind::Singleton(Arc::new(value)),
            ProviderKind::Factory(factory) => {
                if self.is_overridden::<T>() {
                    return Ok(self); // the override stands; its factory is not needed
                }
                let value = factory(&self.snapshot()).map_err(construct_error::<T>)?;
                Kind::Singleton(Arc::new(value))
            }
            ProviderKind::Request(factory) => Kind::Request(Arc::new(move |p| {
                let made: Instance = Arc::new(factory(p).map_err(construct_error::<T>)?);
                Ok(made)
            })),
            ProviderKind::Transient(factory) => Kind::Transient(Arc::new(move |p| {
                let made: Instance = Arc::new(factory(p).map_err(construct_error::<T>)?);
                Ok(made)
            })),
        };
        self.insert::<T>(kind)?;
        Ok(self)
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
            Err(e) => Err(construct_error::<T>(e.into())),
        }
    }

    /// Whether a provider of `T` is already registered (for modules imported twice).
    pub fn contains<T: 'static>(&self) -> bool {
        self.position(TypeId::of::<T>()).is_ok()
    }

    /// Registers module `M` unless it was already imported: a module reached twice through
    /// imports (a shared config module) registers its providers once, its imports first.
    /// Then checks its exports (each must be provided: [`Error::MissingExport`]) and keeps
    /// its lifecycle hooks. A type provided by two different modules is
    /// [`Error::ProviderConflict`], naming both; a module that imports itself, directly or
    /// not, is [`Error::ImportCycle`] (`Detected module import cycle: A -> B -> A`).
    pub fn import<M: Module + 'static>(&mut self) -> Result<&mut Self> {
        self.import_module(
            (TypeId::of::<M>(), type_name::<M>()),
            M::register,
            M::exports,
            [
                M::on_module_init,
                M::on_application_bootstrap,
                M::on_module_destroy,
                M::on_application_shutdown,
            ],
        )?;
        Ok(self)
    }

    /// [`import`](Self::import)'s work, with the module's functions (one copy of this code
    /// for every module type); `hooks` in [`Phase`] order.
    fn import_module(
        &mut self,
        (id, name): (TypeId, &'static str),
        register: fn(&mut Self) -> Result<()>,
        exports: fn() -> Vec<(TypeId, &'static str)>,
        hooks: [fn() -> Vec<LifecycleHook>; 4],
    ) -> Result<()> {
        if let Some(at) = self.importing.iter().position(|m| m.0 == id) {
            let mut path: Vec<&str> = self.importing[at..]
                .iter()
                .map(|m| short_name(m.1))
                .collect();
            path.push(short_name(name));
            return Err(Error::ImportCycle {
                path: path.join(" -> "),
            });
        }
        if self.imported.contains(&id) {
            return Ok(());
        }
        self.importing.push((id, name));
        let registered = register(self);
        self.importing.pop();
        registered?;
        self.imported.push(id);
        let module = short_name(name);
        for (export, type_name) in exports() {
            if self.position(export).is_err() {
                return Err(Error::MissingExport { module, type_name });
            }
        }
        for (phase, hooks) in Phase::ALL.into_iter().zip(hooks) {
            self.lifecycle.add(module, phase, hooks());
        }
        Ok(())
    }

    /// Freezes the map.
    pub fn build(self) -> Providers {
        self.finish().0
    }

    /// Freezes the map; the modules' lifecycle hooks beside it.
    pub(crate) fn finish(self) -> (Providers, Lifecycle) {
        let providers = Providers {
            entries: self.entries.into(),
            scope: None,
        };
        (providers, self.lifecycle)
    }

    /// Provides `value` before any module registers: a module's own provider of `T` is then
    /// skipped (and its factory never run), so that factories see the override.
    pub(crate) fn override_with<T: Send + Sync + 'static>(&mut self, value: T) -> Result<()> {
        self.insert::<T>(Kind::Singleton(Arc::new(value)))?;
        self.overridden.push(TypeId::of::<T>());
        Ok(())
    }

    /// Provides `value` unless a module provides `T` itself (then the module's replaces it).
    pub(crate) fn provide_default<T: Send + Sync + 'static>(&mut self, value: T) -> Result<()> {
        self.insert::<T>(Kind::Singleton(Arc::new(value)))?;
        self.defaults.push(TypeId::of::<T>());
        Ok(())
    }

    fn is_overridden<T: 'static>(&self) -> bool {
        self.overridden.contains(&TypeId::of::<T>())
    }

    /// The providers registered so far, for a singleton factory.
    fn snapshot(&self) -> Providers {
        Providers {
            entries: self.entries.clone().into(),
            scope: None,
        }
    }

    fn position(&self, id: TypeId) -> std::result::Result<usize, usize> {
        super::position(&self.entries, id)
    }

    fn insert<T: 'static>(&mut self, kind: Kind) -> Result<()> {
        self.insert_kind(TypeId::of::<T>(), type_name::<T>(), kind)
    }

    /// [`insert`](Self::insert)'s work (one copy of this code for every provider type).
    fn insert_kind(&mut self, id: TypeId, type_name: &'static str, kind: Kind) -> Result<()> {
        // Kept sorted as it grows (a handful of entries): no sort routine in the binary.
        let module = self.importing.last().map(|m| m.1);
        match self.position(id) {
            Ok(_) if self.overridden.contains(&id) => Ok(()),
            Ok(i) if self.defaults.contains(&id) => {
                self.defaults.retain(|d| *d != id);
                self.entries[i].kind = kind;
                if let Some(module) = module {
                    self.owners.push((id, module));
                }
                Ok(())
            }
            Ok(_) => {
                let first = self.owners.iter().find(|o| o.0 == id).map(|o| o.1);
                Err(match (first, module) {
                    (Some(first), Some(second)) if first != second => Error::ProviderConflict {
                        type_name,
                        first,
                        second,
                    },
                    _ => Error::DuplicateProvider { type_name },
                })
            }
            Err(i) => {
                self.entries.insert(
                    i,
                    Entry {
                        id,
                        name: type_name,
                        kind,
                    },
                );
                if let Some(module) = module {
                    self.owners.push((id, module));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for ProvidersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.name))
            .finish()
    }
}

/// An application module: registers its providers (NestForge's `#[module(..)]`, without a
/// proc-macro), and may export types and run hooks at the application's lifecycle events.
///
/// Imports are `providers.import::<OtherModule>()?`, which registers a module reached
/// twice only once (calling `OtherModule::register(providers)` directly would register it
/// again). Every item but `register` has a default, so a module written by hand needs only
/// that.
///
/// Hooks run, module by module in registration order (imports before importers):
/// `on_module_init` when the application is created ([`NestForgeFactory::create`],
/// [`TestFactory::build`]), `on_application_bootstrap` when serving starts (and in
/// `TestFactory::build`); then, in the reverse order, `on_module_destroy` and
/// `on_application_shutdown` at graceful shutdown ([`ShutdownHandle::shutdown`],
/// [`Server::serve_with_graceful_shutdown`], [`TestingModule::shutdown`]). A failing init or
/// bootstrap hook fails start-up with [`Error::Lifecycle`], naming its module.
///
/// [`NestForgeFactory::create`]: crate::NestForgeFactory::create
/// [`TestFactory::build`]: crate::TestFactory::build
/// [`ShutdownHandle::shutdown`]: crate::ShutdownHandle::shutdown
/// [`Server::serve_with_graceful_shutdown`]: crate::Server::serve_with_graceful_shutdown
/// [`TestingModule::shutdown`]: crate::TestingModule::shutdown
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
/// The [`module!`](crate::module) macro writes the same impl from lists.
pub trait Module {
    /// Registers this module's providers (and its imports').
    fn register(providers: &mut ProvidersBuilder) -> Result<()>;

    /// The types this module exposes (each must be provided once its registration is done):
    /// their ids and names.
    fn exports() -> Vec<(TypeId, &'static str)> {
        Vec::new()
    }

    /// Hooks run when the application is created.
    fn on_module_init() -> Vec<LifecycleHook> {
        Vec::new()
    }

    /// Hooks run when the application starts serving.
    fn on_application_bootstrap() -> Vec<LifecycleHook> {
        Vec::new()
    }

    /// Hooks run at graceful shutdown, before `on_application_shutdown`.
    fn on_module_destroy() -> Vec<LifecycleHook> {
        Vec::new()
    }

    /// Hooks run at graceful shutdown, last.
    fn on_application_shutdown() -> Vec<LifecycleHook> {
        Vec::new()
    }

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
