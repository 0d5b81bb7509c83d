//! Scale-out with a real broker (feature `mqtt`): a mosquitto started on a free 127.0.0.1
//! port, gateway processes (`examples/mqtt_gateway`) on their own ports, WebSocket clients.
//!
//! Skipped with a message when `mosquitto` is not installed, unless `CI` is set (then a
//! missing broker is a failure). Every process is started here and killed by its PID.
#![cfg(feature = "mqtt")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use common::*;
use futures_lite::StreamExt;
use serde_json::{json, Value};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mosquitto_binary() -> Option<PathBuf> {
    let candidates = [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/local/bin/mosquitto",
    ];
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(found);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("mosquitto"))
        .find(|p| p.exists())
}

/// The broker, or `None` (skip) when it is not installed outside CI.
fn broker_or_skip(test: &str) -> Option<Broker> {
    match mosquitto_binary() {
        Some(bin) => Some(Broker::start(bin, free_port())),
        None if std::env::var_os("CI").is_some() => {
            panic!("{test}: mosquitto is not installed (required under CI)")
        }
        None => {
            eprintln!("{test}: skipped, mosquitto is not installed (apt-get install mosquitto)");
            None
        }
    }
}

/// A mosquitto on 127.0.0.1:`port` with a temporary configuration, killed on drop.
struct Broker {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn start(bin: PathBuf, port: u16) -> Broker {
        let dir = std::env::temp_dir().join(format!(
            "nestforge-mqtt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let mut broker = Broker {
            bin,
            port,
            dir,
            child: None,
        };
        broker.restart();
        broker
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port.
    fn restart(&mut self) {
        assert!(self.child.is_none());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let child = Command::new(&self.bin)
                .arg("-c")
                .arg(self.dir.join("mosquitto.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mosquitto");
            self.child = Some(child);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
                if let Ok(Some(_)) = self.child.as_mut().unwrap().try_wait() {
                    break; // the port was not free yet: try again
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.kill();
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An `examples/mqtt_gateway` process, killed on drop.
struct Gateway {
    addr: SocketAddr,
    instance: String,
    child: Child,
}

impl Gateway {
    fn start(broker: &Broker, instance: &str, serve: &str, extra: &[(&str, &str)]) -> Gateway {
        let mut command = Command::new(example("mqtt_gateway"));
        command
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("MQTT_URL", broker.url())
            .env("INSTANCE", instance)
            .env("SERVE", serve)
            .env("MQTT_TIMEOUT_MS", "1500")
            .env("MQTT_RECONNECT_MAX_MS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start mqtt_gateway");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("mqtt_gateway did not start");
            }
        };
        let addr = line
            .split("ws://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Gateway {
            addr,
            instance: instance.to_owned(),
            child,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request frame.
fn request(pattern: &str, payload: Value, id: Value) -> String {
    json!({"kind": "message", "pattern": pattern, "payload": payload, "id": id}).to_string()
}

/// Sends a request and returns the reply (or error) frame with the same id, skipping
/// other frames (pushes, broadcasts).
async fn call(ws: &mut Client, pattern: &str, payload: Value, id: Value) -> Value {
    send_text(ws, &request(pattern, payload, id.clone())).await;
    loop {
        let frame: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        if frame["id"] == id {
            return frame;
        }
    }
}

/// Calls until the reply has no error (the link or the subscriptions may still be coming
/// up), for at most `secs`.
async fn call_until_ok(ws: &mut Client, pattern: &str, payload: Value, secs: u64) -> Value {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        n += 1;
        let reply = call(ws, pattern, payload.clone(), json!(format!("retry-{n}"))).await;
        if reply.get("error").is_none() {
            return reply;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{pattern} kept failing: {reply}"
        );
        smol::Timer::after(Duration::from_millis(100)).await;
    }
}

fn code(frame: &Value) -> &str {
    frame["error"]["code"].as_str().unwrap_or("")
}

/// Text frames received within `window` (pings skipped).
async fn texts_within(ws: &mut Client, window: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let end = Instant::now() + window;
    loop {
        let now = Instant::now();
        if now >= end {
            return out;
        }
        let next = futures_lite::future::or(async { Some(ws.next().await) }, async {
            smol::Timer::at(end).await;
            None
        })
        .await;
        match next {
            Some(Some(Ok(Message::Text(t)))) => out.push(t.to_string()),
            Some(Some(Ok(_))) => {}
            Some(other) => panic!("connection ended: {other:?}"),
            None => return out,
        }
    }
}

/// How many times `text` arrives: waits (bounded) for the first copy, then `settle` more
/// for duplicates.
async fn copies_of(ws: &mut Client, text: &str, settle: Duration) -> usize {
    let mut n = 0;
    let start = Instant::now();
    while n == 0 && start.elapsed() < Duration::from_secs(5) {
        n += texts_within(ws, Duration::from_millis(100))
            .await
            .iter()
            .filter(|t| *t == text)
            .count();
    }
    n + texts_within(ws, settle)
        .await
        .iter()
        .filter(|t| *t == text)
        .count()
}

/// Polls `audit.count` until it reaches `want` (bounded), then checks it stays there.
async fn audit_count_settles(ws: &mut Client, want: u64, name: &str) {
    let start = Instant::now();
    loop {
        let count = call(ws, "audit.count", json!(null), json!("count")).await;
        let n = count["payload"].as_u64().unwrap();
        assert!(n <= want, "{name}: {count}");
        if n == want {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{name}: {count}");
        smol::Timer::after(Duration::from_millis(50)).await;
    }
    smol::Timer::after(Duration::from_millis(300)).await;
    let count = call(ws, "audit.count", json!(null), json!("count")).await;
    assert_eq!(count["payload"], want, "{name}: {count}");
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn two_gateways_serve_each_other_share_work_fan_out_events_and_broadcast_once() {
    let Some(broker) = broker_or_skip("two_gateways") else {
        return;
    };
    // A publishes its events at QoS 1, the others subscribe at QoS 0.
    let a = Gateway::start(
        &broker,
        &unique("gw-a"),
        "app.info,shared.echo",
        &[("MQTT_EVENT_QOS", "1")],
    );
    let b = Gateway::start(&broker, &unique("gw-b"), "math.sum,shared.echo", &[]);
    let c = Gateway::start(&broker, &unique("gw-c"), "none", &[]);
    smol::block_on(within(60, async {
        let mut wa = connect(a.addr, "/ws").await;
        let mut wb = connect(b.addr, "/ws").await;
        let mut wc = connect(c.addr, "/ws").await;

        // Each reaches the other's patterns; the client's own id comes back.
        call_until_ok(&mut wa, "math.sum", json!([1]), 10).await;
        let reply = call(&mut wa, "math.sum", json!([1, 2, 3]), json!(7)).await;
        assert_eq!(reply["id"], 7, "{reply}");
        assert_eq!(reply["pattern"], "math.sum");
        assert_eq!(reply["payload"], json!({"sum": 6, "servedBy": b.instance}));
        call_until_ok(&mut wb, "app.info", json!(null), 10).await;
        let reply = call(&mut wb, "app.info", json!({"n": 1}), json!("x-1")).await;
        assert_eq!(reply["id"], "x-1", "{reply}");
        assert_eq!(reply["payload"]["servedBy"], a.instance.as_str());
        assert_eq!(reply["payload"]["data"], json!({"n": 1}));

        // A local handler wins: no broker hop.
        let reply = call(&mut wa, "shared.echo", json!(1), json!(1)).await;
        assert_eq!(reply["payload"]["servedBy"], a.instance.as_str());

        // $share: C serves nothing, so 20 requests through C split between A and B.
        call_until_ok(&mut wc, "shared.echo", json!("warm-up"), 10).await;
        let (mut on_a, mut on_b) = (0, 0);
        for i in 0..20 {
            let reply = call(&mut wc, "shared.echo", json!(i), json!(100 + i)).await;
            assert_eq!(reply["payload"]["echo"], i, "{reply}");
            match reply["payload"]["servedBy"].as_str() {
                Some(s) if s == a.instance => on_a += 1,
                Some(s) if s == b.instance => on_b += 1,
                _ => panic!("{reply}"),
            }
        }
        eprintln!("$share split of 20 requests: A {on_a}, B {on_b}");
        assert_eq!(on_a + on_b, 20);
        assert!(on_a > 0 && on_b > 0, "A {on_a}, B {on_b}");

        // Nobody serves it: `timeout` after the request timeout, not a hang.
        let start = Instant::now();
        let reply = call(&mut wa, "nobody.serves", json!({}), json!(99)).await;
        assert_eq!(code(&reply), "timeout", "{reply}");
        assert_eq!(reply["id"], 99);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
            "{took:?}"
        );

        // An event emitted on A reaches every instance's handler exactly once.
        let before: Vec<Value> = vec![
            call(&mut wa, "audit.count", json!(null), json!("c0")).await["payload"].clone(),
            call(&mut wb, "audit.count", json!(null), json!("c0")).await["payload"].clone(),
            call(&mut wc, "audit.count", json!(null), json!("c0")).await["payload"].clone(),
        ];
        assert_eq!(before, vec![json!(0), json!(0), json!(0)]);
        send_text(
            &mut wa,
            r#"{"kind":"event","pattern":"audit.log","payload":{"who":"ada"}}"#,
        )
        .await;
        for (ws, name) in [(&mut wa, "A"), (&mut wb, "B"), (&mut wc, "C")] {
            audit_count_settles(ws, 1, name).await;
        }

        // A broadcast from A: every client of every instance receives it exactly once.
        let reply = call(
            &mut wa,
            "broadcast",
            json!({"text": "hello-all"}),
            json!("b1"),
        )
        .await;
        assert_eq!(reply["payload"], 1, "{reply}");
        for (ws, name) in [(&mut wa, "A"), (&mut wb, "B"), (&mut wc, "C")] {
            let n = copies_of(ws, "hello-all", Duration::from_millis(400)).await;
            assert_eq!(n, 1, "{name}");
        }

        // A push to a connection on another instance.
        let me = call(&mut wb, "whoami", json!(null), json!("w")).await;
        let (instance, conn) = (
            me["payload"]["instance"].clone(),
            me["payload"]["conn"].clone(),
        );
        assert_eq!(instance, b.instance.as_str());
        let reply = call(
            &mut wa,
            "push.to",
            json!({"instance": instance, "conn": conn, "text": "for-b"}),
            json!("p"),
        )
        .await;
        assert_eq!(reply["payload"], true, "{reply}");
        assert_eq!(next_text(&mut wb).await, "for-b");

        // Nothing malformed on the way.
        for ws in [&mut wa, &mut wb, &mut wc] {
            let stats = call(ws, "mqtt.stats", json!(null), json!("s")).await;
            assert_eq!(stats["payload"]["malformed"], 0, "{stats}");
            assert_eq!(stats["payload"]["connects"], 1, "{stats}");
        }
    }));
    drop((a, b, c, broker));
}

#[test]
fn broker_outage_gives_unavailable_then_recovers_and_local_patterns_keep_working() {
    let Some(mut broker) = broker_or_skip("broker_outage") else {
        return;
    };
    let a = Gateway::start(&broker, &unique("gw-a"), "app.info", &[]);
    let b = Gateway::start(&broker, &unique("gw-b"), "math.sum", &[]);
    smol::block_on(within(60, async {
        let mut wa = connect(a.addr, "/ws").await;
        let mut wb = connect(b.addr, "/ws").await;
        call_until_ok(&mut wa, "math.sum", json!([2, 2]), 10).await;

        broker.kill();
        // `unavailable` at once (no waiting for the timeout) once the link is seen down.
        let start = Instant::now();
        loop {
            let t = Instant::now();
            let reply = call(&mut wa, "math.sum", json!([1]), json!("down")).await;
            if code(&reply) == "unavailable" {
                assert!(
                    t.elapsed() < Duration::from_millis(500),
                    "{:?}",
                    t.elapsed()
                );
                assert_eq!(reply["id"], "down");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{reply}");
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        // Local patterns are unaffected.
        let reply = call(&mut wa, "app.info", json!(null), json!("local")).await;
        assert_eq!(reply["payload"]["servedBy"], a.instance.as_str(), "{reply}");
        let reply = call(&mut wb, "math.sum", json!([5]), json!("local")).await;
        assert_eq!(reply["payload"]["sum"], 5, "{reply}");
        // A broadcast still reaches the local clients.
        let reply = call(&mut wa, "broadcast", json!({"text": "during"}), json!("bd")).await;
        assert_eq!(reply["payload"], 1, "{reply}");
        assert_eq!(next_text(&mut wa).await, "during");
        smol::Timer::after(Duration::from_millis(500)).await;

        broker.restart();
        // Back within the backoff cap (1 s here) plus a margin, without help.
        let start = Instant::now();
        let reply = call_until_ok(&mut wa, "math.sum", json!([4, 5]), 5).await;
        assert_eq!(reply["payload"]["sum"], 9);
        call_until_ok(&mut wb, "app.info", json!(null), 5).await;
        eprintln!("recovered {:?} after the restart", start.elapsed());
        let reply = call(&mut wb, "broadcast", json!({"text": "after"}), json!("ba")).await;
        assert_eq!(reply["payload"], 1, "{reply}");
        for ws in [&mut wa, &mut wb] {
            assert_eq!(copies_of(ws, "after", Duration::from_millis(400)).await, 1);
        }
        let stats = call(&mut wa, "mqtt.stats", json!(null), json!("s")).await;
        assert_eq!(stats["payload"]["connects"], 2, "{stats}");
    }));
    drop((a, b, broker));
}

/// The modules installed by `.ci/nest-mqtt`, or `None` (skip) outside CI.
fn nest_modules_or_skip(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("NEST_MQTT_MODULES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/nestforge-edge-nest/node_modules"))
        })
        .filter(|d| d.join("@nestjs/microservices/package.json").exists());
    let node = Command::new("node").arg("--version").output().is_ok();
    match dir {
        Some(dir) if node => Some(dir),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: node or the NestJS modules are missing (run .ci/nest-mqtt)")
        }
        _ => {
            eprintln!("{test}: skipped, run .ci/nest-mqtt to install NestJS's MQTT transport");
            None
        }
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn nestjs_mqtt_transport_calls_us_and_serves_us() {
    let Some(broker) = broker_or_skip("nestjs_interop") else {
        return;
    };
    let Some(modules) = nest_modules_or_skip("nestjs_interop") else {
        return;
    };
    let a = Gateway::start(&broker, &unique("gw-a"), "app.info", &[]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/nest_mqtt.js");
    let mut node = Command::new("node")
        .arg(script)
        .arg(broker.url())
        .env("NODE_PATH", modules)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let stdout = node.stdout.take().unwrap();
    let node = Killed(node);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("no output from the NestJS side")
    };
    assert_eq!(next_line(), "READY");
    // NestJS's ClientMqtt called our `app.info` (and emitted `audit.log`).
    let line = next_line();
    let reply: Value = serde_json::from_str(
        line.strip_prefix("CLIENT ")
            .unwrap_or_else(|| panic!("{line}")),
    )
    .unwrap();
    assert_eq!(
        reply,
        json!({"name": "mqtt_gateway", "servedBy": a.instance, "data": {"from": "nest"}})
    );
    smol::block_on(within(30, async {
        let mut ws = connect(a.addr, "/ws").await;
        // Our gateway calls NestJS's ServerMqtt `math.sum`.
        let reply = call_until_ok(&mut ws, "math.sum", json!([1, 2, 3]), 10).await;
        assert_eq!(
            reply["payload"],
            json!({"sum": 6, "servedBy": "nest"}),
            "{reply}"
        );
        let reply = call(&mut ws, "math.sum", json!([4, 5]), json!("n-1")).await;
        assert_eq!(reply["id"], "n-1");
        assert_eq!(reply["payload"]["sum"], 9, "{reply}");
        // The NestJS event reached our handler.
        audit_count_settles(&mut ws, 1, "gateway").await;
    }));
    drop((node, a, broker));
}

/// A bare MQTT 3.1.1 publisher, to send what no well-behaved client would.
fn raw_publish(broker: &Broker, topic: &str, payload: &[u8]) {
    use std::io::{Read, Write};
    fn remaining(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                break;
            }
        }
    }
    let mut s = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let id = unique("raw");
    let mut connect = vec![0x10];
    remaining(&mut connect, 12 + id.len());
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30]);
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id.as_bytes());
    s.write_all(&connect).unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    let mut publish = vec![0x30];
    remaining(&mut publish, 2 + topic.len() + payload.len());
    publish.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    publish.extend_from_slice(topic.as_bytes());
    publish.extend_from_slice(payload);
    s.write_all(&publish).unwrap();
    s.write_all(&[0xe0, 0]).unwrap();
}

#[test]
fn hostile_broker_input_and_mqtt_3_1_1() {
    let Some(broker) = broker_or_skip("hostile_broker_input") else {
        return;
    };
    let v3 = [("MQTT_PROTOCOL", "3.1.1")];
    let g = Gateway::start(&broker, &unique("gw-g"), "math.sum", &v3);
    let h = Gateway::start(&broker, &unique("gw-h"), "none", &v3);
    smol::block_on(within(60, async {
        let mut wg = connect(g.addr, "/ws").await;
        let mut wh = connect(h.addr, "/ws").await;
        call_until_ok(&mut wh, "math.sum", json!([1]), 10).await;

        // Garbage on a served topic: dropped and counted.
        raw_publish(&broker, "math.sum", b"not json");
        raw_publish(
            &broker,
            "math.sum",
            br#"{"pattern":"math.sum","data":[1],"id":{}}"#,
        );
        // Over the 64 KiB packet cap: the link is closed and reopened.
        raw_publish(&broker, "math.sum", &vec![b' '; 100 * 1024]);
        let start = Instant::now();
        loop {
            let stats = call(&mut wg, "mqtt.stats", json!(null), json!("s")).await;
            let p = &stats["payload"];
            if p["malformed"].as_u64() >= Some(3) && p["connects"] == 2 && p["connected"] == true {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{stats}");
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        let reply = call_until_ok(&mut wh, "math.sum", json!([2, 3]), 10).await;
        assert_eq!(reply["payload"]["sum"], 5, "{reply}");

        // 3.1.1 has no No Local: our own event's echo is recognised and dropped.
        send_text(
            &mut wg,
            r#"{"kind":"event","pattern":"audit.log","payload":{"n":1}}"#,
        )
        .await;
        for (ws, name) in [(&mut wg, "G"), (&mut wh, "H")] {
            audit_count_settles(ws, 1, name).await;
        }
        // And broadcasts are delivered once per client.
        call(&mut wg, "broadcast", json!({"text": "v3"}), json!("b")).await;
        for ws in [&mut wg, &mut wh] {
            assert_eq!(copies_of(ws, "v3", Duration::from_millis(400)).await, 1);
        }
    }));
    drop((g, h, broker));
}

/// Sequential round trips: (median, p99, mean).
async fn measure(ws: &mut Client, pattern: &str) -> (Duration, Duration, Duration) {
    const N: usize = 500;
    let mut times = Vec::with_capacity(N);
    for i in 0..N {
        let t = Instant::now();
        let reply = call(ws, pattern, json!({"i": i}), json!(i)).await;
        times.push(t.elapsed());
        assert!(reply.get("error").is_none(), "{reply}");
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / N as u32;
    (times[N / 2], times[N * 99 / 100], mean)
}

/// Prints the cost of a broker hop: the same echo handler called locally and through the
/// broker (`cargo test --release --features mqtt --test mqtt overhead -- --nocapture`).
#[test]
fn forwarding_overhead_against_a_local_pattern() {
    let Some(broker) = broker_or_skip("forwarding_overhead") else {
        return;
    };
    let a = Gateway::start(&broker, &unique("gw-a"), "none", &[]);
    let b = Gateway::start(&broker, &unique("gw-b"), "shared.echo", &[]);
    smol::block_on(within(120, async {
        let mut ws = connect(a.addr, "/ws").await;
        call_until_ok(&mut ws, "shared.echo", json!(0), 10).await;
        const N: usize = 500;
        let local = measure(&mut ws, "local.echo").await;
        let remote = measure(&mut ws, "shared.echo").await;
        eprintln!(
            "sequential round trips over {N} calls (median / p99 / mean):\n  local pattern      {:?} / {:?} / {:?}\n  through the broker {:?} / {:?} / {:?}\n  overhead (median)  {:?}",
            local.0, local.1, local.2, remote.0, remote.1, remote.2,
            remote.0.saturating_sub(local.0)
        );
    }));
    drop((a, b, broker));
}
