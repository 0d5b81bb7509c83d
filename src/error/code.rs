//! The stable codes of errors, and what an error frame says about an error.

use std::fmt;

use serde_json::value::RawValue;

use super::{Error, Request};

/// The stable, machine-readable code of an [`Error`], as sent in JSON error frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_frame`: the frame is not JSON or not a request.
    BadFrame,
    /// `unknown_pattern`: no handler for the pattern.
    UnknownPattern,
    /// `bad_payload`: the payload does not fit the handler's type.
    BadPayload,
    /// `handler_error`: the handler returned an error.
    HandlerError,
    /// `provider_missing`: a provider the handler needs is not registered.
    ProviderMissing,
    /// `forbidden`: the identity lacks a required role ([`Forbidden`](crate::Forbidden)).
    Forbidden,
    /// `internal`: anything else (reply serialization, transport, configuration).
    Internal,
    /// The application's own code ([`AppError`](crate::AppError)): see
    /// [`Error::code_str`].
    Application,
    /// `timeout`: a forwarded request got no reply in time (feature `mqtt`).
    #[cfg(feature = "mqtt")]
    Timeout,
    /// `unavailable`: the broker link is down, or a bound was reached (feature `mqtt`).
    #[cfg(feature = "mqtt")]
    Unavailable,
    /// `remote_error`: the remote service answered with an error (feature `mqtt`).
    #[cfg(feature = "mqtt")]
    RemoteError,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"unknown_pattern"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownPattern => "unknown_pattern",
            ErrorCode::BadPayload => "bad_payload",
            ErrorCode::HandlerError => "handler_error",
            ErrorCode::ProviderMissing => "provider_missing",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
            ErrorCode::Application => "application",
            #[cfg(feature = "mqtt")]
            ErrorCode::Timeout => "timeout",
            #[cfg(feature = "mqtt")]
            ErrorCode::Unavailable => "unavailable",
            #[cfg(feature = "mqtt")]
            ErrorCode::RemoteError => "remote_error",
        }
    }
}

/// The codes the crate sends, reserved in the application's namespace.
pub(crate) const RESERVED: &[&str] = &[
    "bad_frame",
    "unknown_pattern",
    "bad_payload",
    "handler_error",
    "provider_missing",
    "forbidden",
    "internal",
    "timeout",
    "unavailable",
    "remote_error",
];

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The stable code of this error. A handler error that is itself one of this crate's
    /// errors (e.g. `ctx.resolve::<Missing>()?`) reports that error's code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadFrame { .. } => ErrorCode::BadFrame,
            Error::UnknownPattern { .. } => ErrorCode::UnknownPattern,
            Error::BadPayload { .. } => ErrorCode::BadPayload,
            Error::Handler { source, .. } => match source.downcast_ref::<Error>() {
                Some(inner) => inner.code(),
                None if source.is::<crate::ws::Forbidden>() => ErrorCode::Forbidden,
                None if super::app::find(&**source).is_some() => ErrorCode::Application,
                None => ErrorCode::HandlerError,
            },
            Error::TypeNotRegistered { .. } => ErrorCode::ProviderMissing,
            #[cfg(feature = "mqtt")]
            Error::Timeout { .. } => ErrorCode::Timeout,
            #[cfg(feature = "mqtt")]
            Error::Unavailable { .. } => ErrorCode::Unavailable,
            #[cfg(feature = "mqtt")]
            Error::Remote { .. } => ErrorCode::RemoteError,
            _ => ErrorCode::Internal,
        }
    }

    /// The code an error frame carries: the application's own for a handler that failed
    /// with an [`AppError`](crate::AppError) (see [`ErrorCode::Application`]), the
    /// crate's ([`code`](Self::code)) otherwise.
    pub fn code_str(&self) -> &str {
        match self.app_error() {
            Some(app) => app.code(),
            None => self.code().as_str(),
        }
    }

    /// The [`AppError`](crate::AppError) a handler failed with, if it did.
    pub fn app_error(&self) -> Option<&crate::AppError> {
        match self {
            Error::Handler { source, .. } => match source.downcast_ref::<Error>() {
                Some(inner) => inner.app_error(),
                None => super::app::find(&**source),
            },
            _ => None,
        }
    }

    /// The request this error belongs to, for dispatch errors.
    pub fn request(&self) -> Option<&Request> {
        match self {
            Error::UnknownPattern { request, .. }
            | Error::BadPayload { request, .. }
            | Error::EncodePayload { request, .. }
            | Error::DecodeReply { request, .. }
            | Error::Handler { request, .. }
            | Error::Serialize { request, .. } => Some(request),
            #[cfg(feature = "mqtt")]
            Error::Timeout { request, .. }
            | Error::Unavailable { request, .. }
            | Error::Remote { request, .. } => Some(request),
            _ => None,
        }
    }

    /// The same error for the request with id `id` (the registry's entry point knows no ids).
    #[cold]
    pub(crate) fn with_request_id(mut self, id: Option<&RawValue>) -> Self {
        let request = match &mut self {
            Error::UnknownPattern { request, .. }
            | Error::BadPayload { request, .. }
            | Error::Handler { request, .. }
            | Error::Serialize { request, .. } => request,
            _ => return self,
        };
        request.id = id.map(RawValue::to_owned);
        self
    }

    /// Renders the JSON error frame
    /// `{"id":..,"pattern":..,"error":{"code":"..","message":"..","detail":".."}}`.
    ///
    /// `id` and `pattern` are present when the request carried them; `detail` is present when
    /// the error has a cause (serde's reason for `bad_payload`).
    pub fn to_json(&self) -> String {
        crate::wire::error_frame(self, None)
    }

    /// [`Error::to_json`] as a Text [`Message`](crate::Message), ready to send.
    pub fn to_message(&self) -> crate::Message {
        crate::Message::Text(self.to_json().into())
    }

    /// The cause shown by `{:#}` and in the `detail` field of error frames.
    pub(crate) fn detail(&self) -> Option<&dyn std::error::Error> {
        match self {
            Error::BadPayload { source, .. }
            | Error::EncodePayload { source, .. }
            | Error::DecodeReply { source, .. } => Some(source),
            Error::Provider { source, .. } | Error::Lifecycle { source, .. } => Some(&**source),
            #[cfg(feature = "mqtt")]
            Error::Remote {
                detail: Some(detail),
                ..
            } => Some(&**detail),
            _ => None,
        }
    }
}
