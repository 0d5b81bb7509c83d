//! With the `log` feature: connection-level events reach the `log` facade with the
//! connection id (`cargo test --features log --test logging`).
#![cfg(feature = "log")]

mod common;

use std::io::Write;
use std::sync::Mutex;

use common::*;
use nestforge_edge::prelude::*;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "nestforge_edge"
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES
                .lock()
                .unwrap()
                .push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

module! { struct AppModule { providers: [] } }

#[test]
fn connection_events_are_logged_with_the_connection_id() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway(Echo)
        .into_server()
        .unwrap();
    let running = spawn(server);
    assert!(http(running.addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    let mut s = raw_upgrade(running.addr, "/ws");
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap(); // unmasked: 1002
    assert_eq!(read_close_code(&mut s), Some(1002));
    drop(s);
    running.stop();
    let lines = LINES.lock().unwrap().join("\n");
    for expected in [
        "upgrade rejected: 404",
        "conn=1 connected from Some(127.0.0.1:",
        "conn=1 closing with 1002",
        "conn=1 disconnected code=1002",
        "listening on",
        "stopped",
    ] {
        assert!(
            lines.contains(expected),
            "missing {expected:?} in:\n{lines}"
        );
    }
}
