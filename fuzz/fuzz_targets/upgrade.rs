//! Fuzzes the sans-IO upgrade: `upgrade::parse` over arbitrary bytes with several header
//! limits, then everything the server does with a complete head (`check`, the guard's
//! `token`, the offered subprotocols, query parameters) and the bytes it writes back
//! (`101` or rejection), which must be well-formed HTTP/1.1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nestforge_edge::upgrade::{self, Rejection, Status, UpgradeRequest};

/// Header limits tried on every input: none, tiny, the default-ish one, the cap and past it.
const LIMITS: [usize; 5] = [0, 1, 8, 32, 200];

fuzz_target!(|data: &[u8]| {
    // The previous complete parse, to check a larger limit never changes the outcome.
    let mut previous: Option<UpgradeRequest> = None;
    for max_headers in LIMITS {
        match upgrade::parse(data, max_headers) {
            Ok(Status::Complete(request)) => {
                exercise(data, max_headers, &request);
                if let Some(prev) = &previous {
                    assert_same(prev, &request);
                }
                previous = Some(request);
            }
            Ok(Status::Partial) => {
                // A smaller limit that completed must not become partial with more room.
                assert!(
                    previous.is_none(),
                    "complete with fewer headers, partial with more"
                );
            }
            Err(rejection) => {
                assert!(
                    matches!(rejection.status, 400 | 431),
                    "parse rejected with {rejection:?}"
                );
                // More room never turns a complete head into an error.
                assert!(
                    previous.is_none(),
                    "complete, then {rejection:?} with more room"
                );
                check_rejection(rejection);
            }
        }
    }
});

/// Runs everything the server does with a complete head.
fn exercise(data: &[u8], max_headers: usize, request: &UpgradeRequest) {
    let head_len = request.head_len();
    assert!(head_len > 0 && head_len <= data.len());
    assert!(
        data[..head_len].ends_with(b"\n"),
        "head must end with a blank line"
    );
    assert!(request.headers().len() <= max_headers.min(upgrade::MAX_HEADERS));
    assert!(!request.path().contains('?'), "query must be split off");
    // The head alone parses to the same request: what follows belongs to the WebSocket.
    match upgrade::parse(&data[..head_len], max_headers) {
        Ok(Status::Complete(again)) => assert_same(request, &again),
        other => panic!("head alone parsed as {other:?}"),
    }

    for name in ["token", "access_token", "", "x", "a=b"] {
        if let Some(value) = request.query_param(name) {
            assert!(!value.contains('&'));
        }
    }
    if let Some(token) = request.token() {
        assert!(!token.is_empty());
    }
    let protocols: Vec<&str> = request.offered_protocols().collect();
    for p in &protocols {
        assert!(!p.is_empty() && p.trim() == *p && !p.contains(','));
    }

    match upgrade::check(request) {
        Ok(key) => {
            assert_eq!(key.len(), 24);
            let accept = upgrade::accept_key(key.as_bytes());
            assert_eq!(accept.len(), 28);
            // The server echoes the first offered subprotocol when it selects one.
            let mut out = Vec::new();
            upgrade::write_switching_protocols(
                &mut out,
                key,
                protocols.first().copied(),
                None,
                "req-1-1",
            );
            let (status, headers_end, _) = parse_response(&out);
            assert_eq!(status, 101);
            assert_eq!(headers_end, out.len(), "a 101 has no body");
            assert!(out.starts_with(b"HTTP/1.1 101 "));
            assert!(out.ends_with(b"x-request-id: req-1-1\r\n\r\n"));
        }
        Err(rejection) => {
            assert!(matches!(rejection.status, 400 | 405 | 426), "{rejection:?}");
            check_rejection(rejection);
        }
    }
}

/// Writes `rejection` and checks the bytes: status line, headers, `Content-Length`, body.
fn check_rejection(rejection: Rejection) {
    let mut out = Vec::new();
    upgrade::write_rejection(&mut out, rejection);
    assert!(out.starts_with(format!("HTTP/1.1 {} ", rejection.status).as_bytes()));
    assert!(out.ends_with(rejection.reason.as_bytes()));
    let (status, body_start, content_length) = parse_response(&out);
    assert_eq!(status, rejection.status);
    assert_eq!(&out[body_start..], rejection.reason.as_bytes());
    assert_eq!(content_length, Some(rejection.reason.len()));
    // Display never panics and names the status.
    assert!(rejection
        .to_string()
        .starts_with(&rejection.status.to_string()));
}

/// Parses a written response head strictly: returns (status, head length, Content-Length).
fn parse_response(out: &[u8]) -> (u16, usize, Option<usize>) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(out) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("bad response {other:?}: {:?}", String::from_utf8_lossy(out)),
    };
    assert_eq!(response.version, Some(1));
    // Every header line is CRLF-terminated with no stray CR or LF inside (no injection).
    for line in out[..len - 2].split(|&b| b == b'\n') {
        if !line.is_empty() {
            assert!(line.ends_with(b"\r") && !line[..line.len() - 1].contains(&b'\r'));
        }
    }
    let content_length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap());
    (response.code.unwrap(), len, content_length)
}

/// Two parses of the same head agree on everything observable.
fn assert_same(a: &UpgradeRequest, b: &UpgradeRequest) {
    assert_eq!(
        (a.method(), a.path(), a.query(), a.head_len()),
        (b.method(), b.path(), b.query(), b.head_len())
    );
    assert!(a.headers().iter().eq(b.headers().iter()));
}
