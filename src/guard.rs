//! The upgrade guard: an async check of the upgrade request before the `101`.

use std::future::Future;
use std::pin::Pin;

use crate::context::AuthIdentity;
use crate::upgrade::{Rejection, UpgradeRequest};

/// What a guard returns: accept (with an optional identity) or reject with a status.
pub type GuardResult = Result<Option<AuthIdentity>, Rejection>;

/// The future a [`Guard`] returns.
pub type GuardFuture = Pin<Box<dyn Future<Output = GuardResult> + Send>>;

/// Decides whether an upgrade request may become a WebSocket.
///
/// Implemented for closures `Fn(&UpgradeRequest) -> impl Future<Output = GuardResult>`:
/// take what you need from the request (see [`UpgradeRequest::token`]) before the `async`
/// block.
///
/// # Examples
/// ```
/// use nestforge_edge::{AuthIdentity, Rejection, WebSocketConfig};
///
/// let config = WebSocketConfig::new("/ws").guard(|req: &nestforge_edge::upgrade::UpgradeRequest| {
///     let token = req.token().map(str::to_owned);
///     async move {
///         match token.as_deref() {
///             Some("secret") => Ok(Some(AuthIdentity::new("device-1"))),
///             Some(_) => Err(Rejection::new(403, "bad token")),
///             None => Err(Rejection::new(401, "token required")),
///         }
///     }
/// });
/// ```
pub trait Guard: Send + Sync + 'static {
    /// Checks `request`.
    fn check(&self, request: &UpgradeRequest) -> GuardFuture;
}

impl<F, Fut> Guard for F
where
    F: Fn(&UpgradeRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = GuardResult> + Send + 'static,
{
    fn check(&self, request: &UpgradeRequest) -> GuardFuture {
        Box::pin(self(request))
    }
}

impl UpgradeRequest {
    /// The credential a client presented, from the first of: an `Authorization: Bearer`
    /// header (scheme case-insensitive), an `access_token` query parameter, or a
    /// `Sec-WebSocket-Protocol` entry `bearer.<token>` (browsers can set neither headers nor,
    /// comfortably, queries on a WebSocket; they must also offer a real subprotocol for the
    /// server to select).
    pub fn token(&self) -> Option<&str> {
        let h = self.headers();
        if let Some(auth) = h.get("authorization") {
            if let Some((scheme, token)) = auth.trim().split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                    return Some(token.trim());
                }
            }
        }
        if let Some(token) = self.query_param("access_token").filter(|t| !t.is_empty()) {
            return Some(token);
        }
        h.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| p.trim().strip_prefix("bearer.").filter(|t| !t.is_empty()))
    }

    /// The subprotocols the client offered, in its order.
    pub fn offered_protocols(&self) -> impl Iterator<Item = &str> {
        self.headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }
}
