//! Module lifecycle hooks: what they are, when they run, in which order.

use std::fmt;

use super::Providers;
use crate::error::{Error, HandlerError, Result};

/// A module lifecycle hook (NestForge's `LifecycleHook`): a function of the providers,
/// named for the errors that report it. [`module!`](crate::module) writes these from
/// NestForge's hook functions (`fn(&Container) -> anyhow::Result<()>`, or returning this
/// crate's `Result`).
#[derive(Clone, Copy)]
pub struct LifecycleHook {
    name: &'static str,
    run: fn(&Providers) -> std::result::Result<(), HandlerError>,
}

impl LifecycleHook {
    /// The hook `run`, called `name`.
    pub const fn new(
        name: &'static str,
        run: fn(&Providers) -> std::result::Result<(), HandlerError>,
    ) -> Self {
        LifecycleHook { name, run }
    }

    /// The hook's name (its function's, with `module!`).
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Debug for LifecycleHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LifecycleHook").field(&self.name).finish()
    }
}

/// The lifecycle events, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    ModuleInit,
    ApplicationBootstrap,
    ModuleDestroy,
    ApplicationShutdown,
}

impl Phase {
    /// The events in the order they happen.
    pub(crate) const ALL: [Phase; 4] = [
        Phase::ModuleInit,
        Phase::ApplicationBootstrap,
        Phase::ModuleDestroy,
        Phase::ApplicationShutdown,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::ModuleInit => "on_module_init",
            Phase::ApplicationBootstrap => "on_application_bootstrap",
            Phase::ModuleDestroy => "on_module_destroy",
            Phase::ApplicationShutdown => "on_application_shutdown",
        }
    }
}

/// The modules' hooks, per event, in registration order (each with its module's name).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lifecycle {
    hooks: [Vec<(&'static str, LifecycleHook)>; 4],
}

impl Lifecycle {
    /// Keeps `module`'s hooks for `phase` (called once its registration is done: after its
    /// imports').
    pub(super) fn add(&mut self, module: &'static str, phase: Phase, hooks: Vec<LifecycleHook>) {
        self.hooks[phase as usize].extend(hooks.into_iter().map(|h| (module, h)));
    }

    /// Runs the hooks of `phase`: init and bootstrap in registration order, stopping at the
    /// first failure; destroy and shutdown in the reverse order, all of them (cleanup goes
    /// on), the first failure returned.
    pub(crate) fn run(&self, phase: Phase, providers: &Providers) -> Result<()> {
        let hooks = &self.hooks[phase as usize];
        let cleanup = matches!(phase, Phase::ModuleDestroy | Phase::ApplicationShutdown);
        let mut first = Ok(());
        for i in 0..hooks.len() {
            let (module, hook) = &hooks[if cleanup { hooks.len() - 1 - i } else { i }];
            if let Err(source) = (hook.run)(providers) {
                if cleanup {
                    crate::log::event!(warn, "{}: {source}", hook.name);
                }
                first = first.and(Err(Error::Lifecycle {
                    module,
                    hook: hook.name,
                    phase: phase.as_str(),
                    source,
                }));
                if !cleanup {
                    break;
                }
            }
        }
        first
    }
}

/// A type's name without its path (`app::users::UsersModule` -> `UsersModule`). On bytes:
/// no string searcher in the binary for it.
pub(crate) fn short_name(name: &'static str) -> &'static str {
    let bytes = name.as_bytes();
    // The last `::` before generic arguments, if any.
    let mut end = bytes.iter().position(|&b| b == b'<').unwrap_or(bytes.len());
    while end >= 2 {
        if bytes[end - 2..end] == *b"::" {
            return &name[end..];
        }
        end -= 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn short_names() {
        assert_eq!(short_name("app::users::UsersModule"), "UsersModule");
        assert_eq!(short_name("UsersModule"), "UsersModule");
        assert_eq!(short_name("app::Wrap<core::Inner>"), "Wrap<core::Inner>");
        assert_eq!(short_name("Wrap<core::Inner>"), "Wrap<core::Inner>");
        assert_eq!(short_name(""), "");
    }
}
