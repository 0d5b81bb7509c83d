//! The [`module!`](crate::module) macro, and what its expansion uses.

/// Declares a [`Module`](crate::Module): a unit struct with NestForge's `#[module(..)]` lists, each
/// optional, in this order: `imports`, `providers`, `exports`, `on_module_init`,
/// `on_application_bootstrap`, `on_module_destroy`, `on_application_shutdown`.
///
/// - `imports: [OtherModule, ..]`: registered first, each once however often imported.
/// - `providers: [..]`: expressions, each evaluated once at start-up, in order: a plain
///   value (a singleton of its type) or a [`Provider`](crate::Provider)
///   (`Provider::value(v)`, `Provider::factory(f)`, `Provider::request_factory(f)`,
///   `Provider::transient_factory(f)`). An expression may use `?` on any error that
///   converts into [`HandlerError`](crate::HandlerError) (this crate's, anyhow's,
///   `io::Error`, ...), and so may a factory closure written in place,
///   `Provider::factory(|container| { .. })`: the macro gives it its argument and return
///   types.
/// - `exports: [Type, ..]`: each must be provided once the module is registered.
/// - hooks: functions `fn(&Providers) -> R` where `R` is this crate's `Result<()>`,
///   `anyhow::Result<()>` or any `Result<(), E>` whose error converts into `HandlerError`.
///
/// # Examples
/// ```
/// use nestforge_edge::{module, Module, Provider, Providers};
///
/// struct AppConfig { app_name: String }
/// struct Counter(std::sync::atomic::AtomicUsize);
/// struct Greeter(String);
///
/// fn warm_up(container: &Providers) -> nestforge_edge::Result<()> {
///     container.resolve::<Counter>()?.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///     Ok(())
/// }
///
/// module! {
///     /// The shared core.
///     pub struct CoreModule {
///         providers: [Counter(0.into())],
///         exports: [Counter],
///         on_module_init: [warm_up],
///     }
/// }
/// module! {
///     pub struct AppModule {
///         imports: [CoreModule],
///         providers: [
///             AppConfig { app_name: std::env::var("APP_NAME").unwrap_or_default() },
///             Provider::factory(|container| {
///                 let config = container.resolve::<AppConfig>()?;
///                 Ok(Greeter(format!("hello {}", config.app_name)))
///             }),
///         ],
///     }
/// }
/// let providers = AppModule::providers()?;
/// assert_eq!(providers.len(), 3);
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
#[macro_export]
macro_rules! module {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(imports: [$($import:ty),* $(,)?] $(,)?)?
            $(providers: [$($providers:tt)*] $(,)?)?
            $(exports: [$($export:ty),* $(,)?] $(,)?)?
            $(on_module_init: [$($init:path),* $(,)?] $(,)?)?
            $(on_application_bootstrap: [$($bootstrap:path),* $(,)?] $(,)?)?
            $(on_module_destroy: [$($destroy:path),* $(,)?] $(,)?)?
            $(on_application_shutdown: [$($shutdown:path),* $(,)?] $(,)?)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;

        impl $crate::Module for $name {
            #[allow(unused_variables)] // a module with neither imports nor providers
            fn register(providers: &mut $crate::ProvidersBuilder) -> $crate::Result<()> {
                $($(providers.import::<$import>()?;)*)?
                $($crate::__module_providers!(providers; $($providers)*);)?
                Ok(())
            }

            fn exports() -> ::std::vec::Vec<(::core::any::TypeId, &'static str)> {
                ::std::vec![$($($crate::__private::export::<$export>()),*)?]
            }

            fn on_module_init() -> ::std::vec::Vec<$crate::LifecycleHook> {
                ::std::vec![$($($crate::__module_hook!($init)),*)?]
            }

            fn on_application_bootstrap() -> ::std::vec::Vec<$crate::LifecycleHook> {
                ::std::vec![$($($crate::__module_hook!($bootstrap)),*)?]
            }

            fn on_module_destroy() -> ::std::vec::Vec<$crate::LifecycleHook> {
                ::std::vec![$($($crate::__module_hook!($destroy)),*)?]
            }

            fn on_application_shutdown() -> ::std::vec::Vec<$crate::LifecycleHook> {
                ::std::vec![$($($crate::__module_hook!($shutdown)),*)?]
            }
        }
    };
}

/// One item of `module!`'s `providers` list after another. Factory closures written in
/// place get their argument and return types (their error type cannot be inferred);
/// everything else is evaluated in a closure that may use `?`, and registered as a
/// `Provider` or as a plain value by its type.
#[doc(hidden)]
#[macro_export]
macro_rules! __module_providers {
    ($b:ident;) => {};
    ($b:ident; Provider::factory(|$c:ident| $body:expr) $(, $($rest:tt)*)?) => {
        $b.register($crate::Provider::factory(
            |$c: &$crate::Providers| -> ::core::result::Result<_, $crate::HandlerError> { $body },
        ))?;
        $crate::__module_providers!($b; $($($rest)*)?);
    };
    ($b:ident; Provider::request_factory(|$c:ident| $body:expr) $(, $($rest:tt)*)?) => {
        $b.register($crate::Provider::request_factory(
            |$c: &$crate::Providers| -> ::core::result::Result<_, $crate::HandlerError> { $body },
        ))?;
        $crate::__module_providers!($b; $($($rest)*)?);
    };
    ($b:ident; Provider::transient_factory(|$c:ident| $body:expr) $(, $($rest:tt)*)?) => {
        $b.register($crate::Provider::transient_factory(
            |$c: &$crate::Providers| -> ::core::result::Result<_, $crate::HandlerError> { $body },
        ))?;
        $crate::__module_providers!($b; $($($rest)*)?);
    };
    ($b:ident; $item:expr $(, $($rest:tt)*)?) => {
        {
            #[allow(unused_imports)]
            use $crate::__private::{RegisterProvider as _, RegisterValue as _};
            #[allow(clippy::redundant_closure_call)] // the closure is where `?` may be used
            let item = (|| -> ::core::result::Result<_, $crate::HandlerError> { Ok($item) })();
            (&$crate::__private::Item::new(item)).register_into($b)?;
        }
        $crate::__module_providers!($b; $($($rest)*)?);
    };
}

/// A hook function as a [`LifecycleHook`], whatever error type it returns.
#[doc(hidden)]
#[macro_export]
macro_rules! __module_hook {
    ($hook:path) => {
        $crate::LifecycleHook::new(::core::stringify!($hook), |container| {
            $crate::__private::hook_result($hook(container))
        })
    };
}

/// What `module!` expands to uses, and nothing else.
pub mod private {
    use std::any::{type_name, TypeId};
    use std::cell::Cell;

    use crate::error::{HandlerError, Result};
    use crate::providers::{construct_error, Provider, ProvidersBuilder};

    /// An exported type's id and name.
    pub fn export<T: 'static>() -> (TypeId, &'static str) {
        (TypeId::of::<T>(), type_name::<T>())
    }

    /// A hook's result with its error boxed.
    pub fn hook_result<E: Into<HandlerError>>(
        result: std::result::Result<(), E>,
    ) -> std::result::Result<(), HandlerError> {
        result.map_err(Into::into)
    }

    /// A `providers` item, evaluated: registered as a [`Provider`] when it is one
    /// ([`RegisterProvider`]), as a plain value otherwise ([`RegisterValue`]); which one is
    /// chosen by method resolution on `&Item<..>`, the type being known where `module!`
    /// expands.
    pub struct Item<T>(Cell<Option<std::result::Result<T, HandlerError>>>);

    impl<T> std::fmt::Debug for Item<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Item").finish_non_exhaustive()
        }
    }

    impl<T> Item<T> {
        /// The item as evaluated.
        pub fn new(item: std::result::Result<T, HandlerError>) -> Self {
            Item(Cell::new(Some(item)))
        }

        fn take(&self) -> std::result::Result<T, HandlerError> {
            self.0.take().expect("an item is registered once")
        }
    }

    /// Registers a [`Provider`] item.
    pub trait RegisterProvider {
        /// Registers the item.
        fn register_into(&self, builder: &mut ProvidersBuilder) -> Result<()>;
    }

    impl<T: Send + Sync + 'static> RegisterProvider for Item<Provider<T>> {
        fn register_into(&self, builder: &mut ProvidersBuilder) -> Result<()> {
            let provider = self.take().map_err(construct_error::<T>)?;
            builder.register(provider).map(drop)
        }
    }

    /// Registers a plain value item as a singleton.
    pub trait RegisterValue {
        /// Registers the item.
        fn register_into(&self, builder: &mut ProvidersBuilder) -> Result<()>;
    }

    impl<T: Send + Sync + 'static> RegisterValue for &Item<T> {
        fn register_into(&self, builder: &mut ProvidersBuilder) -> Result<()> {
            builder.provide_with(|| self.take()).map(drop)
        }
    }
}
