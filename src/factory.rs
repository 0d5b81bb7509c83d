//! `NestForgeFactory`: builds the providers from the app module and mounts gateways.

use std::fmt;
use std::marker::PhantomData;
use std::net::TcpListener;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gateway::WebSocketGateway;
use crate::providers::{Module, Providers};
use crate::push::Connections;
use crate::server::ServerConfig;
use crate::server::{Mount, Server};
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
    mounts: Vec<Mount>,
    config: ServerConfig,
    module: PhantomData<fn() -> M>,
}

impl<M: Module + 'static> NestForgeFactory<M> {
    /// Runs the module's provider registrations (constructors may fail), adds the
    /// [`Connections`] registry, and freezes them.
    pub fn create() -> Result<Self> {
        let mut providers = Providers::builder();
        providers.import::<M>()?;
        if !providers.contains::<Connections>() {
            providers.provide(Connections::default())?;
        }
        Ok(NestForgeFactory {
            providers: providers.build(),
            mounts: Vec::new(),
            config: ServerConfig::default(),
            module: PhantomData,
        })
    }
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
        Ok(Server::new(self.providers, self.mounts, self.config))
    }

    /// Binds `host:port` (host from [`ServerConfig::host`], `127.0.0.1` by default) and
    /// serves until shutdown. Only for callers without their own listener; see
    /// [`Server::serve`].
    pub async fn listen(self, port: u16) -> Result<()> {
        let listener = TcpListener::bind((self.config.host.as_str(), port))?;
        self.into_server()?.serve(listener).await
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
            .finish()
    }
}
