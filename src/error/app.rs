//! Errors with the application's own codes: what a client can match on besides the crate's.

use std::borrow::Cow;
use std::fmt;

use serde_json::value::RawValue;

use super::code::RESERVED;

/// A handler's failure with a code of the application's own (NestJS's `WsException` /
/// `RpcException` with the application's payload): the error frame carries `code`,
/// `message` and, when given, a JSON `detail`; a request without `id` gets NestForge's
/// `error:` + `message` as before.
///
/// Codes are the application's namespace: any text but the crate's own codes
/// ([`ErrorCode`](crate::ErrorCode)'s: `bad_frame`, `unknown_pattern`, `bad_payload`,
/// `handler_error`, `provider_missing`, `forbidden`, `internal`, `timeout`,
/// `unavailable`, `remote_error`), which stay reserved (one of them given here is sent as
/// `handler_error`). Dotted names (`sensor.too_hot`) or a prefix of the application's keep
/// clear of them.
///
/// A handler returns it directly, or its own error type converts into it: implement
/// [`CodedError`] and `AppError::from(error)` (or `?` in a function returning
/// `Result<T, AppError>`) keeps the code. As the handler's error (`HandlerError`), an
/// `AppError` is found by downcasting, also behind wrappers that expose it as their
/// `source()`; anyhow's conversion into `HandlerError` hides it: return it unwrapped.
///
/// # Examples
/// ```
/// use nestforge_edge::{AppError, MicroserviceRegistry};
/// use serde_json::json;
///
/// let registry = MicroserviceRegistry::builder()
///     .message("readings.put", |celsius: f64, _ctx| async move {
///         if celsius > 85.0 {
///             return Err(AppError::new("sensor.too_hot", format!("{celsius} °C is too hot"))
///                 .with_detail(json!({ "max": 85.0 }))
///                 .into());
///         }
///         Ok(celsius)
///     })
///     .build();
/// # let _ = registry;
/// ```
#[derive(Clone)]
pub struct AppError {
    code: Cow<'static, str>,
    message: String,
    detail: Option<Box<RawValue>>,
}

impl AppError {
    /// An error with the application's `code` and a `message` for people (and for
    /// NestForge's `error:` text).
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        let code = code.into();
        let code = if RESERVED.contains(&&*code) {
            Cow::Borrowed("handler_error")
        } else {
            code
        };
        AppError {
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// Adds a JSON `detail` (what the client needs to act on it); a value that does not
    /// serialize is left out.
    pub fn with_detail(mut self, detail: impl serde::Serialize) -> Self {
        self.detail = serde_json::value::to_raw_value(&detail).ok();
        self
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The detail, as JSON text.
    pub fn detail(&self) -> Option<&RawValue> {
        self.detail.as_deref()
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("detail", &self.detail.as_deref().map(RawValue::get))
            .finish()
    }
}

impl std::error::Error for AppError {}

/// An error type of the application's with a code of its own: converts into [`AppError`]
/// (`AppError::from(error)`), keeping its `Display` as the message.
///
/// # Examples
/// ```
/// use nestforge_edge::{AppError, CodedError};
///
/// #[derive(Debug)]
/// struct TooHot(f64);
/// impl std::fmt::Display for TooHot {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "{} °C is too hot", self.0)
///     }
/// }
/// impl std::error::Error for TooHot {}
/// impl CodedError for TooHot {
///     fn code(&self) -> &str { "sensor.too_hot" }
///     fn detail(&self) -> Option<serde_json::Value> { Some(serde_json::json!({ "celsius": self.0 })) }
/// }
///
/// let error = AppError::from(TooHot(91.0));
/// assert_eq!((error.code(), error.message()), ("sensor.too_hot", "91 °C is too hot"));
/// ```
pub trait CodedError: std::error::Error {
    /// The code clients match on.
    fn code(&self) -> &str;

    /// A JSON detail for the error frame; none by default.
    fn detail(&self) -> Option<serde_json::Value> {
        None
    }
}

impl<E: CodedError> From<E> for AppError {
    fn from(error: E) -> Self {
        let app = AppError::new(error.code().to_owned(), error.to_string());
        match error.detail() {
            Some(detail) => app.with_detail(detail),
            None => app,
        }
    }
}

/// The `AppError` a handler's error is or carries (as itself or in its `source()` chain).
pub(crate) fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a AppError> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(app) = error.downcast_ref::<AppError>() {
            return Some(app);
        }
        next = error.source();
    }
    None
}
