//! The crate's one error type.

mod app;
mod code;
mod macros;

use std::fmt;
use std::io;

use serde_json::value::RawValue;

use crate::wire::Kind;

pub use app::{AppError, CodedError};
pub use code::ErrorCode;

/// What a message or event handler may fail with.
///
/// Any `std::error::Error + Send + Sync` converts into it with `?` (this crate's [`Error`],
/// `serde_json::Error`, `io::Error`, ...), and so do `&str` and `String`:
/// `Err("boom".into())`. So does `anyhow::Error` (anyhow provides the conversion; no feature
/// needed): the handler's `Display` is the outermost context, as NestForge sends it, and
/// `{:#}` on the resulting [`Error::Handler`] shows the whole chain. anyhow's `bail!` and
/// `ensure!` return an `anyhow::Error` as is, so inside a handler body use this crate's
/// `bail!` and `ensure!` (feature `anyhow`) instead.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The request a dispatch error belongs to: its pattern and, when the client sent one, its `id`.
///
/// Carried by the dispatch variants of [`Error`] so that an error frame can be correlated.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request's `"id"`, verbatim JSON (a number or a string), if it had one.
    pub id: Option<Box<RawValue>>,
    /// The request's pattern.
    pub pattern: Box<str>,
}

impl Request {
    #[cold]
    pub(crate) fn new(id: Option<&RawValue>, pattern: &str) -> Self {
        Request {
            id: id.map(RawValue::to_owned),
            pattern: pattern.into(),
        }
    }
}

/// Every failure this crate reports.
///
/// `Display` keeps NestForge 1.9's texts where NestForge has one (``No message handler
/// registered for `x` ``, `Failed to deserialize message payload`, `Type not registered: T`, serde's
/// message for bad JSON), so `format!("error:{err}")` sends the same bytes as NestForge. The
/// alternate form `{:#}` appends the cause (`Failed to deserialize message payload: missing
/// field ...`). [`Error::code`] gives a stable machine-readable code and
/// [`Error::to_message`] renders the JSON error frame.
///
/// `Debug` shows the code and the message with its cause (`Error { code: "bad_frame",
/// message: "expected value at line 1 column 1" }`): what a `main` returning the error
/// prints.
#[non_exhaustive]
pub enum Error {
    /// A request frame was not valid JSON or not a valid request (missing `kind`, ...).
    BadFrame {
        /// serde_json's reason.
        source: serde_json::Error,
    },
    /// No handler is registered for the pattern in the namespace (`kind`) asked for.
    UnknownPattern {
        /// Message or event namespace.
        kind: Kind,
        /// The offending request.
        request: Request,
    },
    /// The payload did not deserialize into the handler's payload type.
    BadPayload {
        /// Message or event.
        kind: Kind,
        /// The offending request.
        request: Request,
        /// serde_json's reason.
        source: serde_json::Error,
    },
    /// The handler returned an error; `Display` shows the handler's error.
    Handler {
        /// The request being handled.
        request: Request,
        /// What the handler returned.
        source: HandlerError,
    },
    /// The handler's reply could not be serialized to JSON.
    Serialize {
        /// The request being handled.
        request: Request,
        /// serde_json's reason.
        source: serde_json::Error,
    },
    /// An envelope's payload could not be serialized to JSON
    /// ([`MessageEnvelope::new`](crate::MessageEnvelope::new), the client's `send`/`emit`).
    EncodePayload {
        /// Message or event.
        kind: Kind,
        /// The request being built.
        request: Request,
        /// serde_json's reason.
        source: serde_json::Error,
    },
    /// A reply did not deserialize into the type the client's `send` asked for.
    DecodeReply {
        /// The request that was answered.
        request: Request,
        /// serde_json's reason.
        source: serde_json::Error,
    },
    /// `resolve::<T>()` asked for a type no module provided.
    TypeNotRegistered {
        /// `std::any::type_name::<T>()`.
        type_name: &'static str,
    },
    /// A provider of this type was registered twice.
    DuplicateProvider {
        /// `std::any::type_name::<T>()`.
        type_name: &'static str,
    },
    /// Two different modules provide the same type.
    ProviderConflict {
        /// `std::any::type_name::<T>()`.
        type_name: &'static str,
        /// The module that provided it first.
        first: &'static str,
        /// The module that provided it again.
        second: &'static str,
    },
    /// A provider's constructor (or factory) failed: [`Error::provider`] makes one.
    Provider {
        /// The provider's type.
        type_name: &'static str,
        /// What the constructor returned.
        source: HandlerError,
    },
    /// The same pattern was registered twice in one namespace.
    DuplicatePattern {
        /// Message or event namespace.
        kind: Kind,
        /// The pattern.
        pattern: String,
    },
    /// A request-scoped provider was resolved outside a request scope (from the root
    /// providers, in a singleton factory or a lifecycle hook, rather than from a
    /// connection's context).
    RequestScopeRequired {
        /// The provider's type.
        type_name: &'static str,
    },
    /// Modules import each other in a loop.
    ImportCycle {
        /// The modules on the loop, `A -> B -> A`.
        path: String,
    },
    /// A module exports a type that no module provides.
    MissingExport {
        /// The exporting module.
        module: &'static str,
        /// The exported type.
        type_name: &'static str,
    },
    /// A module lifecycle hook failed.
    Lifecycle {
        /// The hook's module.
        module: &'static str,
        /// The hook's name.
        hook: &'static str,
        /// The lifecycle event (`on_module_init`, ...).
        phase: &'static str,
        /// What the hook returned.
        source: HandlerError,
    },
    /// Two gateways were mounted on the same endpoint.
    DuplicateEndpoint {
        /// The endpoint.
        endpoint: String,
    },
    /// A push was not queued ([`Connections::emit`](crate::Connections::emit)).
    ///
    /// This variant and the next two are transparent: displayed as the error they hold, with
    /// that error's cause as their `source`.
    Push(crate::PushError),
    /// A WebSocket protocol or transport error on a connection.
    WebSocket(tungstenite::Error),
    /// An I/O error (binding, accepting).
    Io(io::Error),
    /// A forwarded request got no reply from the broker in time (feature `mqtt`).
    #[cfg(feature = "mqtt")]
    Timeout {
        /// The forwarded request.
        request: Request,
        /// The configured request timeout.
        after: std::time::Duration,
    },
    /// A request could not be forwarded: the broker link is down or a bound was reached
    /// (feature `mqtt`).
    #[cfg(feature = "mqtt")]
    Unavailable {
        /// The request.
        request: Request,
        /// Why.
        reason: &'static str,
    },
    /// The remote service answered a forwarded request with an error (feature `mqtt`).
    #[cfg(feature = "mqtt")]
    Remote {
        /// The forwarded request.
        request: Request,
        /// The remote error text (a `String` inside), when
        /// [`MqttConfig::expose_remote_errors`](crate::mqtt::MqttConfig) is on.
        detail: Option<HandlerError>,
    },
    /// The MQTT settings are unusable (feature `mqtt`).
    #[cfg(feature = "mqtt")]
    MqttConfig {
        /// What is wrong.
        reason: Box<str>,
    },
}

/// The code and the alternate display: one formatting path instead of a derived one per
/// variant (BENCHMARKS.md#binary-size).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code_str())
            .field("message", &format_args!("{self:#}"))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadFrame { source } => fmt::Display::fmt(source, f)?,
            Error::UnknownPattern { kind, request } => write!(
                f,
                "No {} handler registered for `{}`",
                kind.as_str(),
                request.pattern
            )?,
            Error::BadPayload { kind, .. } => {
                write!(f, "Failed to deserialize {} payload", kind.as_str())?
            }
            Error::Handler { source, .. } => fmt::Display::fmt(source, f)?,
            Error::Serialize { .. } => f.write_str("Failed to serialize message response")?,
            Error::EncodePayload { kind, .. } => {
                write!(f, "Failed to serialize {} payload", kind.as_str())?
            }
            Error::DecodeReply { .. } => {
                f.write_str("Failed to deserialize microservice response")?
            }
            Error::TypeNotRegistered { type_name } => {
                write!(f, "Type not registered: {type_name}")?
            }
            Error::DuplicateProvider { type_name } => {
                write!(f, "Type already registered: {type_name}")?
            }
            Error::ProviderConflict {
                type_name,
                first,
                second,
            } => write!(
                f,
                "Type already registered: {type_name} (provided by `{first}` and by `{second}`)"
            )?,
            Error::Provider { type_name, .. } => {
                write!(f, "Failed to construct provider {type_name}")?
            }
            Error::DuplicatePattern { kind, pattern } => write!(
                f,
                "Pattern `{pattern}` is already registered as a {} handler",
                kind.as_str()
            )?,
            Error::RequestScopeRequired { type_name } => write!(
                f,
                "Type {type_name} is request-scoped: resolve it from a connection's context"
            )?,
            Error::ImportCycle { path } => write!(f, "Detected module import cycle: {path}")?,
            Error::MissingExport { module, type_name } => write!(
                f,
                "Module `{module}` exports {type_name}, which no module provides"
            )?,
            Error::Lifecycle {
                module,
                hook,
                phase,
                ..
            } => write!(f, "{phase} hook `{hook}` of module `{module}` failed")?,
            Error::DuplicateEndpoint { endpoint } => {
                write!(f, "Two gateways are mounted on `{endpoint}`")?
            }
            Error::Push(e) => fmt::Display::fmt(e, f)?,
            Error::WebSocket(e) => fmt::Display::fmt(e, f)?,
            Error::Io(e) => fmt::Display::fmt(e, f)?,
            #[cfg(feature = "mqtt")]
            Error::Timeout { request, after } => {
                write!(f, "No reply for `{}` within {after:?}", request.pattern)?
            }
            #[cfg(feature = "mqtt")]
            Error::Unavailable { request, reason } => {
                write!(f, "Pattern `{}` is unavailable: {reason}", request.pattern)?
            }
            #[cfg(feature = "mqtt")]
            Error::Remote { request, .. } => {
                write!(f, "The service of `{}` returned an error", request.pattern)?
            }
            #[cfg(feature = "mqtt")]
            Error::MqttConfig { reason } => write!(f, "Invalid MQTT settings: {reason}")?,
        }
        if f.alternate() {
            if let Some(cause) = self.detail() {
                write!(f, ": {cause}")?;
            } else if let Error::Handler { source, .. } = self {
                // The handler error's own causes (an `anyhow` chain keeps its contexts
                // here), as anyhow's `{:#}` shows them.
                let mut cause = source.source();
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::BadFrame { source } => Some(source),
            Error::BadPayload { source, .. } => Some(source),
            Error::Serialize { source, .. }
            | Error::EncodePayload { source, .. }
            | Error::DecodeReply { source, .. } => Some(source),
            Error::Handler { source, .. }
            | Error::Provider { source, .. }
            | Error::Lifecycle { source, .. } => Some(&**source),
            // Transparent: their display is the wrapped error's own, so their cause is its
            // cause (the variant holds the error itself, to match on).
            Error::Push(_) => None,
            Error::WebSocket(e) => std::error::Error::source(e),
            Error::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl Error {
    /// [`Error::Provider`] for type `T`: what a provider constructor's error becomes, e.g.
    /// `Sensor::open().map_err(Error::provider::<Sensor>)?` in a hand-written
    /// `Module::register` (`module!` does it for its expressions).
    ///
    /// # Examples
    /// ```
    /// use nestforge_edge::Error;
    /// struct Sensor;
    /// let err = Error::provider::<Sensor>(std::io::Error::other("no device"));
    /// assert!(format!("{err:#}").ends_with("::Sensor: no device"));
    /// ```
    pub fn provider<T: ?Sized>(source: impl Into<HandlerError>) -> Self {
        Error::Provider {
            type_name: std::any::type_name::<T>(),
            source: source.into(),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        Error::WebSocket(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_display_of_a_handler_error_shows_its_chain() {
        use anyhow::Context;
        let failed: anyhow::Result<()> = Err(io::Error::other("disk full"))
            .context("writing the record")
            .context("audit failed");
        let err = Error::Handler {
            request: Request::new(None, "users.created"),
            source: failed.unwrap_err().into(),
        };
        assert_eq!(err.to_string(), "audit failed");
        assert_eq!(
            format!("{err:#}"),
            "audit failed: writing the record: disk full"
        );
        assert_eq!(err.code(), ErrorCode::HandlerError);
    }

    #[cfg(feature = "anyhow")]
    #[test]
    fn bail_and_ensure_convert_into_handler_errors() {
        fn check(n: i32) -> std::result::Result<i32, HandlerError> {
            crate::ensure!(n >= 0);
            crate::ensure!(n != 1, "one is {}", "odd");
            if n == 2 {
                crate::bail!(io::Error::other("io"));
            }
            if n == 3 {
                crate::bail!("n is {n}");
            }
            Ok(n)
        }
        assert_eq!(
            check(-1).unwrap_err().to_string(),
            "Condition failed: `n >= 0`"
        );
        assert_eq!(check(1).unwrap_err().to_string(), "one is odd");
        assert_eq!(check(2).unwrap_err().to_string(), "io");
        assert_eq!(check(3).unwrap_err().to_string(), "n is 3");
        assert_eq!(check(4).unwrap(), 4);
    }
}
