//! What a connection and a handler can see: providers, ids, the upgrade request.

use std::any::TypeId;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::Result;
use crate::providers::{Instance, Providers, Scope};
use crate::rt::sync::lock;
use crate::wire::TransportMetadata;
use crate::ws::{AuthIdentity, Headers};

/// A request id, `req-<unix_ms>-<seq>` (NestForge's format), one per connection.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The id of connection `connection_id` upgraded at `unix_ms`: `req-<unix_ms>-<seq>`.
    pub(crate) fn text(unix_ms: u64, connection_id: u64) -> String {
        format!("req-{unix_ms}-{connection_id}")
    }

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
    /// The providers, resolving in this context's request scope.
    providers: Providers,
    connection_id: u64,
    /// Made at the first call of `request_id` from `upgraded_ms` (most connections never
    /// ask for it).
    request_id: OnceLock<RequestId>,
    /// When the connection was upgraded (Unix time in milliseconds).
    upgraded_ms: u64,
    handshake: Handshake,
    /// The instances of request-scoped providers made in this scope.
    made: Mutex<Vec<(TypeId, Instance)>>,
}

/// A context is a request scope: its request id and identity resolve as providers, and
/// request-scoped providers are made once in it.
impl ContextInner {
    fn request_id(&self) -> &RequestId {
        self.request_id
            .get_or_init(|| RequestId::new(RequestId::text(self.upgraded_ms, self.connection_id)))
    }
}

impl Scope for ContextInner {
    fn own(&self, id: TypeId) -> Option<Instance> {
        if id == TypeId::of::<RequestId>() {
            return Some(Arc::new(self.request_id().clone()));
        }
        if id == TypeId::of::<AuthIdentity>() {
            // Shared, not cloned: no copy of the claims (JSON values) per resolve.
            let identity: Instance = self.handshake.identity.clone()?;
            return Some(identity);
        }
        None
    }

    fn made(&self, id: TypeId) -> Option<Instance> {
        let made = lock(&self.made);
        made.iter().find(|m| m.0 == id).map(|m| Arc::clone(&m.1))
    }

    fn keep(&self, id: TypeId, instance: Instance) -> Instance {
        let mut made = lock(&self.made);
        if let Some(first) = made.iter().find(|m| m.0 == id) {
            return Arc::clone(&first.1);
        }
        made.push((id, Arc::clone(&instance)));
        instance
    }
}

/// What a context knows of its upgrade request and of who made it.
pub(crate) struct Handshake {
    pub(crate) path: Box<str>,
    pub(crate) query: Option<Box<str>>,
    pub(crate) headers: Headers,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) identity: Option<Arc<AuthIdentity>>,
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

/// The sizes of a connection's context (see `crate::__private::connection_parts`).
pub(crate) fn parts() -> Vec<(&'static str, usize)> {
    vec![
        (
            "api: context (Arc<ContextInner>, heap)",
            16 + std::mem::size_of::<ContextInner>(),
        ),
        (
            "api: Handshake (in the context)",
            std::mem::size_of::<Handshake>(),
        ),
    ]
}

impl WebSocketContext {
    /// A context with the request id `request_id`.
    pub(crate) fn new(
        providers: Providers,
        connection_id: u64,
        request_id: RequestId,
        handshake: Handshake,
    ) -> Self {
        let ctx = Self::upgraded(providers, connection_id, 0, handshake);
        let _ = ctx.inner.request_id.set(request_id);
        ctx
    }

    /// The context of connection `connection_id`, upgraded at `upgraded_ms` (Unix time in
    /// milliseconds): its request id is [`RequestId::text`] of both.
    pub(crate) fn upgraded(
        providers: Providers,
        connection_id: u64,
        upgraded_ms: u64,
        handshake: Handshake,
    ) -> Self {
        let inner = Arc::new_cyclic(|scope: &Weak<ContextInner>| {
            let scope: Weak<dyn Scope> = scope.clone();
            ContextInner {
                providers: providers.scoped(scope),
                connection_id,
                request_id: OnceLock::new(),
                upgraded_ms,
                handshake,
                made: Mutex::default(),
            }
        });
        WebSocketContext { inner }
    }

    fn request_id_ref(&self) -> &RequestId {
        self.inner.request_id()
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

    /// The provider of type `T` (`Type not registered: <type name>` otherwise): a
    /// singleton, this connection's instance of a request-scoped provider (the same for
    /// the whole connection), a new instance of a transient one; the connection's
    /// [`RequestId`] and, when the guard set one, its [`AuthIdentity`].
    pub fn resolve<T: Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.inner.providers.resolve_with(&*self.inner)
    }

    /// All providers, resolving in this connection's request scope.
    pub fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// NestForge's name for [`providers`](Self::providers).
    pub fn container(&self) -> &Providers {
        &self.inner.providers
    }

    /// The connection id, unique per server, counting from 1.
    pub fn connection_id(&self) -> u64 {
        self.inner.connection_id
    }

    /// The connection's request id (always present; `Option` as in NestForge).
    pub fn request_id(&self) -> Option<&RequestId> {
        Some(self.request_id_ref())
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
        crate::ws::upgrade::query_param(self.query()?, name)
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
        self.inner.handshake.identity.as_deref()
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
        MicroserviceContext::for_connection(self.clone(), Arc::from(pattern.into()), metadata)
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
/// the request metadata, the transport (`"websocket"` for frames) and the connection's ids.
///
/// Built per dispatched frame without allocating (reference counts only).
#[derive(Clone)]
pub struct MicroserviceContext {
    ws: WebSocketContext,
    pattern: Arc<str>,
    metadata: TransportMetadata,
    /// `None`: `"websocket"`, the connection's.
    transport: Option<Arc<str>>,
}

impl MicroserviceContext {
    /// A context for a frame received on the connection `ws`.
    pub(crate) fn for_connection(
        ws: WebSocketContext,
        pattern: Arc<str>,
        metadata: TransportMetadata,
    ) -> Self {
        MicroserviceContext {
            ws,
            pattern,
            metadata,
            transport: None,
        }
    }

    /// A context outside any connection (NestForge's constructor, same argument order), for
    /// [`MicroserviceRegistry::dispatch_message`](crate::MicroserviceRegistry::dispatch_message)
    /// from code and tests. As in NestForge, the request id and the identity are the
    /// providers of those types, when registered.
    ///
    /// # Examples
    /// ```
    /// use nestforge_edge::{MicroserviceContext, Providers, TransportMetadata};
    ///
    /// let ctx = MicroserviceContext::new(
    ///     Providers::default(),
    ///     "grpc",
    ///     "users.count",
    ///     TransportMetadata::new(),
    /// );
    /// assert_eq!((ctx.transport(), ctx.pattern()), ("grpc", "users.count"));
    /// ```
    pub fn new(
        container: Providers,
        transport: impl Into<String>,
        pattern: impl Into<String>,
        metadata: TransportMetadata,
    ) -> Self {
        Self::with_transport(
            container,
            Arc::from(transport.into()),
            &pattern.into(),
            metadata,
        )
    }

    /// [`new`](Self::new) with a shared transport name.
    pub(crate) fn with_transport(
        providers: Providers,
        transport: Arc<str>,
        pattern: &str,
        metadata: TransportMetadata,
    ) -> Self {
        let request_id = providers
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::new("detached"));
        let mut handshake = Handshake::internal("/");
        handshake.identity = providers.singleton::<AuthIdentity>();
        let ws = WebSocketContext::new(providers, 0, request_id, handshake);
        MicroserviceContext {
            ws,
            pattern: Arc::from(pattern),
            metadata,
            transport: Some(transport),
        }
    }

    /// The providers (NestForge's container).
    pub fn container(&self) -> &Providers {
        self.ws.providers()
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

    /// The transport name: `"websocket"` for frames, else the one given to
    /// [`new`](Self::new) (the in-process client's: `"in-process"` unless set).
    pub fn transport(&self) -> &str {
        self.transport.as_deref().unwrap_or("websocket")
    }

    /// The connection's request id.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.ws.request_id()
    }

    /// The connection's identity, if any.
    pub fn auth_identity(&self) -> Option<&AuthIdentity> {
        self.ws.auth_identity()
    }

    /// The connection this request arrived on (a detached one outside connections).
    pub fn websocket(&self) -> &WebSocketContext {
        &self.ws
    }
}

impl fmt::Debug for MicroserviceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicroserviceContext")
            .field("pattern", &self.pattern)
            .field("transport", &self.transport())
            .field("connection_id", &self.ws.connection_id())
            .finish_non_exhaustive()
    }
}
