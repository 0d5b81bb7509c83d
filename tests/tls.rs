//! wss:// end to end: `examples/tls_gateway` with a self-signed certificate generated at run
//! time (rcgen), driven by Python `websockets` and by a rustls client; handshakes that stall
//! or fail do not stop the server; SIGTERM closes wss clients with 1001.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use common::*;
use futures_lite::StreamExt;
use futures_rustls::pki_types::{CertificateDer, ServerName};
use futures_rustls::{client::TlsStream, rustls, TlsConnector};

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM files in a fresh directory.
struct Certificate {
    dir: PathBuf,
    der: CertificateDer<'static>,
}

impl Certificate {
    fn generate() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nestforge-edge-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        let der = certified.cert.der().clone();
        Certificate { dir, der }
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An `examples/tls_gateway` process on a free port, killed on drop.
struct Gateway {
    addr: SocketAddr,
    child: Child,
    cert: Certificate,
}

impl Gateway {
    fn start() -> Gateway {
        let path = example("tls_gateway");
        let cert = Certificate::generate();
        let mut child = Command::new(path)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("TLS_CERT", cert.cert())
            .env("TLS_KEY", cert.dir.join("key.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tls_gateway");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            // Keep reading so that the last line ("stopped") never blocks the example.
            lines.for_each(drop);
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("tls_gateway did not start");
        };
        let addr = line
            .split("wss://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Gateway { addr, child, cert }
    }

    fn url(&self) -> String {
        format!("wss://{}/ws", self.addr)
    }

    /// A WebSocket client over TLS that trusts only the generated certificate.
    async fn connect(&self) -> WebSocketStream<TlsStream<smol::net::TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = smol::net::TcpStream::connect(self.addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let (ws, response) = async_tungstenite::client_async(self.url(), tls)
            .await
            .expect("WebSocket upgrade over TLS");
        assert_eq!(response.status(), 101);
        ws
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Banner, `app.info`, an error frame for a bad frame, then a clean close (1000).
async fn workflow<S>(ws: &mut WebSocketStream<S>)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let banner = next_text(ws).await;
    let suggested = banner.split("; send ").nth(1).expect(&banner).to_string();
    ws.send(Message::Text(suggested.into())).await.unwrap();
    let reply: serde_json::Value = serde_json::from_str(&next_text(ws).await).unwrap();
    assert_eq!(reply["pattern"], "app.info", "{reply}");
    assert_eq!(reply["payload"]["transport"], "websocket", "{reply}");
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(
        next_text(ws).await,
        "error:expected value at line 1 column 1"
    );
    let normal = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    ws.close(Some(normal)).await.unwrap();
    loop {
        match within(5, ws.next()).await {
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(frame.map(|f| f.code), Some(CloseCode::Normal));
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected the close reply, got {other:?}"),
        }
    }
}

#[test]
fn python_websockets_runs_the_workflow_over_wss() {
    if !python_websockets() {
        return;
    }
    let gateway = Gateway::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/python_wss_client.py"
    );
    let out = Command::new("timeout")
        .args(["30", "python3", script, &gateway.url()])
        .arg(gateway.cert.cert())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn stalled_and_failed_handshakes_do_not_stop_the_server() {
    let gateway = Gateway::start();
    // Opens TCP and sends nothing: must not hold up anyone else, and is dropped after the
    // handshake timeout (5 s by default).
    let mut silent = TcpStream::connect(gateway.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let opened = Instant::now();
    // Speaks plain HTTP to the TLS port: its handshake fails, the server goes on.
    let mut plain = raw(gateway.addr);
    plain.write_all(upgrade_head("/ws").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 101"), "plain text upgraded");
    // A TLS client is served meanwhile.
    smol::block_on(within(20, async {
        let mut ws = gateway.connect().await;
        workflow(&mut ws).await;
    }));
    let mut byte = [0u8];
    let n = silent.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0, "the silent client got data");
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "silent client dropped after {waited:?}"
    );
    // Still serving.
    smol::block_on(within(20, async {
        let mut ws = gateway.connect().await;
        workflow(&mut ws).await;
    }));
}

#[test]
fn sigterm_closes_wss_clients_with_1001_and_exits_0() {
    let mut gateway = Gateway::start();
    smol::block_on(within(30, async {
        let mut ws = gateway.connect().await;
        let banner = next_text(&mut ws).await;
        assert!(banner.starts_with("connected:"), "{banner}");
        let status = Command::new("kill")
            .args(["-TERM", &gateway.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    assert_eq!(frame.map(|f| f.code), Some(CloseCode::Away));
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected Close 1001, got {other:?}"),
            }
        }
        // async-tungstenite answers the close; the server then closes TLS and TCP.
        while let Some(Ok(_)) = ws.next().await {}
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "tls_gateway did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs Debian's chromium and playwright-core: bash .ci/browser-wss"]
fn chromium_runs_the_workflow_over_wss() {
    let gateway = Gateway::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/browser_wss.js");
    // NODE_PATH (set by .ci/browser-wss) points at playwright-core.
    let out = Command::new("timeout")
        .args(["60", "node", script, &gateway.addr.port().to_string()])
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
