//! Operations over loopback: lifecycle hooks, server push and broadcast, keep-alive,
//! graceful shutdown (in-process and SIGTERM to the example), counters and `/healthz`,
//! per-connection concurrency.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame as ClientCloseFrame;
use async_tungstenite::tungstenite::Message as ClientMessage;
use common::*;
use futures_lite::StreamExt;
use nestforge_edge::prelude::*;
use nestforge_edge::{serve_patterns, CloseInfo, Overflow, PushError, Server};

type Log = Arc<Mutex<Vec<(u64, u16)>>>;

/// Echo gateway that records its hooks.
struct Recorder {
    disconnects: Log,
    inits: Arc<Mutex<Vec<Option<SocketAddr>>>>,
}

impl WebSocketGateway for Recorder {
    fn on_connect(&self, _ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            while let Some(Ok(message)) = socket.recv().await {
                if message.is_text() && socket.send(message).await.is_err() {
                    break;
                }
            }
        })
    }
    fn on_init(&self, local_addr: Option<SocketAddr>) {
        self.inits.lock().unwrap().push(local_addr);
    }
    fn on_disconnect(&self, ctx: &WebSocketContext, close: &CloseInfo) {
        self.disconnects
            .lock()
            .unwrap()
            .push((ctx.connection_id(), close.code));
    }
}

module! { struct AppModule { providers: [] } }

fn recorder_server(
    config: WebSocketConfig,
    server: ServerConfig,
) -> (Server, Log, Arc<Mutex<Vec<Option<SocketAddr>>>>) {
    let disconnects = Log::default();
    let inits = Arc::default();
    let gateway = Recorder {
        disconnects: Arc::clone(&disconnects),
        inits: Arc::clone(&inits),
    };
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway_config(gateway, config)
        .with_server_config(server)
        .into_server()
        .unwrap();
    (server, disconnects, inits)
}

/// Waits until `log` has `n` entries (bounded).
fn wait_for(log: &Log, n: usize) -> Vec<(u64, u16)> {
    let start = Instant::now();
    while log.lock().unwrap().len() < n {
        assert!(
            start.elapsed() < scaled(Duration::from_secs(10)),
            "only {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    log.lock().unwrap().clone()
}

#[test]
fn disconnect_is_called_exactly_once_per_connection() {
    let config = WebSocketConfig::default().close_timeout(Duration::from_millis(300));
    let (server, log, inits) = recorder_server(config, ServerConfig::default());
    let running = spawn(server);
    // clean close by the client
    smol::block_on(within(5, async {
        let mut ws = connect(running.addr, "/ws").await;
        ws.close(Some(ClientCloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        while ws.next().await.is_some() {}
    }));
    assert_eq!(wait_for(&log, 1).last().unwrap().1, 1000);
    // the client vanishes (TCP closed without a close frame)
    drop(raw_upgrade(running.addr, "/ws"));
    assert_eq!(wait_for(&log, 2).last().unwrap().1, 1006);
    // a protocol error (unmasked frame)
    let mut s = raw_upgrade(running.addr, "/ws");
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    assert_eq!(read_close_code(&mut s), Some(1002));
    assert_eq!(wait_for(&log, 3).last().unwrap().1, 1002);
    // shutdown: Close 1001 to every open client
    let mut a = raw_upgrade(running.addr, "/ws");
    let mut b = raw_upgrade(running.addr, "/ws");
    std::thread::sleep(Duration::from_millis(50));
    running.handle.shutdown();
    assert_eq!(read_close_code(&mut a), Some(1001));
    assert_eq!(read_close_code(&mut b), Some(1001));
    a.write_all(&frame(true, 8, &1001u16.to_be_bytes()))
        .unwrap();
    b.write_all(&frame(true, 8, &1001u16.to_be_bytes()))
        .unwrap();
    running.stop();
    let all = wait_for(&log, 5);
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(
        all[3..].iter().map(|e| e.1).collect::<Vec<_>>(),
        [1001, 1001]
    );
    let mut ids: Vec<u64> = all.iter().map(|e| e.0).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "one call per connection: {all:?}");
    assert_eq!(inits.lock().unwrap().len(), 1);
}

#[test]
fn broadcast_reaches_1000_connections_despite_a_never_reading_one() {
    let config = WebSocketConfig::default()
        .outbound_queue(4)
        .overflow(Overflow::Close)
        .max_write_buffer_size(16 * 1024)
        .close_timeout(Duration::from_millis(200));
    let (server, log, _) = recorder_server(config, ServerConfig::default().max_connections(1100));
    let connections = server.providers().resolve::<Connections>().unwrap();
    let running = spawn(server);
    let mut clients: Vec<_> = (0..1000)
        .map(|_| raw_upgrade(running.addr, "/ws"))
        .collect();
    let start = Instant::now();
    while connections.len() < 1000 {
        assert!(start.elapsed() < scaled(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(10));
    }
    // Client 0 never reads. Flood it alone until its queue overflows: the push never waits.
    let stalled_id = *connections.ids().iter().min().unwrap();
    let big = Message::Binary(vec![7u8; 60 * 1024].into());
    let flood_start = Instant::now();
    let mut outcome = Ok(());
    for _ in 0..2000 {
        outcome = connections.send(stalled_id, big.clone());
        if outcome.is_err() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(
        matches!(outcome, Err(PushError::Closing | PushError::NotConnected)),
        "{outcome:?}"
    );
    assert!(flood_start.elapsed() < scaled(Duration::from_secs(10)));
    // A broadcast to everyone: the 999 readers each get it.
    let report = connections.broadcast(Message::Text("tick".into()));
    assert!(report.delivered >= 999, "{report:?}");
    for client in clients.iter_mut().skip(1) {
        // A slow run (emulation) can outlast the 20 s keep-alive interval: skip its pings.
        let (op, payload) = loop {
            match read_frame(client).unwrap() {
                (0x9, _) => continue,
                other => break other,
            }
        };
        assert_eq!((op, payload.as_slice()), (1, &b"tick"[..]));
    }
    assert!(wait_for(&log, 1).contains(&(stalled_id, 1008)));
    drop(clients);
    running.stop();
}

#[test]
fn dead_peer_is_closed_after_the_idle_timeout() {
    let config = WebSocketConfig::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .idle_timeout(Some(Duration::from_millis(400)))
        .close_timeout(Duration::from_millis(200));
    let (server, log, _) = recorder_server(config, ServerConfig::default());
    let running = spawn(server);
    // A raw client that reads (pings arrive) but never answers.
    let mut dead = raw_upgrade(running.addr, "/ws");
    let start = Instant::now();
    let mut pings = 0;
    let code = loop {
        let (op, payload) = read_frame(&mut dead).unwrap();
        match op {
            0x9 => pings += 1,
            0x8 => break u16::from_be_bytes([payload[0], payload[1]]),
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert_eq!(code, 1001);
    assert!(pings >= 2, "{pings} pings");
    let elapsed = start.elapsed();
    // The server's idle clock starts when it sends the 101, a moment before `start`.
    assert!(
        elapsed >= Duration::from_millis(390) && elapsed < scaled(Duration::from_secs(3)),
        "{elapsed:?}"
    );
    assert_eq!(wait_for(&log, 1)[0].1, 1001);
    // A live client answers the pings (async-tungstenite pongs while reading) and stays.
    smol::block_on(within(5, async {
        let mut ws = connect(running.addr, "/ws").await;
        let until = Instant::now() + Duration::from_millis(900);
        while Instant::now() < until {
            let tick =
                futures_lite::future::or(async { ws.next().await.map(|m| m.is_ok()) }, async {
                    smol::Timer::after(Duration::from_millis(50)).await;
                    Some(true)
                });
            assert_eq!(tick.await, Some(true));
        }
        send_text(&mut ws, "still here").await;
        assert_eq!(next_text(&mut ws).await, "still here");
    }));
}

#[test]
fn graceful_shutdown_returns_within_the_deadline() {
    let (server, log, _) = recorder_server(
        WebSocketConfig::default(),
        ServerConfig::default().shutdown_timeout(Duration::from_millis(500)),
    );
    let running = spawn(server);
    // One client completes the close handshake, one ignores it.
    let mut polite = raw_upgrade(running.addr, "/ws");
    let mut rude = raw_upgrade(running.addr, "/ws");
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    running.handle.shutdown();
    assert_eq!(read_close_code(&mut polite), Some(1001));
    polite
        .write_all(&frame(true, 8, &1001u16.to_be_bytes()))
        .unwrap();
    assert_eq!(read_close_code(&mut rude), Some(1001));
    running.stop();
    assert!(
        start.elapsed() < scaled(Duration::from_secs(3)),
        "{:?}",
        start.elapsed()
    );
    let all = wait_for(&log, 2);
    assert!(all.iter().all(|e| e.1 == 1001), "{all:?}");
    // New connections are refused once shutdown has begun.
    drop(rude);
}

/// A shutdown signal that counts its polls and completes once `fire` is called.
#[derive(Clone, Default)]
struct CountedSignal {
    polls: Arc<std::sync::atomic::AtomicUsize>,
    fired: Arc<std::sync::atomic::AtomicBool>,
    waker: Arc<Mutex<Option<std::task::Waker>>>,
}

impl CountedSignal {
    fn polls(&self) -> usize {
        self.polls.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn fire(&self) {
        self.fired.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

impl std::future::Future for CountedSignal {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.fired.load(std::sync::atomic::Ordering::SeqCst) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

/// `serve_with_graceful_shutdown` under `run`: 100 echoed messages poll the signal once
/// (at the start, not per message); when it completes the client gets Close 1001 and
/// `serve_with_graceful_shutdown` returns `Ok`.
fn signal_ends_serving(
    run: fn(Server, std::net::TcpListener, CountedSignal) -> nestforge_edge::Result<()>,
) {
    let (server, log, _) = recorder_server(WebSocketConfig::default(), ServerConfig::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let signal = CountedSignal::default();
    let thread = std::thread::spawn({
        let signal = signal.clone();
        move || run(server, listener, signal)
    });
    let mut client = raw_upgrade(addr, "/ws");
    for i in 0..100 {
        let text = format!("m{i}");
        client.write_all(&frame(true, 1, text.as_bytes())).unwrap();
        assert_eq!(read_frame(&mut client).unwrap(), (1, text.into_bytes()));
    }
    assert_eq!(signal.polls(), 1, "polled by the connection's wake-ups");
    signal.fire();
    assert_eq!(read_close_code(&mut client), Some(1001));
    client
        .write_all(&frame(true, 8, &1001u16.to_be_bytes()))
        .unwrap();
    thread.join().unwrap().unwrap();
    assert_eq!(signal.polls(), 2);
    assert_eq!(wait_for(&log, 1)[0].1, 1001);
}

#[test]
fn a_shutdown_signal_ends_serving_under_the_crates_block_on() {
    signal_ends_serving(|server, listener, signal| {
        nestforge_edge::block_on(server.serve_with_graceful_shutdown(listener, signal))
    });
}

#[test]
fn a_shutdown_signal_already_complete_ends_serving_at_once() {
    let (server, log, _) = recorder_server(WebSocketConfig::default(), ServerConfig::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    nestforge_edge::block_on(server.serve_with_graceful_shutdown(listener, async {})).unwrap();
    // The listener is closed with the return: nobody is left queued.
    assert!(std::net::TcpStream::connect(addr).is_err());
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn a_shutdown_signal_ends_serving_under_smol() {
    signal_ends_serving(|server, listener, signal| {
        smol::block_on(server.serve_with_graceful_shutdown(listener, signal))
    });
}

#[test]
fn sigterm_to_the_example_closes_clients_with_1001_and_exits_0() {
    let (mut child, addr) = start_example("echo", &[]);
    let mut clients: Vec<_> = (0..3).map(|_| raw_upgrade(addr, "/ws")).collect();
    clients[0].write_all(&frame(true, 1, b"hi")).unwrap();
    assert_eq!(read_frame(&mut clients[0]).unwrap(), (1, b"hi".to_vec()));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for client in &mut clients {
        assert_eq!(read_close_code(client), Some(1001));
        client
            .write_all(&frame(true, 8, &1001u16.to_be_bytes()))
            .unwrap();
    }
    let exit = wait_exit(&mut child, 6);
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn healthz_counters_match_what_happened() {
    let (server, log, _) = recorder_server(
        WebSocketConfig::default(),
        ServerConfig::default().health_endpoint(Some("/healthz")),
    );
    let running = spawn(server);
    smol::block_on(within(10, async {
        let mut a = connect(running.addr, "/ws").await;
        let mut b = connect(running.addr, "/ws").await;
        for ws in [&mut a, &mut b] {
            for _ in 0..3 {
                send_text(ws, "hello").await;
                assert_eq!(next_text(ws).await, "hello");
            }
        }
        a.close(Some(ClientCloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await
        .unwrap();
        while a.next().await.is_some() {}
        wait_for(&log, 1);
        assert!(http(running.addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        let answer = http(running.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["total_connections"], 4, "{json}"); // a, b, the 404, this request
        assert_eq!(json["open_connections"], 1, "{json}"); // b: this request is no WebSocket
        assert_eq!(json["frames_in"], 7, "{json}"); // 6 texts and a's close
        assert_eq!(json["frames_out"], 6, "{json}");
        assert_eq!(json["bytes_in"], 30, "{json}");
        assert_eq!(json["bytes_out"], 30, "{json}");
        assert_eq!(json["rejected_upgrades"], 1, "{json}");
        assert_eq!(json["closes"]["1000"], 1, "{json}");
        drop(b);
    }));
    let stats = running.server.stats();
    assert_eq!(stats.closes_with(1000), 1);
}

/// A registry with a slow and a fast pattern, served by `serve_patterns`.
struct Patterns(MicroserviceRegistry);
struct Concurrent;

impl WebSocketGateway for Concurrent {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let patterns = ctx.resolve::<Patterns>().unwrap();
            let _ = serve_patterns(&ctx, &mut socket, &patterns.0, 2).await;
        })
    }
}

fn patterns() -> Patterns {
    Patterns(
        MicroserviceRegistry::builder()
            .message("slow", |ms: u64, _| async move {
                async_io::Timer::after(Duration::from_millis(ms)).await;
                Ok(ms)
            })
            .message("fast", |_: (), _| async { Ok("fast") })
            .build(),
    )
}

module! { struct ConcurrentModule { providers: [patterns()] } }

#[test]
fn slow_handlers_do_not_stall_pings_or_other_requests() {
    let server = NestForgeFactory::<ConcurrentModule>::create()
        .unwrap()
        .with_websocket_gateway(Concurrent)
        .into_server()
        .unwrap();
    let running = spawn(server);
    smol::block_on(within(10, async {
        let mut ws = connect(running.addr, "/ws").await;
        send_text(
            &mut ws,
            r#"{"kind":"message","pattern":"slow","payload":600,"id":1}"#,
        )
        .await;
        let sent = Instant::now();
        ws.send(ClientMessage::Ping(vec![9].into())).await.unwrap();
        match ws.next().await {
            Some(Ok(ClientMessage::Pong(p))) => assert_eq!(&p[..], &[9]),
            other => panic!("expected the pong first, got {other:?}"),
        }
        assert!(
            sent.elapsed() < scaled(Duration::from_millis(300)),
            "pong waited for the handler"
        );
        send_text(&mut ws, r#"{"kind":"message","pattern":"fast","id":2}"#).await;
        assert!(next_text(&mut ws)
            .await
            .starts_with(r#"{"id":2,"pattern":"fast""#));
        assert!(next_text(&mut ws)
            .await
            .starts_with(r#"{"id":1,"pattern":"slow","payload":600"#));
        // More slow requests than the in-flight bound (2): all answered, ids kept.
        for id in 10..15 {
            send_text(
                &mut ws,
                &format!(r#"{{"kind":"message","pattern":"slow","payload":50,"id":{id}}}"#),
            )
            .await;
        }
        let mut ids = Vec::new();
        for _ in 10..15 {
            let reply: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
            ids.push(reply["id"].as_u64().unwrap());
        }
        ids.sort_unstable();
        assert_eq!(ids, [10, 11, 12, 13, 14]);
        send_text(&mut ws, r#"{"kind":"message","pattern":"nope","id":3}"#).await;
        assert!(next_text(&mut ws)
            .await
            .contains(r#""code":"unknown_pattern""#));
    }));
    assert_eq!(running.server.stats().dispatch_errors, 1);
}

#[test]
fn push_to_one_connection_and_to_rooms() {
    let (server, _, _) = recorder_server(WebSocketConfig::default(), ServerConfig::default());
    let connections = server.providers().resolve::<Connections>().unwrap();
    let running = spawn(server);
    let mut a = raw_upgrade(running.addr, "/ws");
    let mut b = raw_upgrade(running.addr, "/ws");
    let start = Instant::now();
    while connections.len() < 2 {
        assert!(start.elapsed() < scaled(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut ids = connections.ids();
    ids.sort_unstable();
    connections
        .send(ids[1], Message::Text("to b".into()))
        .unwrap();
    assert_eq!(read_frame(&mut b).unwrap(), (1, b"to b".to_vec()));
    assert!(connections.join(ids[0], "room"));
    assert_eq!(
        connections
            .to_room("room", Message::Text("to room".into()))
            .delivered,
        1
    );
    assert_eq!(read_frame(&mut a).unwrap(), (1, b"to room".to_vec()));
    assert_eq!(
        connections.send(999_999, Message::Text("x".into())),
        Err(PushError::NotConnected)
    );
    // b saw nothing else: its next frame is the echo of what it sends now
    b.write_all(&frame(true, 1, b"echo")).unwrap();
    assert_eq!(read_frame(&mut b).unwrap(), (1, b"echo".to_vec()));
    let mut buf = [0u8; 1];
    a.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(a.read(&mut buf).is_err(), "a got an unexpected frame");
}

#[test]
fn a_slow_fragmented_message_keeps_the_connection_alive() {
    let config = WebSocketConfig::default()
        .ping_interval(None)
        .idle_timeout(Some(Duration::from_millis(300)));
    let (server, log, _) = recorder_server(config, ServerConfig::default());
    let running = spawn(server);
    let mut s = raw_upgrade(running.addr, "/ws");
    // 12 fragments, 100 ms apart: 1.2 s in all, four times the idle timeout.
    s.write_all(&frame(false, 1, b"a")).unwrap();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(&frame(false, 0, b"a")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(&frame(true, 0, b"a")).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), (1, b"aaaaaaaaaaaa".to_vec()));
    assert!(log.lock().unwrap().is_empty());
}
