//! The testing module (NestForge's `TestFactory` and `TestingModule`): the application's
//! providers and hooks without a server, overrides first, contexts made at will.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_lite::future::{or, poll_fn};

use crate::context::{Handshake, MicroserviceContext, RequestId, WebSocketContext};
use crate::error::Result;
use crate::factory::application;
use crate::microservice_client::InProcessMicroserviceClient;
use crate::providers::{Lifecycle, Module, Phase, Providers, ProvidersBuilder};
use crate::registry::MicroserviceRegistry;
use crate::rt::sync::lock;
use crate::rt::Counter;
use crate::spawner::{Spawner, Task};
use crate::wire::TransportMetadata;
use crate::ws::{AuthIdentity, Headers};

type Override = Box<dyn FnOnce(&mut ProvidersBuilder) -> Result<()> + Send>;

/// Builds a [`TestingModule`] from module `M` (NestForge's `TestFactory`): the providers as
/// [`NestForgeFactory::create`](crate::NestForgeFactory::create) builds them, with
/// overrides.
///
/// # Examples
/// ```
/// use nestforge_edge::{module, Provider, TestFactory};
///
/// #[derive(Clone)]
/// struct AppConfig { app_name: &'static str }
/// struct Greeting(String);
///
/// module! {
///     struct AppModule {
///         providers: [
///             AppConfig { app_name: "default" },
///             Provider::factory(|container| {
///                 let config = container.resolve::<AppConfig>()?;
///                 Ok(Greeting(format!("hello {}", config.app_name)))
///             }),
///         ],
///     }
/// }
///
/// let module = TestFactory::<AppModule>::create()
///     .override_provider(AppConfig { app_name: "test" })
///     .build()?;
/// assert_eq!(module.resolve::<Greeting>()?.0, "hello test");
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
pub struct TestFactory<M> {
    overrides: Vec<Override>,
    module: PhantomData<fn() -> M>,
}

impl<M: Module + 'static> TestFactory<M> {
    /// A factory for `M`, without overrides.
    pub fn create() -> Self {
        TestFactory {
            overrides: Vec::new(),
            module: PhantomData,
        }
    }

    /// Provides `value` in place of the modules' provider of `T`. Overrides are registered
    /// before any module, so every factory that resolves `T` sees the override (and a
    /// module's own factory for `T` never runs).
    pub fn override_provider<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.overrides
            .push(Box::new(move |builder| builder.override_with(value)));
        self
    }

    /// The module: providers built (overrides first), then the `on_module_init` and
    /// `on_application_bootstrap` hooks run, as when serving starts.
    pub fn build(self) -> Result<TestingModule> {
        let overrides = self.overrides;
        let (providers, lifecycle) =
            application::<M>(|builder| overrides.into_iter().try_for_each(|apply| apply(builder)))?;
        lifecycle.run(Phase::ApplicationBootstrap, &providers)?;
        let spawner = providers.get::<Spawner>().cloned().unwrap_or_default();
        Ok(TestingModule {
            inner: Arc::new(Inner {
                providers,
                lifecycle,
                spawner,
                parked: Mutex::default(),
                next_id: Counter::new(1),
                shut_down: AtomicBool::new(false),
            }),
        })
    }
}

impl<M> fmt::Debug for TestFactory<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestFactory")
            .field("module", &std::any::type_name::<M>())
            .field("overrides", &self.overrides.len())
            .finish()
    }
}

/// An application built for tests (NestForge's `TestingModule`): its providers, contexts
/// for handlers and gateways, in-process clients, and its lifecycle, with no server.
///
/// Each context that [`websocket_context`](Self::websocket_context) and
/// [`websocket_context_with`](Self::websocket_context_with) return is one connection's
/// scope: request-scoped providers resolve to one instance per context, shared by the
/// [`MicroserviceContext`]s made from it.
///
/// There is no serving thread: what the [`Spawner`] is given (the jobs
/// [`start_schedules`](crate::start_schedules) starts in an `on_application_bootstrap`
/// hook, for one) runs while [`run`](Self::run) drives it, on the calling thread; what is
/// still running when `run` returns goes on at the next `run`, until
/// [`shutdown`](Self::shutdown).
#[derive(Clone)]
pub struct TestingModule {
    inner: Arc<Inner>,
}

struct Inner {
    providers: Providers,
    lifecycle: Lifecycle,
    spawner: Spawner,
    /// Spawned tasks not finished when the last `run` returned.
    parked: Mutex<Vec<Task>>,
    next_id: Counter,
    shut_down: AtomicBool,
}

impl TestingModule {
    /// The providers (NestForge's container).
    pub fn container(&self) -> &Providers {
        &self.inner.providers
    }

    /// The provider of type `T` (outside any request scope).
    pub fn resolve<T: Send + Sync + 'static>(&self) -> Result<Arc<T>> {
        self.inner.providers.resolve::<T>()
    }

    /// A context as a new connection's, with a fresh request id and no identity.
    pub fn websocket_context(&self) -> WebSocketContext {
        self.websocket_context_with(None, None, Headers::new())
    }

    /// A context as a new connection's, with `request_id` (a fresh one when `None`), the
    /// guard's `identity` and the upgrade request's `headers`.
    pub fn websocket_context_with(
        &self,
        request_id: Option<RequestId>,
        identity: Option<AuthIdentity>,
        headers: Headers,
    ) -> WebSocketContext {
        let id = self.inner.next_id.add(1);
        let request_id = request_id.unwrap_or_else(|| RequestId::new(format!("req-test-{id}")));
        let mut handshake = Handshake::internal("/ws");
        handshake.identity = identity.map(Arc::new);
        handshake.headers = headers;
        WebSocketContext::new(self.inner.providers.clone(), id, request_id, handshake)
    }

    /// A handler context for `pattern` over transport `transport`, in a scope of its own.
    pub fn microservice_context(
        &self,
        transport: impl Into<String>,
        pattern: impl Into<String>,
    ) -> MicroserviceContext {
        self.microservice_context_with_metadata(transport, pattern, TransportMetadata::new())
    }

    /// [`microservice_context`](Self::microservice_context) with `metadata`.
    pub fn microservice_context_with_metadata(
        &self,
        transport: impl Into<String>,
        pattern: impl Into<String>,
        metadata: TransportMetadata,
    ) -> MicroserviceContext {
        MicroserviceContext::new(self.inner.providers.clone(), transport, pattern, metadata)
    }

    /// An in-process client of `registry` over these providers.
    pub fn microservice_client(
        &self,
        registry: MicroserviceRegistry,
    ) -> InProcessMicroserviceClient {
        InProcessMicroserviceClient::new(self.inner.providers.clone(), registry)
    }

    /// [`microservice_client`](Self::microservice_client) with a transport name and
    /// metadata for the handlers' contexts.
    pub fn microservice_client_with_metadata(
        &self,
        registry: MicroserviceRegistry,
        transport: impl Into<String>,
        metadata: TransportMetadata,
    ) -> InProcessMicroserviceClient {
        self.microservice_client(registry)
            .with_transport(transport)
            .with_metadata(metadata)
    }

    /// Runs `future` to completion on this thread, and meanwhile the tasks given to the
    /// module's [`Spawner`] (schedules' jobs, for one).
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        let inner = &*self.inner;
        let _current = inner.spawner.enter();
        let tasks = RefCell::new(std::mem::take(&mut *lock(&inner.parked)));
        let output = crate::block_on(async {
            let drive = poll_fn(|cx| {
                let mut tasks = tasks.borrow_mut();
                tasks.extend(inner.spawner.take(cx));
                tasks.retain_mut(|task| task.as_mut().poll(cx).is_pending());
                Poll::<()>::Pending
            });
            or(future, async {
                drive.await;
                unreachable!("the tasks are driven until the future completes")
            })
            .await
        });
        lock(&inner.parked).extend(tasks.into_inner());
        output
    }

    /// Runs the `on_module_destroy`, then the `on_application_shutdown` hooks (once; the
    /// first failure is returned, once all ran), and drops the tasks still running.
    pub fn shutdown(&self) -> Result<()> {
        let inner = &*self.inner;
        if inner.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let destroyed = inner.lifecycle.run(Phase::ModuleDestroy, &inner.providers);
        let shut_down = inner
            .lifecycle
            .run(Phase::ApplicationShutdown, &inner.providers);
        lock(&inner.parked).clear();
        destroyed.and(shut_down)
    }
}

impl fmt::Debug for TestingModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestingModule")
            .field("providers", &self.inner.providers)
            .finish_non_exhaustive()
    }
}
