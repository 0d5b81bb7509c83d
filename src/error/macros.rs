//! `bail!` and `ensure!` in anyhow's forms, for handler bodies (feature `anyhow`).

/// Returns early from a message or event handler with an error, in anyhow's forms:
/// `bail!("text")`, `bail!("fmt {x}")`, `bail!(error_value)` (feature `anyhow`).
///
/// anyhow's own `bail!` returns an `anyhow::Error` unconverted, which a handler (returning
/// [`HandlerError`](crate::HandlerError)) cannot; this one converts it. In functions that return
/// `anyhow::Result` keep anyhow's: their errors reach handlers through `?`.
///
/// # Examples
/// ```
/// use nestforge_edge::{bail, MicroserviceContext, MicroserviceRegistry};
///
/// let registry = MicroserviceRegistry::builder()
///     .message("users.get", |id: u32, _ctx: MicroserviceContext| async move {
///         if id == 0 {
///             bail!("User {id} not found");
///         }
///         Ok(id)
///     })
///     .build();
/// # let _ = registry;
/// ```
#[cfg(feature = "anyhow")]
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::HandlerError::from(
            $crate::__private::anyhow::anyhow!($($arg)+),
        ))
    };
}

/// Returns early from a handler with an error unless `cond` holds (feature `anyhow`):
/// `ensure!(cond)` (message ``Condition failed: `cond` ``) or `ensure!(cond, "fmt", ..)`.
///
/// # Examples
/// ```
/// use nestforge_edge::{ensure, MicroserviceContext, MicroserviceRegistry};
///
/// let registry = MicroserviceRegistry::builder()
///     .message("math.div", |(a, b): (i64, i64), _ctx: MicroserviceContext| async move {
///         ensure!(b != 0, "division by zero");
///         Ok(a / b)
///     })
///     .build();
/// # let _ = registry;
/// ```
#[cfg(feature = "anyhow")]
#[macro_export]
macro_rules! ensure {
    ($cond:expr $(,)?) => {
        if !$cond {
            $crate::bail!(::core::concat!("Condition failed: `", ::core::stringify!($cond), "`"));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::bail!($($arg)+);
        }
    };
}
