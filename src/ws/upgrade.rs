//! The HTTP/1.1 upgrade, sans I/O: parse a request head from bytes, check it, and write the
//! `101` or the rejection into a buffer. Only the server loop touches sockets.
//!
//! # Examples
//! ```
//! use nestforge_edge::upgrade::{self, Status};
//!
//! let head = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
//! assert!(matches!(upgrade::parse(&head[..20], 32)?, Status::Partial));
//! let Status::Complete(request) = upgrade::parse(head, 32)? else { unreachable!() };
//! assert_eq!(request.path(), "/ws");
//! let key = upgrade::check(&request)?;
//! assert_eq!(upgrade::accept_key(key.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! # Ok::<(), upgrade::Rejection>(())
//! ```

use std::fmt;

/// The result of parsing input that may be incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The whole head was parsed.
    Complete(T),
    /// More bytes are needed.
    Partial,
}

/// Most headers [`parse`] accepts, whatever the configured limit.
pub const MAX_HEADERS: usize = 128;

/// A parsed request head, owning its parts (bounded by the head limits).
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    method: Box<str>,
    path: Box<str>,
    query: Option<Box<str>>,
    minor_version: u8,
    headers: Headers,
    head_len: usize,
}

impl UpgradeRequest {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }
    /// The path, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The query (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
    /// How many bytes of the input the head used; what follows belongs to the WebSocket.
    pub fn head_len(&self) -> usize {
        self.head_len
    }
    /// The value of query parameter `name` (first occurrence, not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        query_param(self.query()?, name)
    }
    pub(crate) fn into_parts(self) -> (Box<str>, Option<Box<str>>, Headers) {
        (self.path, self.query, self.headers)
    }

    /// The credential a client presented, from the first of: an `Authorization: Bearer`
    /// header (scheme case-insensitive), an `access_token` query parameter, or a
    /// `Sec-WebSocket-Protocol` entry `bearer.<token>` (browsers can set neither headers nor,
    /// comfortably, queries on a WebSocket; they must also offer a real subprotocol for the
    /// server to select).
    pub fn token(&self) -> Option<&str> {
        let h = self.headers();
        if let Some(auth) = h.get("authorization") {
            if let Some((scheme, token)) = auth.trim().split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                    return Some(token.trim());
                }
            }
        }
        if let Some(token) = self.query_param("access_token").filter(|t| !t.is_empty()) {
            return Some(token);
        }
        h.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| p.trim().strip_prefix("bearer.").filter(|t| !t.is_empty()))
    }

    /// The subprotocols the client offered, in its order.
    pub fn offered_protocols(&self) -> impl Iterator<Item = &str> {
        self.headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }
}

/// Why an upgrade request is refused: the HTTP status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The status code (400, 403, 404, 405, 408, 426, 431, 503, ...).
    pub status: u16,
    /// A short reason, sent as the plain-text body.
    pub reason: &'static str,
}

impl Rejection {
    /// A rejection with `status` and a plain-text `reason`.
    pub const fn new(status: u16, reason: &'static str) -> Self {
        Rejection { status, reason }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            status_text(self.status),
            self.reason
        )
    }
}

impl std::error::Error for Rejection {}

/// Parses a request head from `buf`, accepting at most `max_headers` headers
/// (capped at [`MAX_HEADERS`]). The caller bounds the head's size by how much it buffers.
///
/// Errors: malformed head → 400; too many headers → 431.
pub fn parse(buf: &[u8], max_headers: usize) -> Result<Status<UpgradeRequest>, Rejection> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage[..max_headers.min(MAX_HEADERS)]);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Rejection::new(431, "too many headers"))
        }
        Err(_) => return Err(Rejection::new(400, "malformed request head")),
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.into())),
        None => (target, None),
    };
    let headers = Headers::collect(req.headers.iter().map(|h| (h.name, h.value)));
    Ok(Status::Complete(UpgradeRequest {
        method: req.method.unwrap_or("").into(),
        path: path.into(),
        query,
        minor_version: req.version.unwrap_or(0),
        headers,
        head_len,
    }))
}

/// Checks that `request` is a valid WebSocket upgrade (RFC 6455 §4.2.1) and returns its
/// `Sec-WebSocket-Key`. The path is the caller's business (404).
///
/// Errors: not `GET` → 405; not an upgrade, or a version other than 13 → 426;
/// HTTP/1.0, or a missing or malformed key → 400.
pub fn check(request: &UpgradeRequest) -> Result<&str, Rejection> {
    if request.method() != "GET" {
        return Err(Rejection::new(405, "method not allowed: use GET"));
    }
    let h = request.headers();
    let upgrade = has_token(h, "upgrade", "websocket");
    let connection = has_token(h, "connection", "upgrade");
    if !upgrade || !connection {
        return Err(Rejection::new(
            426,
            "this endpoint speaks WebSocket: upgrade required",
        ));
    }
    if request.minor_version < 1 {
        return Err(Rejection::new(400, "HTTP/1.1 or later required"));
    }
    if h.get("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(Rejection::new(
            426,
            "unsupported Sec-WebSocket-Version: use 13",
        ));
    }
    match h.get("sec-websocket-key").map(str::trim) {
        Some(key) if is_valid_key(key) => Ok(key),
        _ => Err(Rejection::new(
            400,
            "missing or malformed Sec-WebSocket-Key",
        )),
    }
}

/// Whether any `name` header lists `token` (comma-separated, case-insensitive).
fn has_token(headers: &Headers, name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .any(|(_, v)| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
}

/// A key is the base64 of 16 bytes: 22 alphabet characters then `==`.
fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// The `Sec-WebSocket-Accept` value for a key: base64(SHA-1(key ++ GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha.digest().bytes())
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The value of `name` in a query string (first occurrence, not percent-decoded).
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if pair == name => Some(""),
            _ => None,
        })
}

/// Writes the `101 Switching Protocols` answer for `key` into `out`, with the selected
/// subprotocol and the agreed extensions (the `Sec-WebSocket-Extensions` value), if any.
pub fn write_switching_protocols(
    out: &mut Vec<u8>,
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    request_id: &str,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    push_header(out, "Sec-WebSocket-Accept", &accept_key(key.as_bytes()));
    if let Some(protocol) = protocol {
        push_header(out, "Sec-WebSocket-Protocol", protocol);
    }
    if let Some(extensions) = extensions {
        push_header(out, "Sec-WebSocket-Extensions", extensions);
    }
    push_header(out, "x-request-id", request_id);
    out.extend_from_slice(b"\r\n");
}

/// Writes a plain-HTTP answer with `Connection: close` into `out`: the rejection's status,
/// the headers RFC 6455 and RFC 9110 ask for (`Allow` on 405, `Sec-WebSocket-Version` on
/// 426, `Retry-After` on 503) and the reason as a text body.
pub fn write_rejection(out: &mut Vec<u8>, rejection: Rejection) {
    write_response(
        out,
        rejection.status,
        "text/plain; charset=utf-8",
        rejection.reason.as_bytes(),
    );
}

/// Writes a complete `Connection: close` HTTP/1.1 response into `out`.
pub fn write_response(out: &mut Vec<u8>, status: u16, content_type: &str, body: &[u8]) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", status_text(status)).as_bytes());
    match status {
        405 => push_header(out, "Allow", "GET"),
        426 => {
            push_header(out, "Upgrade", "websocket");
            push_header(out, "Sec-WebSocket-Version", "13");
        }
        503 => push_header(out, "Retry-After", "1"),
        _ => {}
    }
    push_header(out, "Connection", "close");
    push_header(out, "Content-Type", content_type);
    push_header(out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The upgrade request's headers: read-only, bounded by the configured head limits.
/// Names are matched case-insensitively. Stored in one allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Per header: its name's and its value's lengths (`u32`, little-endian), then the name
    /// and the value.
    data: Box<[u8]>,
    len: u32,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Headers from `(name, value)` pairs, in order (for contexts made in tests:
    /// [`TestingModule::websocket_context_with`](crate::TestingModule::websocket_context_with)).
    ///
    /// # Examples
    /// ```
    /// use nestforge_edge::Headers;
    /// let headers = Headers::from_pairs([("Authorization", "Bearer abc"), ("X-Trace", "7")]);
    /// assert_eq!(headers.get("authorization"), Some("Bearer abc"));
    /// assert_eq!(headers.len(), 2);
    /// ```
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let pairs: Vec<(N, V)> = pairs.into_iter().collect();
        Headers::collect(pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
    }

    /// Copies `(name, value)` pairs (from a parsed head, so bounded by the head size).
    pub(crate) fn collect<'h>(pairs: impl Iterator<Item = (&'h str, &'h [u8])> + Clone) -> Self {
        let total = pairs.clone().map(|(n, v)| 8 + n.len() + v.len()).sum();
        let mut data = Vec::with_capacity(total);
        let mut len = 0;
        for (name, value) in pairs {
            data.extend_from_slice(&(name.len() as u32).to_le_bytes());
            data.extend_from_slice(&(value.len() as u32).to_le_bytes());
            data.extend_from_slice(name.as_bytes());
            data.extend_from_slice(value);
            len += 1;
        }
        Headers {
            data: data.into(),
            len,
        }
    }

    /// The first value of header `name` as text, if present and valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of header `name`, raw.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All headers in request order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut rest = &self.data[..];
        std::iter::from_fn(move || {
            let (lens, tail) = rest.split_first_chunk::<8>()?;
            let name_len = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
            let value_len = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
            let (name, tail) = tail.split_at(name_len);
            let (value, tail) = tail.split_at(value_len);
            rest = tail;
            // Names come from a parsed head: HTTP tokens, which are ASCII.
            Some((std::str::from_utf8(name).unwrap_or(""), value))
        })
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /ws?token=abc&x HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn parsed(head: &str) -> UpgradeRequest {
        match parse(head.as_bytes(), 32).unwrap() {
            Status::Complete(r) => r,
            Status::Partial => panic!("partial"),
        }
    }

    #[test]
    fn rfc6455_accept_vector() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn every_prefix_is_partial() {
        for n in 0..GOOD.len() {
            assert_eq!(
                parse(&GOOD.as_bytes()[..n], 32).map(|s| matches!(s, Status::Partial)),
                Ok(true),
                "{n}"
            );
        }
    }

    #[test]
    fn good_request() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x80]);
        let Status::Complete(r) = parse(&bytes, 32).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.path(), r.query(), r.head_len()),
            ("/ws", Some("token=abc&x"), GOOD.len())
        );
        assert_eq!(r.query_param("token"), Some("abc"));
        assert_eq!(r.query_param("x"), Some(""));
        assert_eq!(r.query_param("y"), None);
        assert_eq!(r.headers().get("HOST"), Some("h"));
        assert_eq!(check(&r), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn rejections() {
        let cases = [
            (GOOD.replace("GET", "POST"), 405),
            (GOOD.replace("Upgrade: WebSocket\r\n", ""), 426),
            (GOOD.replace("keep-alive, Upgrade", "keep-alive"), 426),
            (GOOD.replace("Version: 13", "Version: 8"), 426),
            (GOOD.replace("Sec-WebSocket-Version: 13\r\n", ""), 426),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), 400),
            (
                GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                400,
            ),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), 400),
        ];
        for (head, status) in cases {
            assert_eq!(check(&parsed(&head)).unwrap_err().status, status, "{head}");
        }
        assert_eq!(parse(b"GARBAGE\r\n\r\n", 32).unwrap_err().status, 400);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 32)
                .unwrap_err()
                .status,
            400
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(33));
        assert_eq!(parse(many.as_bytes(), 32).unwrap_err().status, 431);
        assert!(parse(many.as_bytes(), 40).is_ok());
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        write_switching_protocols(
            &mut out,
            "dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat"),
            None,
            "req-1-1",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(!text.contains("Sec-WebSocket-Extensions"));
        assert!(text.ends_with("x-request-id: req-1-1\r\n\r\n"));
        let mut out = Vec::new();
        write_switching_protocols(
            &mut out,
            "dGhlIHNhbXBsZSBub25jZQ==",
            None,
            Some("x; y"),
            "r",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nSec-WebSocket-Extensions: x; y\r\nx-request-id: r\r\n"));

        let mut out = Vec::new();
        write_rejection(&mut out, Rejection::new(426, "upgrade"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("Content-Length: 7\r\n\r\nupgrade"));
    }
}
