//! examples/telemetry.rs as a process: the schedule pushes readings to the clients that
//! subscribed, the application's error code reaches the client with its request id, and
//! SIGTERM runs the shutdown hooks and exits 0.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The next text frame's JSON (pings skipped).
fn next_json(client: &mut std::net::TcpStream) -> serde_json::Value {
    loop {
        let (opcode, payload) = read_frame(client).unwrap();
        if opcode == 1 {
            return serde_json::from_slice(&payload).unwrap();
        }
    }
}

#[test]
fn telemetry_pushes_readings_answers_app_errors_and_stops_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(example("telemetry"))
        .env("PORT", port.to_string())
        .env("TELEMETRY_EVERY_MS", "100")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The bootstrap hook announces the server once it serves.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("telemetry listening on ws://127.0.0.1:"),
        "{line:?}"
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let mut client = raw_upgrade(addr, "/ws");
    client
        .write_all(&frame(
            true,
            1,
            br#"{"kind":"message","pattern":"telemetry.subscribe","id":1}"#,
        ))
        .unwrap();
    let joined = next_json(&mut client);
    assert_eq!(
        (joined["id"].as_i64(), joined["payload"].as_bool()),
        (Some(1), Some(true))
    );
    // Pushed readings, every 100 ms, in order.
    let started = Instant::now();
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let push = next_json(&mut client);
        assert_eq!(push["kind"], "event", "{push}");
        assert_eq!(push["pattern"], "telemetry.reading", "{push}");
        seqs.push(push["payload"]["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(started.elapsed() < scaled(Duration::from_secs(5)));
    // The application's own error code, matched to its request by id.
    client
        .write_all(&frame(
            true,
            1,
            br#"{"kind":"message","pattern":"readings.put","payload":{"celsius":91.5,"seq":7},"id":"put-1"}"#,
        ))
        .unwrap();
    let error = loop {
        let frame = next_json(&mut client);
        if frame.get("kind").is_none() {
            break frame;
        }
    };
    assert_eq!(
        error,
        serde_json::json!({
            "id": "put-1",
            "pattern": "readings.put",
            "error": {
                "code": "sensor.too_hot",
                "message": "91.5 °C is too hot",
                "detail": { "max": 85.0, "celsius": 91.5 }
            }
        })
    );

    // SIGTERM: the client is closed with 1001, the shutdown hooks run, exit 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(read_close_code(&mut client), Some(1001));
    client
        .write_all(&frame(true, 8, &1001u16.to_be_bytes()))
        .unwrap();
    drop(client);
    let exit = wait_exit(&mut child, 6);
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "telemetry stopped\n");
}
