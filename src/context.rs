//! What a connection and a handler can see: providers, ids, the upgrade request.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::Result;
use crate::providers::Providers;
use crate::upgrade::Headers;
use crate::wire::TransportMetadata;

/// A request id, `req-<unix_ms>-<seq>` (NestForge's format), one per connection.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// Wraps a string.
    pub fn new(value: impl Into<String>) -> Self {
        RequestId(Arc::from(value.into()))
    }

    /// The id as text.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// The id as an owned `String`.
    pub fn into_inner(self) -> String {
        self.0.to_string()
    }
}

impl Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who is on the other end, as established by the upgrade guard (NestForge's `AuthIdentity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthIdentity {
    /// The subject (user or device id).
    pub subject: String,
    /// Role names.
    pub roles: Vec<String>,
}

impl AuthIdentity {
    /// An identity with no roles.
    pub fn new(subject: impl Into<String>) -> Self {
        AuthIdentity {
            subject: subject.into(),
            roles: Vec::new(),
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

/// Per-connection context handed to [`WebSocketGateway::on_connect`](crate::WebSocketGateway):
/// the frozen providers, the connection and request ids, the upgrade request (path, query,
/// headers), the peer address and the identity set by the upgrade guard.
///
/// Cheap to clone (one reference count).
#[derive(Clone)]
pub struct WebSocketContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    providers: Providers,
    connection_id: u64,
    request_id: RequestId,
    handshake: Handshake,
}

/// What a context knows of its upgrade request and of who made it.
pub(crate) struct Handshake {
    pub(crate) path: Box<str>,
    pub(crate) query: Option<Box<str>>,
    pub(crate) headers: Headers,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) identity: Option<AuthIdentity>,
    pub(crate) protocol: Option<Box<str>>,
}

impl Handshake {
    /// No upgrade request: a context made by the crate itself, named `path`.
    pub(crate) fn internal(path: &str) -> Self {
        Handshake {
            path: path.into(),
            query: None,
            headers: Headers::default(),
            peer_addr: None,
            identity: None,
            protocol: None,
        }
    }
}

impl WebSocketContext {
    /// The one constructor.
    pub(crate) fn new(
        providers: Providers,
        connection_id: u64,
        request_id: RequestId,
        handshake: Handshake,
    ) -> Self {
        WebSocketContext {
            inner: Arc::new(ContextInner {
                providers,
                connection_id,
                request_id,
                handshake,
            }),
        }
    }

    /// A context outside any connection, over `providers` (for tests and tools).
    pub fn detached(providers: Providers) -> Self {
        WebSocketContext::new(
            providers,
            0,
            RequestId::new("detached"),
            Handshake::internal("/"),
        )
    }

    /// The provider of type `T` (`Type not registered: <type name>` otherwise).
    pub fn resolve<T: Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.inner.providers.resolve::<T>()
    }

    /// All providers.
    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// The connection id, unique per server, counting from 1.
    pub fn connection_id(&self) -> u64 {
        self.inner.connection_id
    }

    /// The connection's request id (always present; `Option` as in NestForge).
    pub fn request_id(&self) -> Option<&RequestId> {
        Some(&self.inner.request_id)
    }

    /// The upgrade request's path, without the query.
    pub fn path(&self) -> &str {
        &self.inner.handshake.path
    }

    /// The upgrade request's query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.inner.handshake.query.as_deref()
    }

    /// The value of query parameter `name` (first occurrence, not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        crate::upgrade::query_param(self.query()?, name)
    }

    /// The upgrade request's headers.
    pub fn headers(&self) -> &Headers {
        &self.inner.handshake.headers
    }

    /// The peer's address, when the transport has one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.handshake.peer_addr
    }

    /// The subprotocol selected in the 101 response, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.inner.handshake.protocol.as_deref()
    }

    /// The identity the upgrade guard attached, if any.
    pub fn auth_identity(&self) -> Option<&AuthIdentity> {
        self.inner.handshake.identity.as_ref()
    }

    /// Whether the upgrade guard attached an identity.
    pub fn is_authenticated(&self) -> bool {
        self.inner.handshake.identity.is_some()
    }

    /// Whether the identity has `role`; `false` when anonymous.
    pub fn has_role(&self, role: &str) -> bool {
        self.inner
            .handshake
            .identity
            .as_ref()
            .is_some_and(|i| i.has_role(role))
    }

    /// A handler context for `pattern` on this connection, transport `"websocket"`.
    pub fn microservice_context(
        &self,
        pattern: impl Into<String>,
        metadata: TransportMetadata,
    ) -> MicroserviceContext {
        MicroserviceContext::new(self.clone(), Arc::from(pattern.into()), metadata)
    }
}

impl fmt::Debug for WebSocketContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketContext")
            .field("connection_id", &self.inner.connection_id)
            .field("request_id", &self.inner.request_id)
            .field("path", &self.inner.handshake.path)
            .field("peer_addr", &self.inner.handshake.peer_addr)
            .finish_non_exhaustive()
    }
}

/// What a message or event handler receives besides its payload: providers, the pattern,
/// the request metadata, the transport (`"websocket"`) and the connection's ids.
///
/// Built per dispatched frame without allocating (reference counts only).
#[derive(Clone)]
pub struct MicroserviceContext {
    ws: WebSocketContext,
    pattern: Arc<str>,
    metadata: TransportMetadata,
}

impl MicroserviceContext {
    pub(crate) fn new(
        ws: WebSocketContext,
        pattern: Arc<str>,
        metadata: TransportMetadata,
    ) -> Self {
        MicroserviceContext {
            ws,
            pattern,
            metadata,
        }
    }

    /// The provider of type `T`.
    pub fn resolve<T: Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.ws.resolve::<T>()
    }

    /// The pattern being handled.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The request's metadata.
    pub fn metadata(&self) -> &TransportMetadata {
        &self.metadata
    }

    /// The transport name: `"websocket"`.
    pub fn transport(&self) -> &str {
        "websocket"
    }

    /// The connection's request id.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.ws.request_id()
    }

    /// The connection's identity, if any.
    pub fn auth_identity(&self) -> Option<&AuthIdentity> {
        self.ws.auth_identity()
    }

    /// The connection this request arrived on.
    pub fn websocket(&self) -> &WebSocketContext {
        &self.ws
    }
}

impl fmt::Debug for MicroserviceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicroserviceContext")
            .field("pattern", &self.pattern)
            .field("transport", &"websocket")
            .field("connection_id", &self.ws.connection_id())
            .finish_non_exhaustive()
    }
}
