//! The upgrade guard: an async check of the upgrade request before the `101`.

use std::future::Future;
use std::pin::Pin;

use crate::ws::upgrade::{Rejection, UpgradeRequest};
use crate::ws::AuthIdentity;

/// What a guard returns: accept (with an optional identity) or reject with a status.
pub type GuardResult = Result<Option<AuthIdentity>, Rejection>;

/// The future a [`Guard`] returns.
pub type GuardFuture = Pin<Box<dyn Future<Output = GuardResult> + Send>>;

/// Decides whether an upgrade request may become a WebSocket.
///
/// Implemented for closures `Fn(&UpgradeRequest) -> impl Future<Output = GuardResult>`:
/// take what you need from the request (see [`UpgradeRequest::token`]) before the `async`
/// block. A closure passed straight to
/// [`WebSocketConfig::guard`](crate::WebSocketConfig::guard) must name its argument type
/// (`|req: &UpgradeRequest|`); wrapped in [`guard_fn`] it need not.
///
/// # Examples
/// ```
/// use nestforge_edge::{guard_fn, AuthIdentity, Rejection, WebSocketConfig};
///
/// let config = WebSocketConfig::new("/ws").guard(guard_fn(|req| {
///     let token = req.token().map(str::to_owned);
///     async move {
///         match token.as_deref() {
///             Some("secret") => Ok(Some(AuthIdentity::new("device-1"))),
///             Some(_) => Err(Rejection::new(403, "bad token")),
///             None => Err(Rejection::new(401, "token required")),
///         }
///     }
/// }));
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

/// A closure as a [`Guard`], its argument type inferred: `guard_fn(|req| { .. })`.
pub fn guard_fn<F, Fut>(guard: F) -> F
where
    F: Fn(&UpgradeRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = GuardResult> + Send + 'static,
{
    guard
}
