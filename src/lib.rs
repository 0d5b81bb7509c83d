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
//! # Layers
//! ```text
//!  NestForge API   factory, server, providers, context, registry, wire, push, gateway, ...
//!       |          (what applications name: every public item is re-exported at the root)
//!       v
//!  ws/             upgrade (HTTP/1.1, sans I/O), framing (RFC 6455, sans I/O), the
//!       |          connection driver, WebSocket, limits, guard, push queue, counters
//!       v
//!  rt/             block_on and its epoll loop (Linux, Android) or async-io, the one
//!                  listener and stream types, the task set, timers, the descriptor table
//! ```
//! A layer uses the ones below it, never one above; `error` and the logging shim serve all
//! three (`scripts/layers` checks the import graph in CI).
//!
//! # Two reactors, one thread
//! [`Server::serve`] runs every connection on the calling thread, under any executor. Its
//! sockets wait for readiness in one of two reactors:
//! - under [`block_on`] (Linux, Android), in the loop's own epoll instance: each socket is
//!   registered once, edge-triggered, so a message costs its read, its write and a share
//!   of one `epoll_wait`;
//! - under any other executor (`smol::block_on`, a `LocalExecutor`, ...), and on every
//!   other platform, in async-io's reactor, which re-arms a socket after each event.
//!
//! Timers (pings, idle and send deadlines, shutdown) and any other async-io source are
//! async-io's in both cases: async-io's own thread drives them, and under [`block_on`]
//! their wake-ups reach the loop through an eventfd that its epoll set watches.
//!
//! # Limits and defaults
//! Every limit is a setter of [`WebSocketConfig`] (per gateway) or [`ServerConfig`]
//! (server), whose documentation gives its default.
//!
//! | setting | default | beyond it |
//! |---|---|---|
//! | `max_head_size` / `max_headers` (server) | 8 KiB / 32 | `431` |
//! | `handshake_timeout` (server) | 5 s for head, guard and `101` | `408` |
//! | `max_connections` (server) | 64 open | `503`, before the upgrade |
//! | `shutdown_timeout` (server) | 5 s | remaining connections dropped |
//! | `max_frame_size` / `max_message_size` | 16 KiB (checked on the header) / 64 KiB | Close `1009` |
//! | `read_buffer_size` / `max_write_buffer_size` | 4 KiB per read (none held idle) / 64 KiB (+ one frame) | own buffer above / `send` waits |
//! | `send_timeout` | 5 s for a peer that does not read | dropped, counted as `1008` |
//! | `outbound_queue` | 16 pushed messages | `overflow`: Close `1008` or `Drop` |
//! | `ping_interval` / `idle_timeout` / `close_timeout` | 20 s / 45 s / 2 s | Close `1001` / socket dropped |
//! | `fairness_budget` | 32 messages in a row | yields to the other connections |
//! | `allowed_origins` / `protocols` | none / none | `403` / first common one |
//! | `compression` (feature `deflate`) | `permessage-deflate` accepted; replies and pushes from 128 B compressed | a message inflates to at most `max_message_size` (its compressed bytes count too): Close `1009`, the inflation stopped there; data that does not inflate: Close `1007` |
//!
//! Close codes: `1000` normal (also when `on_connect` returns), `1001` going away
//! (shutdown, idle), `1002` protocol violation (unmasked client frame, reserved bits (RSV1
//! outside a compressed message's first frame), unknown opcode, bad control frame or
//! continuation), `1007` invalid UTF-8 (or a compressed message that does not inflate),
//! `1008` slow consumer, `1009` too big, `1011` the gateway panicked. The close frame is
//! flushed before the socket is half-closed.
//!
//! # Features
//! - `log` (off by default): connection-level logs through the `log` facade (connect,
//!   disconnect with code and duration, rejected upgrades, limit hits). Without it the
//!   calls compile to nothing.
//! - `mqtt` (off by default): scale-out over an MQTT broker with NestJS's MQTT transport
//!   convention (module `mqtt`, `NestForgeFactory::with_mqtt`). No extra dependency.
//! - `signal` (off by default): [`shutdown_signal`], SIGINT and SIGTERM as the future that
//!   starts a graceful shutdown (through async-signal, smol's).
//! - `anyhow` (off by default): `bail!` and `ensure!` in anyhow's forms inside handler
//!   bodies. `?` on an `anyhow::Error` in a handler works without it.
//! - `deflate` (off by default): `permessage-deflate` (RFC 7692, through miniz_oxide), which
//!   every browser offers, accepted by every gateway unless its
//!   `WebSocketConfig::compression` says `Compression::Off`. Neither side keeps context
//!   between messages, so a connection holds no compression state: one compressor and one
//!   inflater serve every connection of a thread. Without the feature, offers are declined.
//!   What it costs and saves: BENCHMARKS.md, "Compression".
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

#[macro_use]
mod macros;
mod error;
mod log;

// The runtime layer, then the WebSocket layer.
mod rt;
mod ws;

// The NestForge API.
mod context;
mod envelope;
mod extension;
mod factory;
mod gateway;
mod microservice_client;
#[cfg(feature = "mqtt")]
pub mod mqtt;
mod pattern_loop;
mod providers;
mod push;
mod registry;
mod schedule;
mod server;
mod spawner;
mod testing;
mod wire;

// The sans-I/O upgrade (parser, checks, response writers): public for the fuzz targets and
// the regression tests, not part of the documented API.
#[doc(hidden)]
pub use ws::upgrade;

pub use context::{MicroserviceContext, RequestId, WebSocketContext};
pub use envelope::{EventEnvelope, MessageEnvelope};
pub use error::{AppError, CodedError, Error, ErrorCode, HandlerError, Request, Result};
pub use factory::NestForgeFactory;
pub use gateway::{WebSocketFuture, WebSocketGateway};
pub use microservice_client::{InProcessMicroserviceClient, MicroserviceClient};
pub use pattern_loop::serve_patterns;
pub use providers::{LifecycleHook, Module, Provider, Providers, ProvidersBuilder};

/// NestForge's name for [`Providers`] (its hooks and factories take `&Container`).
pub type Container = Providers;

/// What the exported macros refer to; not part of the API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "anyhow")]
    pub use anyhow;

    pub use crate::providers::private::*;

    /// The sizes, in bytes, of what one connection is made of, layer by layer (the
    /// footprint test prints them beside what the allocator counts).
    pub fn connection_parts() -> Vec<(&'static str, usize)> {
        crate::server::connection_parts()
    }
}
pub use push::{Broadcast, Connections};
pub use registry::{
    handle_websocket_microservice_message, MicroserviceRegistry, MicroserviceRegistryBuilder,
};
pub use rt::block_on;
#[doc(hidden)]
pub use rt::on_own_loop;
#[cfg(feature = "signal")]
pub use rt::{shutdown_signal, ShutdownSignal};
pub use schedule::{
    shutdown_schedules, start_schedules, JobKind, ScheduleRegistry, ScheduleRegistryBuilder,
    ScheduledJob,
};
pub use server::{Server, ServerConfig, ShutdownHandle};
pub use spawner::Spawner;
pub use testing::{TestFactory, TestingModule};
pub use tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
pub use tungstenite::{Bytes, Message};
pub use wire::{event_frame, Kind, RequestFrame, TransportMetadata};
#[doc(hidden)]
pub use ws::close_code;
#[cfg(feature = "deflate")]
pub use ws::Compression;
#[doc(hidden)]
pub use ws::Framing;
pub use ws::{
    guard_fn, AuthIdentity, CloseInfo, Forbidden, Guard, GuardFuture, GuardResult, Headers,
    Overflow, PushError, Rejection, StatsSnapshot, UpgradeRequest, WebSocket, WebSocketConfig,
};

/// NestForge's name for [`Kind`].
pub type WebSocketMicroserviceKind = Kind;

/// Everything a NestForge application file needs, and what this crate's README and
/// examples use: `use nestforge_edge::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "signal")]
    pub use crate::shutdown_signal;
    #[cfg(feature = "deflate")]
    pub use crate::Compression;
    pub use crate::{
        guard_fn, handle_websocket_microservice_message, module, serve_patterns,
        shutdown_schedules, start_schedules, AppError, AuthIdentity, CloseFrame, CodedError,
        Connections, Container, Error, EventEnvelope, Guard, GuardResult, HandlerError, Headers,
        InProcessMicroserviceClient, Message, MessageEnvelope, MicroserviceClient,
        MicroserviceContext, MicroserviceRegistry, Module, NestForgeFactory, Provider, Providers,
        ProvidersBuilder, Rejection, RequestId, ScheduleRegistry, Server, ServerConfig,
        ShutdownHandle, Spawner, TestFactory, TestingModule, TransportMetadata, UpgradeRequest,
        Utf8Bytes, WebSocket, WebSocketConfig, WebSocketContext, WebSocketFuture, WebSocketGateway,
    };
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
