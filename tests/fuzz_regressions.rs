//! Inputs found by (or interesting during) the cargo-fuzz targets in `fuzz/`, replayed
//! through the same code paths with their exact expected outcomes: the sans-IO upgrade
//! (`fuzz/fuzz_targets/upgrade.rs`), the wire format and dispatch (`wire.rs`) and the
//! frame decoder driven with the edge limits (`frames.rs`).

mod common;

use std::io::{self, Read, Write};

use futures_lite::future::block_on;
use nestforge_edge::upgrade::{self, Rejection, Status, UpgradeRequest};
use nestforge_edge::{
    handle_websocket_microservice_message, ErrorCode, Message, MicroserviceContext,
    MicroserviceRegistry, Providers, RequestFrame, WebSocketConfig, WebSocketContext,
};
use serde::Deserialize;
use serde_json::Value;

// ---- upgrade --------------------------------------------------------------------------------

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn head(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn complete(bytes: &[u8], max_headers: usize) -> UpgradeRequest {
    match upgrade::parse(bytes, max_headers) {
        Ok(Status::Complete(request)) => request,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn status(bytes: &[u8], max_headers: usize) -> Result<&'static str, u16> {
    match upgrade::parse(bytes, max_headers) {
        Ok(Status::Complete(_)) => Ok("complete"),
        Ok(Status::Partial) => Ok("partial"),
        Err(rejection) => Err(rejection.status),
    }
}

#[test]
fn upgrade_partial_heads() {
    let good = head("");
    // Every proper prefix is partial, including one ending in a lone CR or `\r\n\r`.
    for cut in [0, 1, 3, good.len() - 3, good.len() - 1] {
        assert_eq!(status(&good.as_bytes()[..cut], 32), Ok("partial"), "{cut}");
    }
    // Request line only, not yet terminated by the empty line.
    assert_eq!(status(b"GET / HTTP/1.1\r\n", 32), Ok("partial"));
    // Partial with more headers than the limit so far: the limit wins.
    assert_eq!(status(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n", 1), Err(431));
}

#[test]
fn upgrade_header_counts() {
    let many = |n: usize| format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(n));
    // No room at all: a head without headers still completes, one header is too many.
    assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n", 0), Ok("complete"));
    assert_eq!(status(many(1).as_bytes(), 0), Err(431));
    // Exactly the limit is fine, one more is 431.
    assert_eq!(complete(many(32).as_bytes(), 32).headers().len(), 32);
    assert_eq!(status(many(33).as_bytes(), 32), Err(431));
    // The limit is capped at MAX_HEADERS whatever the caller asks.
    let cap = upgrade::MAX_HEADERS;
    assert_eq!(complete(many(cap).as_bytes(), 10_000).headers().len(), cap);
    assert_eq!(status(many(cap + 1).as_bytes(), 10_000), Err(431));
}

#[test]
fn upgrade_bare_lf_and_trailing_bytes() {
    // Bare LF line endings are accepted (httparse is lenient) and the upgrade is valid.
    let lf = head("").replace("\r\n", "\n");
    let request = complete(lf.as_bytes(), 32);
    assert_eq!(request.head_len(), lf.len());
    assert_eq!(upgrade::check(&request), Ok(KEY));
    // Bytes after the head (a first frame) are not part of it.
    let mut bytes = head("").into_bytes();
    let len = bytes.len();
    bytes.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
    assert_eq!(complete(&bytes, 32).head_len(), len);
    // A lone CR as a line ending is malformed.
    assert_eq!(status(b"GET / HTTP/1.1\rHost: h\r\n\r\n", 32), Err(400));
}

#[test]
fn upgrade_non_utf8_header_values() {
    let mut bytes = head("").into_bytes();
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(
        b"Sec-WebSocket-Protocol: \xff\xfe, bearer.hidden\r\n\
          Sec-WebSocket-Protocol: chat, , bearer.t0k\r\n\
          Authorization: Bearer \xe9t\xe9\r\n\r\n",
    );
    let request = complete(&bytes, 32);
    // The upgrade itself only needs ASCII headers.
    assert_eq!(upgrade::check(&request), Ok(KEY));
    // A non-UTF-8 value is skipped whole, never lossily decoded.
    assert_eq!(request.headers().get("authorization"), None);
    assert_eq!(
        request.headers().get_bytes("authorization"),
        Some(&b"Bearer \xe9t\xe9"[..])
    );
    assert_eq!(
        request.offered_protocols().collect::<Vec<_>>(),
        ["chat", "bearer.t0k"]
    );
    assert_eq!(request.token(), Some("t0k"));
}

#[test]
fn upgrade_non_utf8_key_and_version() {
    let bytes = head("")
        .replace(KEY, "dGhlIHNhbXBsZSBub25jZQ=\u{e9}")
        .into_bytes();
    assert_eq!(
        upgrade::check(&complete(&bytes, 32)).unwrap_err().status,
        400
    );
    // Tabs and spaces around values are trimmed; a padded version still matches.
    let padded = head("").replace("Version: 13", "Version: \t13 \t");
    assert_eq!(upgrade::check(&complete(padded.as_bytes(), 32)), Ok(KEY));
}

#[test]
fn upgrade_tokens_and_queries() {
    let with = |target: &str, extra: &str| head(extra).replacen("/ws", target, 1);
    // An empty bearer falls through to the query, then to the subprotocol.
    let r = complete(
        with(
            "/ws?access_token=&access_token=q",
            "Authorization: Bearer   \r\n",
        )
        .as_bytes(),
        32,
    );
    assert_eq!(r.query_param("access_token"), Some(""));
    assert_eq!(r.token(), None);
    let r = complete(
        with(
            "/ws?a&access_token=q1",
            "Authorization: Basic x\r\nSec-WebSocket-Protocol: bearer.p\r\n",
        )
        .as_bytes(),
        32,
    );
    assert_eq!((r.query_param("a"), r.token()), (Some(""), Some("q1")));
    // Only the first `?` splits the target; the rest belongs to the query.
    let r = complete(with("/ws??x=1?", "").as_bytes(), 32);
    assert_eq!((r.path(), r.query()), ("/ws", Some("?x=1?")));
    assert_eq!(r.query_param("?x"), Some("1?"));
    // `Bearer` in another case, token surrounded by blanks.
    let r = complete(
        with("/ws", "Authorization:  bEaReR   abc \r\n").as_bytes(),
        32,
    );
    assert_eq!(r.token(), Some("abc"));
}

#[test]
fn upgrade_responses_are_well_formed() {
    for rejection in [
        Rejection::new(400, "malformed request head"),
        Rejection::new(405, "method not allowed: use GET"),
        Rejection::new(426, "upgrade required"),
        Rejection::new(431, "too many headers"),
        Rejection::new(503, "busy"),
        Rejection::new(999, ""),
    ] {
        let mut out = Vec::new();
        upgrade::write_rejection(&mut out, rejection);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!("HTTP/1.1 {} ", rejection.status)));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, rejection.reason);
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert!(head.split("\r\n").all(|line| !line.contains(['\r', '\n'])));
    }
    let mut out = Vec::new();
    upgrade::write_switching_protocols(&mut out, KEY, Some("chat"), None, "req-1-1");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: chat\r\nx-request-id: req-1-1\r\n\r\n"
    );
}

// ---- wire -----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

fn registry() -> MicroserviceRegistry {
    MicroserviceRegistry::builder()
        .message("math.add", |p: Add, _ctx: MicroserviceContext| async move {
            p.a.checked_add(p.b).ok_or_else(|| "overflow".into())
        })
        .message("echo", |p: Value, _| async move { Ok(p) })
        .event("app.ping", |_: Value, _| async move { Ok(()) })
        .build()
}

/// Dispatches `frame` as a Binary message; the reply text, or the error frame (returned,
/// or answered when the request had an id) and its code.
fn dispatch(frame: &str) -> Result<Option<String>, (ErrorCode, String)> {
    let ctx = WebSocketContext::detached(Providers::default());
    let reply = block_on(handle_websocket_microservice_message(
        &ctx,
        &registry(),
        Message::Binary(frame.as_bytes().to_vec().into()),
    ))
    .map_err(|err| (err.code(), err.to_json()))?;
    let Some(text) = reply.map(|m| m.into_text().unwrap().to_string()) else {
        return Ok(None);
    };
    let code = json(&text)["error"]["code"].as_str().map(|code| {
        [
            ErrorCode::BadFrame,
            ErrorCode::UnknownPattern,
            ErrorCode::BadPayload,
            ErrorCode::HandlerError,
            ErrorCode::ProviderMissing,
            ErrorCode::Forbidden,
            ErrorCode::Internal,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
        .expect("a known error code")
    });
    match code {
        Some(code) => Err((code, text)),
        None => Ok(Some(text)),
    }
}

/// The text, checked to be JSON that serde_json reads back.
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn wire_odd_ids_are_echoed_verbatim() {
    for (id, echoed) in [
        ("-0", "-0"),
        ("0.5e-3", "0.5e-3"),
        ("18446744073709551616", "18446744073709551616"),
        ("1e308", "1e308"),
        ("1e-400", "1e-400"),
        (r#""\u0000\ud83d\ude00""#, r#""\u0000\ud83d\ude00""#),
        // Whitespace around the value is not part of it.
        (" \n\t7 ", "7"),
    ] {
        let reply = dispatch(&format!(
            r#"{{"kind":"message","pattern":"echo","payload":1,"id":{id}}}"#
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            reply,
            format!(
                r#"{{"id":{echoed},"pattern":"echo","payload":1,"metadata":{{"values":{{}}}}}}"#
            )
        );
        json(&reply);
    }
}

#[test]
fn wire_ids_out_of_f64_range() {
    // Echoed verbatim, these ids made replies and error frames that serde_json refuses
    // ("number out of range"): they are bad frames now, whose error frame has no id.
    let huge = format!("1{}", "0".repeat(400));
    for id in ["1e400", "-1e400", "1.8e308", &huge] {
        let frame = format!(r#"{{"kind":"message","pattern":"echo","payload":1,"id":{id}}}"#);
        let err = RequestFrame::decode(frame.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "`id` is a number out of range", "{id}");
        let (code, text) = dispatch(&frame).unwrap_err();
        assert_eq!(code, ErrorCode::BadFrame);
        assert_eq!(
            json(&text),
            serde_json::json!({"error":{"code":"bad_frame","message":"`id` is a number out of range"}})
        );
    }
    // The input the `wire` target found: an unknown field instead of `payload` (so a
    // `bad_payload` error frame), with a 387-digit id that frame echoed.
    let found = format!(
        r#"{{"kind":"message","pattern":"reading","payl&ad":{{"se/\/\\\bp":"C"}},"id":{}}}"#,
        "2".repeat(387)
    );
    let (code, text) = dispatch(&found).unwrap_err();
    assert_eq!(code, ErrorCode::BadFrame);
    assert_eq!(
        json(&text)["error"]["message"],
        "`id` is a number out of range"
    );
    // The largest finite double still goes through.
    let reply = dispatch(r#"{"kind":"message","pattern":"echo","id":1.7976931348623157e308}"#)
        .unwrap()
        .unwrap();
    assert_eq!(json(&reply)["id"], f64::MAX);
}

#[test]
fn wire_ids_that_are_not_numbers_or_strings() {
    for id in ["true", "{}", "[]", r#"{"a":1}"#] {
        let frame = format!(r#"{{"kind":"message","pattern":"echo","id":{id}}}"#);
        let err = RequestFrame::decode(frame.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "`id` must be a number or a string", "{id}");
        let (code, text) = dispatch(&frame).unwrap_err();
        assert_eq!(code, ErrorCode::BadFrame);
        assert_eq!(
            json(&text),
            serde_json::json!({"error":{"code":"bad_frame","message":"`id` must be a number or a string"}})
        );
    }
    // `null` is no id at all.
    let reply = dispatch(r#"{"kind":"message","pattern":"echo","id":null}"#).unwrap();
    assert_eq!(
        reply.as_deref(),
        Some(r#"{"pattern":"echo","payload":null,"metadata":{"values":{}}}"#)
    );
}

#[test]
fn wire_error_frames_for_odd_patterns() {
    // Control characters and quotes in an unknown pattern are escaped in the error frame.
    let (code, text) =
        dispatch(r#"{"kind":"event","pattern":"a\"b\u0001\n","id":"x"}"#).unwrap_err();
    assert_eq!(code, ErrorCode::UnknownPattern);
    assert_eq!(
        json(&text),
        serde_json::json!({"id":"x","pattern":"a\"b\u{1}\n","error":{
            "code":"unknown_pattern","message":"No event handler registered for `a\"b\u{1}\n`"}})
    );
    // A pattern registered as a message is unknown as an event.
    let (code, _) = dispatch(r#"{"kind":"event","pattern":"math.add"}"#).unwrap_err();
    assert_eq!(code, ErrorCode::UnknownPattern);
    // Payload type errors keep the id and carry serde's reason as `detail`.
    let (code, text) =
        dispatch(r#"{"kind":"message","pattern":"math.add","payload":{"a":1},"id":3}"#)
            .unwrap_err();
    assert_eq!(code, ErrorCode::BadPayload);
    assert_eq!(
        json(&text),
        serde_json::json!({"id":3,"pattern":"math.add","error":{
            "code":"bad_payload","message":"Failed to deserialize message payload",
            "detail":"missing field `b` at line 1 column 7"}})
    );
    // A handler error.
    let (code, text) = dispatch(&format!(
        r#"{{"kind":"message","pattern":"math.add","payload":{{"a":{},"b":1}}}}"#,
        i64::MAX
    ))
    .unwrap_err();
    assert_eq!(code, ErrorCode::HandlerError);
    assert_eq!(json(&text)["error"]["message"], "overflow");
}

#[test]
fn wire_bad_frames() {
    for (frame, message) in [
        // Not UTF-8 (only Binary frames can carry it).
        (
            &b"{\"kind\":\"event\",\"pattern\":\"\xff\"}"[..],
            "invalid unicode code point at line 1 column 28",
        ),
        // A lone surrogate in an escape.
        (
            br#"{"kind":"event","pattern":"\ud800"}"#,
            "unexpected end of hex escape at line 1 column 34",
        ),
        // The positional form with too few or too many elements.
        (
            br#"["event"]"#,
            "invalid length 1, expected struct RequestFrame with 5 elements at line 1 column 9",
        ),
        (
            br#"["event","app.ping",null,null,null,1]"#,
            "trailing characters at line 1 column 36",
        ),
        // An id that is not valid JSON.
        (
            br#"{"kind":"event","pattern":"p","id":-}"#,
            "invalid number at line 1 column 37",
        ),
    ] {
        let err = RequestFrame::decode(frame).unwrap_err();
        assert_eq!(
            err.to_string(),
            message,
            "{}",
            String::from_utf8_lossy(frame)
        );
        assert_eq!(err.code(), ErrorCode::BadFrame);
        json(&err.to_json());
    }
    // Nesting past serde_json's recursion limit: the raw payload is only scanned (no limit),
    // so the frame decodes, and the typed decode of the payload fails with a bad payload.
    let nested = |depth: usize| {
        format!(
            r#"{{"kind":"event","pattern":"app.ping","payload":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    let deep = nested(200);
    let frame = RequestFrame::decode(deep.as_bytes()).unwrap();
    assert_eq!(frame.payload_json().len(), 400);
    let (code, text) = dispatch(&deep).unwrap_err();
    assert_eq!(code, ErrorCode::BadPayload);
    assert_eq!(
        json(&text)["error"]["detail"],
        "recursion limit exceeded at line 1 column 128"
    );
    // 127 levels of nesting are fine.
    assert_eq!(dispatch(&nested(127)), Ok(None));
}

#[test]
fn wire_positional_and_metadata_forms() {
    let reply = dispatch(r#"["message","math.add",{"a":2,"b":3},{"values":{"k":"\u00e9"}},"i"]"#)
        .unwrap()
        .unwrap();
    assert_eq!(
        reply,
        r#"{"id":"i","pattern":"math.add","payload":5,"metadata":{"values":{"k":"é"}}}"#
    );
    // Unknown fields are ignored, and so are unknown metadata keys.
    let reply = dispatch(
        r#"{"x":[{}],"kind":"message","pattern":"echo","metadata":{"other":1,"values":{}}}"#,
    )
    .unwrap();
    assert_eq!(
        reply.as_deref(),
        Some(r#"{"pattern":"echo","payload":null,"metadata":{"values":{}}}"#)
    );
}

// ---- frames ---------------------------------------------------------------------------------

/// Client bytes served up to `chunk` at a time, then `WouldBlock`; writes are collected.
struct Stream {
    input: Vec<u8>,
    chunk: usize,
    output: Vec<u8>,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.chunk.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        Ok(n)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads messages until an error or `WouldBlock`: the messages and the final error.
fn read_all(read_ahead: &[u8], input: &[u8], chunk: usize) -> (Vec<Message>, tungstenite::Error) {
    let mut ws = nestforge_edge::Framing::new(read_ahead, &WebSocketConfig::default());
    let mut stream = Stream {
        input: input.to_vec(),
        chunk,
        output: Vec::new(),
    };
    let mut messages = Vec::new();
    loop {
        match ws.read(&mut stream) {
            Ok(message) => messages.push(message),
            Err(e) => return (messages, e),
        }
    }
}

#[test]
fn frames_oversized_frame_after_a_full_read_buffer() {
    // Found by the `frames` target: a 4-byte header announcing a 17,000-byte frame (over the
    // 16 KiB limit) at the start of a read that fills the 4 KiB buffer: the first read fails
    // with `MessageTooLong`, before any of the payload is buffered. (The connection never
    // reads again after a failure.)
    let mut input = common::frame(true, 2, &[0x5a; 17_000]);
    assert_eq!(&input[..4], [0x82, 0xfe, 0x42, 0x68]);
    input.truncate(4096 + 8);
    for (read_ahead, rest) in [(&input[..0], &input[..]), (&input[..], &input[..0])] {
        let (messages, err) = read_all(read_ahead, rest, usize::MAX);
        assert!(messages.is_empty());
        assert!(
            matches!(
                err,
                tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                    size: 17_000,
                    max_size: 16_384
                })
            ),
            "{err:?}"
        );
    }
}

#[test]
fn frames_limits_and_fragments() {
    let f = common::frame;
    // A frame of exactly 16 KiB passes; fragments add up to a 64 KiB message at most.
    let mut input = f(true, 2, &[1; 16 * 1024]);
    for i in 0..4 {
        input.extend(f(i == 3, if i == 0 { 1 } else { 0 }, &[b'a'; 16 * 1024]));
    }
    let (messages, err) = read_all(&[], &input, 1000);
    assert_eq!(
        messages.iter().map(Message::len).collect::<Vec<_>>(),
        [16 * 1024, 64 * 1024]
    );
    assert!(matches!(err, tungstenite::Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock));
    // One more fragment byte is over the message limit.
    let mut input = f(false, 1, &[b'a'; 16 * 1024]);
    for _ in 0..3 {
        input.extend(f(false, 0, &[b'a'; 16 * 1024]));
    }
    input.extend(f(true, 0, b"a"));
    let (messages, err) = read_all(&input[..100], &input[100..], 7);
    assert!(messages.is_empty());
    assert!(matches!(
        err,
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { .. })
    ));
    // Control frames interleave with fragments; a 126-byte ping is a protocol error.
    let mut input = f(false, 1, b"he");
    input.extend(f(true, 9, b"p"));
    input.extend(f(true, 0, b"llo"));
    input.extend(f(true, 9, &[0; 126]));
    let (messages, err) = read_all(&[], &input, 1);
    assert_eq!(
        messages,
        [
            Message::Ping(b"p".to_vec().into()),
            Message::Text("hello".into())
        ]
    );
    assert!(matches!(err, tungstenite::Error::Protocol(_)), "{err:?}");
    // An unmasked client frame is refused.
    let (messages, err) = read_all(b"\x81\x02hi", &[], 1);
    assert!(messages.is_empty());
    assert!(matches!(
        err,
        tungstenite::Error::Protocol(tungstenite::error::ProtocolError::UnmaskedFrameFromClient)
    ));
}

nestforge_edge::module! { struct EchoModule { providers: [] } }

// The same input through the server: an empty Text frame then the oversized frame's start,
// arriving in one read that fills the 4 KiB buffer. The connection reads the first message,
// looks ahead and gets `MessageTooLong`. `poll_recv` used to look ahead again when handing
// that error over, reading the failed tungstenite context: in a debug build that panicked
// in tungstenite (caught per connection, so the client got 1011 instead of 1009).
#[test]
fn frames_oversized_frame_after_a_message_closes_with_1009() {
    let server = nestforge_edge::NestForgeFactory::<EchoModule>::create()
        .unwrap()
        .with_websocket_gateway(common::Echo)
        .into_server()
        .unwrap();
    let running = common::spawn(server);
    let mut s = common::raw_upgrade(running.addr, "/ws");
    let mut bytes = common::frame(true, 1, b"");
    bytes.extend(common::frame(true, 2, &[0x5a; 17_000]));
    bytes.truncate(4096 + 100);
    s.write_all(&bytes).unwrap();
    assert_eq!(common::read_frame(&mut s).unwrap(), (1, Vec::new()));
    assert_eq!(common::read_close_code(&mut s), Some(1009));
    running.stop();
}
