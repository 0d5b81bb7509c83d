//! The events gateway (`examples/events_gateway.rs`, included as is) served over TLS:
//! `wss://` for pages served over HTTPS, which may not open plain `ws://` sockets.
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
//!   -subj /CN=device.local -addext subjectAltName=DNS:device.local,IP:127.0.0.1 \
//!   -keyout key.pem -out cert.pem
//! TLS_CERT=cert.pem TLS_KEY=key.pem cargo run --release --example tls_gateway
//! ```
//! `TLS_CERT` is a PEM certificate chain (leaf first), `TLS_KEY` its PEM private key
//! (PKCS#8, PKCS#1 or SEC1). `HOST` and `PORT` (default 3443) and `APP_NAME` as in the
//! events gateway; SIGINT or SIGTERM shuts it down gracefully.
//!
//! The library has no TLS: this example accepts TCP itself, runs the TLS handshake with
//! futures-rustls (rustls on ring) and hands the TLS stream to `Server::serve_connection`,
//! which then does what `Server::serve` does for plain TCP (upgrade, limits, gateway,
//! close). Each connection is a task on one `LocalExecutor`; a TLS handshake is bounded by
//! `handshake_timeout` (the upgrade that follows gets the same bound again), at most
//! `max_connections` handshakes run at once, and a failed one ends only its own connection.

#[allow(dead_code)] // its `main`
#[path = "events_gateway.rs"]
mod events_gateway;

use std::cell::Cell;
use std::error::Error;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future::or;
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls;
use futures_rustls::TlsAcceptor;
use nestforge_edge::prelude::*;
use nestforge_edge::Server;
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer};

use events_gateway::{AppModule, EventsGateway};

fn main() -> Result<(), Box<dyn Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3443);
    let acceptor = tls_acceptor(&env_path("TLS_CERT")?, &env_path("TLS_KEY")?)?;
    let config = ServerConfig::default()
        .host(&host)
        .health_endpoint(Some("/healthz"));
    let (limit, bound, grace) = (
        config.get_max_connections(),
        config.get_handshake_timeout(),
        config.get_shutdown_timeout(),
    );
    let server = NestForgeFactory::<AppModule>::create()?
        .with_websocket_gateway(EventsGateway)
        .with_server_config(config)
        .into_server()?;
    let stop = shutdown_on_signals(&server)?;

    let ex = LocalExecutor::new();
    smol::block_on(ex.run(async {
        let listener = TcpListener::bind((host.as_str(), port)).await?;
        println!(
            "tls_gateway listening on wss://{}/ws",
            listener.local_addr()?
        );
        let handshaking = Rc::new(Cell::new(0usize));
        loop {
            let accepted = or(async { Some(listener.accept().await) }, async {
                let _ = stop.recv().await;
                None
            });
            match accepted.await {
                None => break,
                Some(Ok((stream, peer))) => {
                    if handshaking.get() >= limit {
                        continue; // dropped: closes the socket at once
                    }
                    let _ = stream.set_nodelay(true);
                    let (server, acceptor) = (server.clone(), acceptor.clone());
                    let slot = Slot::take(&handshaking);
                    ex.spawn(serve_tls(server, acceptor, stream, peer, bound, slot))
                        .detach();
                }
                Some(Err(e)) => {
                    // Out of descriptors, or a connection reset while queued: back off.
                    eprintln!("accept failed: {e}");
                    Timer::after(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        // `serve_connection` sends Close 1001 on its own once shutdown has started; wait
        // for the connections to finish, at most `shutdown_timeout`.
        or(
            async {
                while !ex.is_empty() {
                    Timer::after(Duration::from_millis(20)).await;
                }
            },
            async {
                Timer::after(grace).await;
            },
        )
        .await;
        println!("tls_gateway stopped");
        Ok::<_, Box<dyn Error>>(())
    }))
}

/// One connection: the TLS handshake (bounded by `bound`), then the WebSocket server.
async fn serve_tls(
    server: Server,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    bound: Duration,
    slot: Slot,
) {
    let handshake = async { Some(acceptor.accept(stream).await) };
    let timeout = async {
        Timer::after(bound).await;
        None
    };
    let tls = match or(handshake, timeout).await {
        Some(Ok(tls)) => tls,
        Some(Err(e)) => return eprintln!("TLS handshake with {peer} failed: {e}"),
        None => return eprintln!("TLS handshake with {peer} timed out"),
    };
    drop(slot);
    // `smol::net::TcpStream::poll_close` half-closes, as `serve_connection` expects, and
    // the TLS stream's sends close_notify first.
    server.serve_connection(tls, Some(peer)).await;
}

/// Counts a TLS handshake in progress until dropped.
struct Slot(Rc<Cell<usize>>);

impl Slot {
    fn take(count: &Rc<Cell<usize>>) -> Self {
        count.set(count.get() + 1);
        Slot(Rc::clone(count))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The rustls server configuration for the PEM certificate chain and key.
fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, Box<dyn Error>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("TLS_CERT {cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS_CERT {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS_KEY {key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn env_path(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} to a PEM file (see the example's docs)"))
}

/// SIGINT and SIGTERM start a graceful shutdown and stop the accept loop.
fn shutdown_on_signals(server: &Server) -> std::io::Result<smol::channel::Receiver<()>> {
    let signal = nestforge_edge::shutdown_signal()?;
    let handle = server.shutdown_handle();
    let (tx, rx) = smol::channel::bounded(1);
    std::thread::spawn(move || {
        smol::block_on(signal);
        handle.shutdown();
        let _ = tx.try_send(());
    });
    Ok(rx)
}
