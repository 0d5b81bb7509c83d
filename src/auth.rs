//! The error of a failed authorization check ([`AuthIdentity::require_role`]).
//!
//! [`AuthIdentity::require_role`]: crate::AuthIdentity::require_role

use std::fmt;

use crate::upgrade::Rejection;

/// An identity lacks what an operation requires (NestForge's `HttpException::forbidden`).
///
/// `Display` is ``Missing required role `admin` ``. It converts with `?` into a
/// [`HandlerError`](crate::HandlerError) (the error frame's code is `forbidden`) and into a
/// `403` [`Rejection`] for upgrade guards.
///
/// # Examples
/// ```
/// use nestforge_edge::{AuthIdentity, Rejection};
///
/// fn admin_only(identity: &AuthIdentity) -> Result<(), Rejection> {
///     identity.require_role("admin")?;
///     Ok(())
/// }
/// let rejection = admin_only(&AuthIdentity::new("guest")).unwrap_err();
/// assert_eq!(rejection.status, 403);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    role: Box<str>,
}

impl Forbidden {
    pub(crate) fn missing_role(role: &str) -> Self {
        Forbidden { role: role.into() }
    }

    /// The role that was required.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The HTTP status this maps to: `403`.
    pub fn status(&self) -> u16 {
        403
    }
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Missing required role `{}`", self.role)
    }
}

impl std::error::Error for Forbidden {}

impl From<Forbidden> for Rejection {
    fn from(_: Forbidden) -> Self {
        Rejection::new(403, "missing required role")
    }
}

#[cfg(test)]
mod tests {
    use crate::{AuthIdentity, Error, ErrorCode, HandlerError, Request};

    #[test]
    fn a_missing_role_is_a_forbidden_handler_error() {
        let identity = AuthIdentity::new("u").with_roles(["reader"]);
        assert!(identity.require_role("reader").is_ok());
        let handler = || -> Result<(), HandlerError> {
            identity.require_role("writer")?;
            Ok(())
        };
        let err = Error::Handler {
            request: Request::new(None, "doc.write"),
            source: handler().unwrap_err(),
        };
        assert_eq!(err.to_string(), "Missing required role `writer`");
        assert_eq!(err.code(), ErrorCode::Forbidden);
    }

    #[test]
    fn claims_round_trip_as_nestforge_serializes_them() {
        let identity = AuthIdentity::new("u").with_claim("tenant", "acme");
        let json = serde_json::to_string(&identity).unwrap();
        assert_eq!(
            json,
            r#"{"subject":"u","roles":[],"claims":{"tenant":"acme"}}"#
        );
        let without: AuthIdentity = serde_json::from_str(r#"{"subject":"u","roles":[]}"#).unwrap();
        assert!(without.claims.is_empty());
        assert_eq!(
            identity.claim("tenant").and_then(|v| v.as_str()),
            Some("acme")
        );
    }
}
