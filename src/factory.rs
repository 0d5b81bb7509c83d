//! `NestForgeFactory`: builds the providers from the app module and mounts gateways.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::net::TcpListener;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gateway::WebSocketGateway;
use crate::providers::{Lifecycle, Module, Phase, Providers, ProvidersBuilder};
use crate::push::Connections;
use crate::server::ServerConfig;
use crate::server::{Mount, Server, StartTask};
use crate::spawner::Spawner;
use crate::ws::WebSocketConfig;

/// Bootstraps an application (NestForge's `NestForgeFactory`): providers from the module
/// `M`, gateways on their endpoints, then [`listen`](Self::listen).
///
/// # Examples
/// ```no_run
/// use nestforge_edge::prelude::*;
/// # struct EventsGateway;
/// # impl WebSocketGateway for EventsGateway {
/// #     fn on_connect(&self, _: WebSocketContext, _: WebSocket) -> WebSocketFuture { Box::pin(async {}) }
/// # }
/// module! { struct AppModule { providers: [] } }
///
/// nestforge_edge::block_on(async {
///     NestForgeFactory::<AppModule>::create()?
///         .with_websocket_gateway(EventsGateway)
///         .listen(3002)
///         .await
/// })?;
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
pub struct NestForgeFactory<M> {
    providers: Providers,
    lifecycle: Lifecycle,
    mounts: Vec<Mount>,
    config: ServerConfig,
    tasks: Vec<StartTask>,
    module: PhantomData<fn() -> M>,
}

impl<M: Module + 'static> NestForgeFactory<M> {
    /// Builds the application: the [`Connections`] registry and the [`Spawner`] (unless a
    /// module provides its own), then the module's providers (imports first; constructors
    /// and factories may fail), frozen; then runs the modules' `on_module_init` hooks.
    pub fn create() -> Result<Self> {
        let (providers, lifecycle) = application::<M>(|_| Ok(()))?;
        Ok(NestForgeFactory {
            providers,
            lifecycle,
            mounts: Vec::new(),
            config: ServerConfig::default(),
            tasks: Vec::new(),
            module: PhantomData,
        })
    }
}

/// The providers of module `M` after `first` (a test's overrides) and the built-in ones,
/// frozen, its `on_module_init` hooks run.
// Not inlined: start-up code, run once; inlined, it lands in the poll function of the
// application's `async` main (about 0.5 KB more in the tiny build).
#[inline(never)]
pub(crate) fn application<M: Module + 'static>(
    first: impl FnOnce(&mut ProvidersBuilder) -> Result<()>,
) -> Result<(Providers, Lifecycle)> {
    let mut builder = Providers::builder();
    first(&mut builder)?;
    builder.provide_default(Connections::default())?;
    builder.provide_default(Spawner::default())?;
    builder.import::<M>()?;
    let (providers, lifecycle) = builder.finish();
    lifecycle.run(Phase::ModuleInit, &providers)?;
    Ok((providers, lifecycle))
}

impl<M> NestForgeFactory<M> {
    /// Mounts `gateway` on `/ws` with the default limits.
    pub fn with_websocket_gateway<G: WebSocketGateway>(self, gateway: G) -> Self {
        self.with_websocket_gateway_config(gateway, WebSocketConfig::default())
    }

    /// Mounts `gateway` with `config` (endpoint and limits).
    pub fn with_websocket_gateway_config<G: WebSocketGateway>(
        mut self,
        gateway: G,
        config: WebSocketConfig,
    ) -> Self {
        self.mounts.push(Mount {
            gateway: Arc::new(gateway),
            config: Arc::new(config),
        });
        self
    }

    /// Runs the future `task` makes from the providers on the serving thread, beside the
    /// connections, while the server serves: started when serving starts, dropped when
    /// `serve` returns after the graceful shutdown. It is polled only when its own waker
    /// fires, so it costs the connections nothing per message. For work started later, or
    /// from a handler or a hook, see [`Spawner`].
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// use nestforge_edge::prelude::*;
    /// # module! { struct AppModule { providers: [] } }
    /// # let gateway = |_: WebSocketContext, _: WebSocket| async {};
    ///
    /// nestforge_edge::block_on(async {
    ///     NestForgeFactory::<AppModule>::create()?
    ///         .with_websocket_gateway(gateway)
    ///         .with_task(|providers| async move {
    ///             let Ok(connections) = providers.resolve::<Connections>() else { return };
    ///             loop {
    ///                 async_io::Timer::after(Duration::from_secs(1)).await;
    ///                 let _ = connections.emit_to_all("tick", &());
    ///             }
    ///         })
    ///         .listen(3002)
    ///         .await
    /// })?;
    /// # Ok::<(), nestforge_edge::Error>(())
    /// ```
    pub fn with_task<F, Fut>(mut self, task: F) -> Self
    where
        F: FnOnce(Providers) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.tasks
            .push(Box::new(move |providers| Box::pin(task(providers))));
        self
    }

    /// Replaces the server settings (host, connection cap, upgrade limits, shutdown).
    pub fn with_server_config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Bridges the gateway to an MQTT broker (feature `mqtt`): `registry`'s patterns are
    /// served to the broker, unknown message patterns are forwarded to it, events are
    /// published, and the [`MqttBridge`](crate::mqtt::MqttBridge) becomes a provider (for
    /// broadcasts and pushes across instances). [`Server::serve`] runs its session.
    /// Fails with [`Error::MqttConfig`] on unusable settings and
    /// [`Error::DuplicateProvider`] when called twice.
    #[cfg(feature = "mqtt")]
    pub fn with_mqtt(
        mut self,
        config: crate::mqtt::MqttConfig,
        registry: crate::MicroserviceRegistry,
    ) -> Result<Self> {
        let bridge = crate::mqtt::MqttBridge::new(config, registry)?;
        self.providers = crate::extension::install(&self.providers, bridge)?;
        Ok(self)
    }

    /// The frozen providers.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The configured server, for [`Server::serve`] or [`Server::serve_connection`].
    /// Fails with [`Error::DuplicateEndpoint`] when two gateways share an endpoint.
    pub fn into_server(self) -> Result<Server> {
        for (i, m) in self.mounts.iter().enumerate() {
            if self.mounts[..i]
                .iter()
                .any(|o| o.config.endpoint == m.config.endpoint)
            {
                return Err(Error::DuplicateEndpoint {
                    endpoint: m.config.endpoint.clone(),
                });
            }
        }
        Ok(Server::new(
            self.providers,
            self.lifecycle,
            self.mounts,
            self.config,
            self.tasks,
        ))
    }

    /// Binds `host:port` (host from [`ServerConfig::host`], `127.0.0.1` by default) and
    /// serves until shutdown ([`Server::shutdown_handle`]). At most
    /// [`ServerConfig::max_connections`](ServerConfig::get_max_connections) connections are
    /// open at once, 64 by default (then `503`): raise it with
    /// `.with_server_config(ServerConfig::default().max_connections(n))`. For your own
    /// listener, see [`Server::serve`]; to stop on SIGINT/SIGTERM,
    /// [`listen_with_graceful_shutdown`](Self::listen_with_graceful_shutdown).
    pub async fn listen(self, port: u16) -> Result<()> {
        let listener = TcpListener::bind((self.config.host.as_str(), port))?;
        self.into_server()?.serve(listener).await
    }

    /// [`listen`](Self::listen) until `signal` completes, then shuts down gracefully
    /// ([`Server::serve_with_graceful_shutdown`]: Close 1001 to every client, the shutdown
    /// hooks, then return): `.listen_with_graceful_shutdown(3002, shutdown_signal()?)` stops
    /// on SIGINT or SIGTERM (feature `signal`: [`shutdown_signal`](crate::shutdown_signal)).
    /// `signal` is polled on its own wake-ups only, on the serving thread.
    pub async fn listen_with_graceful_shutdown<F>(self, port: u16, signal: F) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        let listener = TcpListener::bind((self.config.host.as_str(), port))?;
        self.into_server()?
            .serve_with_graceful_shutdown(listener, signal)
            .await
    }
}

impl<M> fmt::Debug for NestForgeFactory<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NestForgeFactory")
            .field("providers", &self.providers)
            .field(
                "endpoints",
                &self
                    .mounts
                    .iter()
                    .map(|m| &m.config.endpoint)
                    .collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .field("tasks", &self.tasks.len())
            .finish()
    }
}
