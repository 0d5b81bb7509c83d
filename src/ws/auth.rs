//! Who is on the other end ([`AuthIdentity`], as the upgrade guard established it) and the
//! error of a failed authorization check ([`Forbidden`]).

use std::collections::BTreeMap;
use std::fmt;

use super::upgrade::Rejection;

/// Who is on the other end, as established by the upgrade guard (NestForge's `AuthIdentity`).
///
/// Serializes as NestForge's does: `{"subject":..,"roles":[..],"claims":{..}}` (`claims` may
/// be absent).
///
/// # Examples
/// ```
/// use nestforge_edge::AuthIdentity;
/// use serde_json::json;
///
/// let identity = AuthIdentity::new("user-1")
///     .with_roles(["admin"])
///     .with_claim("tenant", json!("acme"));
/// assert_eq!(identity.claims["tenant"], "acme");
/// assert!(identity.require_role("admin").is_ok());
/// assert_eq!(
///     identity.require_role("root").unwrap_err().to_string(),
///     "Missing required role `root`"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthIdentity {
    /// The subject (user or device id).
    pub subject: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Further claims (tenant, scopes, expiry, ...), as the guard decoded them.
    #[serde(default)]
    pub claims: BTreeMap<String, serde_json::Value>,
}

impl AuthIdentity {
    /// An identity with no roles.
    pub fn new(subject: impl Into<String>) -> Self {
        AuthIdentity {
            subject: subject.into(),
            roles: Vec::new(),
            claims: BTreeMap::new(),
        }
    }

    /// Adds a claim (builder style); a claim with the same key is replaced.
    pub fn with_claim(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.claims.insert(key.into(), value.into());
        self
    }

    /// The claim `key`, if present.
    pub fn claim(&self, key: &str) -> Option<&serde_json::Value> {
        self.claims.get(key)
    }

    /// `Ok` if the identity has `role`, else [`Forbidden`] (``Missing required role `role` ``,
    /// NestForge's text). Returned with `?` from a handler it becomes a `forbidden` error
    /// frame; from an upgrade guard, a `403` rejection.
    pub fn require_role(&self, role: &str) -> std::result::Result<(), Forbidden> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(Forbidden::missing_role(role))
        }
    }

    /// Adds roles (builder style).
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// Whether the identity has `role` (exact match).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

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
