//! The servers of the in-process mode: the gateway under test and the raw TCP echo
//! baseline, each on its own thread, listening on `127.0.0.1:0`, alive for one case.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use nestforge_edge::prelude::*;
use nestforge_edge::ShutdownHandle;
use serde::Serialize;
use smol::{Async, LocalExecutor};

use crate::alloc;

/// Echo with the bench's limits (16 MiB frames and messages, 256 KiB write buffer).
pub const ECHO_PATH: &str = "/echo";
/// Pattern dispatch with the bench's limits.
pub const RPC_PATH: &str = "/rpc";
/// Echo with `WebSocketConfig::default()` (16 KiB frames, 64 KiB messages).
pub const DEFAULT_ECHO_PATH: &str = "/ws";

#[allow(dead_code)] // its `main`
#[path = "../../examples/echo.rs"]
mod echo_example;

/// Echoes text and binary messages: `examples/echo.rs`'s gateway.
use echo_example::Echo;

/// Forwards every frame to the pattern registry (as `examples/events_gateway.rs`).
struct Dispatch;

impl WebSocketGateway for Dispatch {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let Ok(patterns) = ctx.resolve::<Patterns>() else {
                return;
            };
            while let Some(Ok(message)) = socket.recv().await {
                let reply =
                    match handle_websocket_microservice_message(&ctx, &patterns.0, message).await {
                        Ok(Some(reply)) => reply,
                        Ok(None) => continue,
                        Err(err) => Message::Text(format!("error:{err}").into()),
                    };
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
        })
    }
}

/// A provider the `app.info` handler resolves.
struct AppConfig {
    app_name: &'static str,
}

/// The `app.info` reply: a plain struct, so the bench measures the runtime, not `json!`.
#[derive(Serialize)]
struct AppInfo {
    app_name: &'static str,
    transport: &'static str,
}

/// The pattern table, as a provider.
struct Patterns(MicroserviceRegistry);

fn patterns() -> Patterns {
    Patterns(
        MicroserviceRegistry::builder()
            .message("app.info", |_: (), ctx: MicroserviceContext| async move {
                let config = ctx.resolve::<AppConfig>()?;
                Ok(AppInfo {
                    app_name: config.app_name,
                    transport: "websocket",
                })
            })
            .build(),
    )
}

module! {
    struct BenchModule {
        providers: [AppConfig { app_name: "nestforge-edge bench" }, patterns()],
    }
}

/// A server running on its own thread for one case.
pub struct Running {
    pub addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
    thread: JoinHandle<()>,
}

impl Running {
    pub fn stop(self) {
        (self.stop)();
        if self.thread.join().is_err() {
            eprintln!("warning: server thread panicked");
        }
    }
}

/// Binds `127.0.0.1:0` and runs `serve` on a new thread marked as a server thread.
fn spawn_server<F>(name: &str, serve: F) -> io::Result<(SocketAddr, JoinHandle<()>)>
where
    F: FnOnce(TcpListener) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            alloc::mark_server_thread();
            serve(listener);
        })?;
    Ok((addr, thread))
}

/// The gateway: echo on [`ECHO_PATH`] and dispatch on [`RPC_PATH`] with the limits of
/// `examples/echo.rs`, echo with the default configuration on [`DEFAULT_ECHO_PATH`];
/// room for at least `conns` connections (1,024 as the least).
pub fn start_gateway(conns: usize) -> Result<Running, Box<dyn std::error::Error>> {
    let config = |endpoint: &str| {
        WebSocketConfig::new(endpoint)
            .max_frame_size(16 << 20)
            .max_message_size(16 << 20)
            .max_write_buffer_size(256 * 1024)
    };
    let server = NestForgeFactory::<BenchModule>::create()?
        .with_websocket_gateway_config(Echo, config(ECHO_PATH))
        .with_websocket_gateway_config(Dispatch, config(RPC_PATH))
        .with_websocket_gateway_config(Echo, WebSocketConfig::new(DEFAULT_ECHO_PATH))
        .with_server_config(
            ServerConfig::default()
                .max_connections(conns.max(1024))
                .shutdown_timeout(Duration::from_secs(2)),
        )
        .into_server()?;
    let handle: ShutdownHandle = server.shutdown_handle();
    let (addr, thread) = spawn_server("gateway", move |listener| {
        if let Err(e) = nestforge_edge::block_on(server.serve(listener)) {
            eprintln!("warning: gateway stopped with {e}");
        }
    })?;
    Ok(Running {
        addr,
        stop: Box::new(move || handle.shutdown()),
        thread,
    })
}

/// The baseline: a single-thread async-io TCP echo that reflects every byte, handshake
/// included, with one 64 KiB buffer per connection and no per-message work.
pub fn start_raw_echo() -> io::Result<Running> {
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let (addr, thread) = spawn_server("raw-echo", move |listener| {
        let ex = LocalExecutor::new();
        let serve = async {
            let listener = Async::new(listener)?;
            loop {
                let accept = async { Some(listener.accept().await) };
                let stop = async {
                    let _ = stop_rx.recv().await;
                    None
                };
                match future::or(accept, stop).await {
                    None => return Ok::<(), io::Error>(()),
                    Some(Ok((mut stream, _))) => {
                        stream.get_ref().set_nodelay(true)?;
                        ex.spawn(async move {
                            let mut buf = vec![0u8; 64 * 1024];
                            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        })
                        .detach();
                    }
                    Some(Err(e)) => eprintln!("warning: raw echo accept failed: {e}"),
                }
            }
        };
        if let Err(e) = smol::block_on(ex.run(serve)) {
            eprintln!("warning: raw echo stopped with {e}");
        }
    })?;
    Ok(Running {
        addr,
        stop: Box::new(move || {
            let _ = stop_tx.try_send(());
        }),
        thread,
    })
}
