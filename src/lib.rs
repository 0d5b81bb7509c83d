//! NestForge's WebSocket gateway workflow — gateways, providers resolved from the socket
//! context, message and event patterns, the factory mount on `/ws` — as a small,
//! single-thread, executor-agnostic runtime for edge devices.
//!
//! ```no_run
//! use nestforge_edge::prelude::*;
//!
//! struct Echo;
//! impl WebSocketGateway for Echo {
//!     fn on_connect(&self, _ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
//!         Box::pin(async move {
//!             while let Some(Ok(message)) = socket.recv().await {
//!                 if message.is_text() || message.is_binary() {
//!                     let _ = socket.send(message).await;
//!                 }
//!             }
//!         })
//!     }
//! }
//!
//! module! { struct AppModule { providers: [] } }
//!
//! nestforge_edge::block_on(async {
//!     NestForgeFactory::<AppModule>::create()?.with_websocket_gateway(Echo).listen(9001).await
//! })?;
//! # Ok::<(), nestforge_edge::Error>(())
//! ```
//!
//! # Features
//! - `log` (off by default): connection-level logs through the `log` facade (connect,
//!   disconnect with code and duration, rejected upgrades, limit hits). Without it the
//!   calls compile to nothing.
//! - `mqtt` (off by default): scale-out over an MQTT broker with NestJS's MQTT transport
//!   convention (module `mqtt`, `NestForgeFactory::with_mqtt`). No extra dependency.
//! - `anyhow` (off by default): `bail!` and `ensure!` in anyhow's forms inside handler
//!   bodies. `?` on an `anyhow::Error` in a handler works without it.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

#[macro_use]
mod macros;

mod auth;
mod client;
mod config;
mod conn;
mod context;
mod counter;
mod envelope;
mod error;
mod extension;
mod factory;
mod gateway;
mod guard;
mod log;
#[cfg(feature = "mqtt")]
pub mod mqtt;
mod pattern_loop;
mod providers;
mod push;
mod registry;
mod rt;
mod server;
mod shutdown;
mod socket;
mod stats;
mod sync;
mod tasks;
mod tcp;
// The sans-I/O upgrade (parser, checks, response writers): public for the fuzz targets and
// the regression tests, not part of the documented API.
#[doc(hidden)]
pub mod upgrade;
mod wire;

pub use auth::Forbidden;
pub use client::{InProcessMicroserviceClient, MicroserviceClient};
pub use config::{ServerConfig, WebSocketConfig};
#[doc(hidden)]
pub use conn::close_code;
pub use conn::CloseInfo;
#[doc(hidden)]
pub use conn::Framing;
pub use context::{AuthIdentity, MicroserviceContext, RequestId, WebSocketContext};
pub use envelope::{EventEnvelope, MessageEnvelope};
#[doc(hidden)]
pub use error::__private;
pub use error::{Error, ErrorCode, HandlerError, Request, Result};
pub use factory::NestForgeFactory;
pub use gateway::{WebSocketFuture, WebSocketGateway};
pub use guard::{Guard, GuardFuture, GuardResult};
pub use pattern_loop::serve_patterns;
pub use providers::{Module, Providers, ProvidersBuilder};
pub use push::{Broadcast, Connections, Overflow, PushError};
pub use registry::{
    handle_websocket_microservice_message, MicroserviceRegistry, MicroserviceRegistryBuilder,
};
pub use rt::block_on;
pub use server::Server;
pub use shutdown::ShutdownHandle;
pub use socket::WebSocket;
pub use stats::StatsSnapshot;
pub use tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
pub use tungstenite::{Bytes, Message};
pub use upgrade::{Headers, Rejection, UpgradeRequest};
pub use wire::{event_frame, Kind, RequestFrame, TransportMetadata};

/// NestForge's name for [`Kind`].
pub type WebSocketMicroserviceKind = Kind;

/// Everything a NestForge gateway file needs: `use nestforge_edge::prelude::*;`.
pub mod prelude {
    pub use crate::{
        handle_websocket_microservice_message, module, AuthIdentity, CloseFrame, Connections,
        Error, EventEnvelope, HandlerError, InProcessMicroserviceClient, Message, MessageEnvelope,
        MicroserviceClient, MicroserviceContext, MicroserviceRegistry, Module, NestForgeFactory,
        Providers, ProvidersBuilder, RequestId, ServerConfig, TransportMetadata, Utf8Bytes,
        WebSocket, WebSocketConfig, WebSocketContext, WebSocketFuture, WebSocketGateway,
    };
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
