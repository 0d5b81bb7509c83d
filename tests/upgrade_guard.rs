//! The upgrade guard and the Origin allow-list, over loopback.

mod common;

use std::io::Write;

use common::*;
use nestforge_edge::prelude::*;
use nestforge_edge::upgrade::UpgradeRequest;
use nestforge_edge::{Rejection, Server};

/// Sends who the guard said the peer is, and the connection's request details.
struct WhoAmI;

impl WebSocketGateway for WhoAmI {
    fn on_connect(&self, ctx: WebSocketContext, mut socket: WebSocket) -> WebSocketFuture {
        Box::pin(async move {
            let who = ctx
                .auth_identity()
                .map_or("anonymous".to_string(), |i| i.subject.clone());
            let text = format!(
                "{who} admin={} path={} query={:?} protocol={:?} ua={:?} peer={}",
                ctx.has_role("admin"),
                ctx.path(),
                ctx.query(),
                ctx.protocol(),
                ctx.headers().get("user-agent"),
                ctx.peer_addr().is_some_and(|a| a.ip().is_loopback()),
            );
            let _ = socket.send(Message::Text(text.into())).await;
        })
    }
}

module! { struct AppModule { providers: [] } }

fn server(config: WebSocketConfig) -> Server {
    NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway_config(WhoAmI, config)
        .into_server()
        .unwrap()
}

fn head_with(path: &str, extra: &str) -> String {
    upgrade_head(path).replace("\r\n\r\n", &format!("\r\n{extra}\r\n\r\n"))
}

/// Upgrades with `head` and returns the 101 head plus the first text frame.
fn upgrade_and_read(addr: std::net::SocketAddr, head: &str) -> (String, String) {
    let mut s = raw(addr);
    s.write_all(head.as_bytes()).unwrap();
    let answer = read_head(&mut s);
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let (_, text) = read_frame(&mut s).unwrap();
    (answer, String::from_utf8(text).unwrap())
}

#[test]
fn origin_allow_list() {
    let running = spawn(server(
        WebSocketConfig::default().allowed_origins(["https://device.local"]),
    ));
    let ok = head_with("/ws", "Origin: https://device.local");
    assert!(upgrade_and_read(running.addr, &ok)
        .1
        .starts_with("anonymous"));
    for bad in [
        head_with("/ws", "Origin: https://evil.example"),
        upgrade_head("/ws"),
    ] {
        let answer = http(running.addr, &bad);
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    }
    assert_eq!(running.server.stats().rejected_upgrades, 2);
}

fn guarded() -> WebSocketConfig {
    WebSocketConfig::default()
        .protocols(["chat"])
        .guard(|req: &UpgradeRequest| {
            let token = req.token().map(str::to_owned);
            async move {
                match token.as_deref() {
                    Some("admin-token") => {
                        Ok(Some(AuthIdentity::new("root").with_roles(["admin"])))
                    }
                    Some("device-token") => Ok(Some(AuthIdentity::new("device-7"))),
                    Some("anonymous") => Ok(None),
                    Some(_) => Err(Rejection::new(403, "bad token")),
                    None => Err(Rejection::new(401, "token required")),
                }
            }
        })
}

#[test]
fn guard_accepts_with_an_identity_from_header_query_or_subprotocol() {
    let running = spawn(server(guarded()));
    let a = running.addr;
    let (_, text) = upgrade_and_read(
        a,
        &head_with(
            "/ws",
            "Authorization: Bearer admin-token\r\nUser-Agent: t/1",
        ),
    );
    assert_eq!(
        text,
        r#"root admin=true path=/ws query=None protocol=None ua=Some("t/1") peer=true"#
    );
    let (_, text) = upgrade_and_read(a, &head_with("/ws?access_token=device-token&x=1", ""));
    assert!(
        text.starts_with(
            r#"device-7 admin=false path=/ws query=Some("access_token=device-token&x=1")"#
        ),
        "{text}"
    );
    // Browsers: the token rides in Sec-WebSocket-Protocol next to a real subprotocol,
    // which the server selects.
    let (head, text) = upgrade_and_read(
        a,
        &head_with("/ws", "Sec-WebSocket-Protocol: bearer.device-token, chat"),
    );
    assert!(head.contains("Sec-WebSocket-Protocol: chat\r\n"), "{head}");
    assert!(
        text.starts_with("device-7") && text.contains(r#"protocol=Some("chat")"#),
        "{text}"
    );
    let (_, text) = upgrade_and_read(a, &head_with("/ws", "Authorization: bearer anonymous"));
    assert!(text.starts_with("anonymous"), "{text}");
}

#[test]
fn guard_rejects_with_its_status() {
    let running = spawn(server(guarded()));
    let answer = http(running.addr, &upgrade_head("/ws"));
    assert!(
        answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("token required"), "{answer}");
    let answer = http(
        running.addr,
        &head_with("/ws", "Authorization: Bearer wrong"),
    );
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    // The guard runs after the upgrade checks: a plain GET still gets 426.
    assert!(http(running.addr, "GET /ws HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 426"));
}
