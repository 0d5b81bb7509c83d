//! The JSON wire format, NestForge 1.9 compatible: request decoding (borrowed), reply and
//! error-frame encoding. Pure functions over bytes.
//!
//! | frame | shape |
//! |---|---|
//! | request | `{"kind":"message"\|"event","pattern":"app.info","payload":<any>,"metadata":{"values":{"k":"v"}},"id":7}` |
//! | reply   | `{"id":7,"pattern":"app.info","payload":<result>,"metadata":{"values":{...}}}` |
//! | error   | `{"id":7,"pattern":"app.info","error":{"code":"unknown_pattern","message":"..."}}` |
//!
//! `payload` may be absent (same as `null`); `metadata` may be absent, `null`, `{}` or
//! `{"values":{..}}`; `id` is optional and echoed verbatim. The positional form
//! `["message","app.info",null]` that NestForge accepts is accepted too.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;

/// The two pattern namespaces: `message` (has a reply) and `event` (fire and forget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `"message"`: the handler's result is sent back.
    Message,
    /// `"event"`: no reply.
    Event,
}

impl Kind {
    /// `"message"` or `"event"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Event => "event",
        }
    }
}

/// String metadata travelling with a request, echoed in its reply. NestForge's
/// `TransportMetadata`; on the wire `{"values":{"k":"v"}}`.
///
/// An empty value does not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TransportMetadata {
    /// The key/value pairs, sorted by key.
    pub values: BTreeMap<String, String>,
}

impl TransportMetadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair (builder style).
    pub fn insert(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for TransportMetadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Repr {
            #[serde(default)]
            values: BTreeMap<String, String>,
        }
        Ok(Option::<Repr>::deserialize(d)?
            .map(|r| TransportMetadata { values: r.values })
            .unwrap_or_default())
    }
}

/// A decoded request frame, borrowing from the frame's bytes.
///
/// # Examples
/// ```
/// use nestforge_edge::{Kind, RequestFrame};
/// let f = RequestFrame::decode(br#"{"kind":"message","pattern":"app.info","payload":null,"id":7}"#)?;
/// assert_eq!(f.kind, Kind::Message);
/// assert_eq!(f.pattern, "app.info");
/// assert_eq!(f.id.unwrap().get(), "7");
/// # Ok::<(), nestforge_edge::Error>(())
/// ```
#[derive(Debug, Deserialize)]
#[non_exhaustive]
pub struct RequestFrame<'a> {
    /// Message or event.
    pub kind: Kind,
    /// The pattern (borrowed unless it contains escapes).
    #[serde(borrow)]
    pub pattern: Cow<'a, str>,
    /// The payload, undecoded; `None` when absent or `null`.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// The metadata (empty when absent, `null` or `{}`).
    #[serde(default)]
    pub metadata: TransportMetadata,
    /// The correlation id (a JSON number or string), echoed in the reply.
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
}

const NULL: &str = "null";

impl<'a> RequestFrame<'a> {
    /// Decodes a request from UTF-8 JSON bytes, without building a JSON tree.
    ///
    /// Errors are [`Error::BadFrame`] with serde_json's message (NestForge's texts).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        // Checked as UTF-8 first, then read as text: one serde_json reader for text and
        // binary frames alike, not two copies of every decoder (BENCHMARKS.md#binary-size).
        Self::decode_str(utf8(bytes)?)
    }

    /// [`decode`](Self::decode) for a text frame's payload: already UTF-8, its strings are
    /// not validated again.
    pub fn decode_str(text: &'a str) -> Result<Self, Error> {
        Self::checked(serde_json::from_str(text))
    }

    fn checked(decoded: serde_json::Result<RequestFrame<'a>>) -> Result<Self, Error> {
        let frame = decoded.map_err(|source| Error::BadFrame { source })?;
        if let Some(id) = frame.id {
            if let Some(message) = check_id(id) {
                return Err(Error::BadFrame {
                    source: serde::de::Error::custom(message),
                });
            }
        }
        Ok(frame)
    }

    /// The payload JSON text, `null` when absent.
    pub fn payload_json(&self) -> &str {
        self.payload.map_or(NULL, RawValue::get)
    }
}

/// The `id` of a request frame that failed to decode, when the frame is a JSON object whose
/// `id` is valid (a string, or a number in range): its error can still be matched.
#[cold]
#[inline(never)]
pub(crate) fn id_of_bad_frame(bytes: &[u8]) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    let probe: Probe<'_> = serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()?;
    let id = probe.id?;
    check_id(id).is_none().then(|| id.to_owned())
}

/// `bytes` as text; not UTF-8 is the [`Error::BadFrame`] serde_json gives for such bytes.
fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| not_utf8(bytes, e.valid_up_to()))
}

/// serde_json's error for `bytes`, whose first invalid UTF-8 is at `at`, found with the text
/// reader: the valid part followed by `####` (`#`, like a byte of invalid UTF-8, is no JSON
/// outside a string and no hex digit; four of them fill a `\uXXXX` escape) fails where and
/// as `bytes` would; inside a string (the text then ends there) it is serde_json's `invalid
/// unicode code point`.
#[cold]
fn not_utf8(bytes: &[u8], at: usize) -> Error {
    let mut text = String::from(std::str::from_utf8(&bytes[..at]).unwrap_or_default());
    text.push_str("####");
    let source = match serde_json::from_str::<RequestFrame<'_>>(&text) {
        Err(e) if !e.is_eof() => e,
        _ => {
            let before = &bytes[..at];
            let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
            let start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            serde::de::Error::custom(format_args!(
                "invalid unicode code point at line {line} column {}",
                at - start + 1
            ))
        }
    };
    Error::BadFrame { source }
}

/// Why `id` cannot be echoed, if it cannot.
fn check_id(id: &RawValue) -> Option<&'static str> {
    match id.get().as_bytes().first() {
        Some(b'"') => None,
        // Echoed verbatim: a number outside f64's range (`1e400`) would make the reply and
        // error frames unreadable for serde_json ("number out of range"). An integer of up
        // to 300 digits is inside it (the usual id: no parse).
        Some(b'-' | b'0'..=b'9') => {
            let text = id.get().as_bytes();
            let digits = text.strip_prefix(b"-").unwrap_or(text);
            let integer = digits.len() <= 300 && digits.iter().all(u8::is_ascii_digit);
            (!integer && serde_json::from_str::<f64>(id.get()).is_err())
                .then_some("`id` is a number out of range")
        }
        _ => Some("`id` must be a number or a string"),
    }
}

/// A push: the event frame `{"kind":"event","pattern":..,"payload":..}` that a server sends
/// to its clients unasked (a request's reply has no `kind`). What
/// [`Connections::emit`](crate::Connections::emit) and its siblings send.
///
/// Fails with [`Error::EncodePayload`] when `payload` does not serialize to JSON.
///
/// # Examples
/// ```
/// let frame = nestforge_edge::event_frame("sensor.reading", &21.5)?;
/// assert_eq!(
///     frame.to_text()?,
///     r#"{"kind":"event","pattern":"sensor.reading","payload":21.5}"#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn event_frame<T: Serialize + ?Sized>(
    pattern: &str,
    payload: &T,
) -> Result<tungstenite::Message, Error> {
    let mut out = Vec::with_capacity(64 + pattern.len());
    out.extend_from_slice(b"{\"kind\":\"event\",\"pattern\":");
    write_str(&mut out, pattern);
    out.extend_from_slice(b",\"payload\":");
    serde_json::to_writer(&mut out, payload).map_err(|source| Error::EncodePayload {
        kind: Kind::Event,
        request: crate::error::Request::new(None, pattern),
        source,
    })?;
    out.push(b'}');
    // Only JSON text was written.
    let text = String::from_utf8(out).unwrap_or_default();
    Ok(tungstenite::Message::Text(text.into()))
}

// The writers below write into memory (a `Vec` or a `BytesMut`), which cannot fail.

/// Writes `{"id":..,"pattern":..,"payload":` into `out`; the payload and [`reply_suffix`]
/// follow. `id` is the request's id, verbatim JSON.
pub(crate) fn reply_prefix(out: &mut impl Write, id: Option<&[u8]>, pattern: &str) {
    let _ = out.write_all(b"{");
    if let Some(id) = id {
        let _ = out.write_all(b"\"id\":");
        let _ = out.write_all(id);
        let _ = out.write_all(b",");
    }
    let _ = out.write_all(b"\"pattern\":");
    write_str(out, pattern);
    let _ = out.write_all(b",\"payload\":");
}

/// Writes `,"metadata":{..}}`, closing a reply started by [`reply_prefix`].
pub(crate) fn reply_suffix(out: &mut impl Write, metadata: &TransportMetadata) {
    let _ = out.write_all(b",\"metadata\":");
    if metadata.values.is_empty() {
        let _ = out.write_all(b"{\"values\":{}}");
    } else {
        let _ = serde_json::to_writer(&mut *out, metadata);
    }
    let _ = out.write_all(b"}");
}

/// Writes a JSON string literal.
fn write_str(out: &mut impl Write, s: &str) {
    let _ = serde_json::to_writer(out, s);
}

/// Renders [`Error::to_json`]; `id` stands in for the request's when the error has none
/// (a frame that failed to decode, but whose `id` could be read).
#[cold]
#[inline(never)]
pub(crate) fn error_frame(err: &Error, id: Option<&RawValue>) -> String {
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    let request = err.request();
    if let Some(id) = request.and_then(|r| r.id.as_deref()).or(id) {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(id.get().as_bytes());
        out.push(b',');
    }
    if let Some(request) = request {
        out.extend_from_slice(b"\"pattern\":");
        write_str(&mut out, &request.pattern);
        out.push(b',');
    }
    out.extend_from_slice(b"\"error\":{\"code\":");
    write_str(&mut out, err.code_str());
    out.extend_from_slice(b",\"message\":");
    write_str(&mut out, &err.to_string());
    if let Some(detail) = err.app_error().and_then(|app| app.detail()) {
        out.extend_from_slice(b",\"detail\":");
        out.extend_from_slice(detail.get().as_bytes());
    } else if let Some(detail) = err.detail() {
        out.extend_from_slice(b",\"detail\":");
        write_str(&mut out, &detail.to_string());
    }
    out.extend_from_slice(b"}}");
    // Only JSON text and valid UTF-8 strings were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn invalid_utf8_in_a_binary_frame_reads_as_serde_json_says_it() {
        for frame in [
            &b"{\"kind\":\"event\",\"pattern\":\"\xff\"}"[..],
            b"{\n  \"kind\": \"event\",\n  \"pattern\": \"ab\xc3\"\n}",
            b"[\"event\",\n\"\xe2\x82\",null,null,null]",
            // Outside strings: where a value, a separator, a key or the end is due.
            b"\xff\xfe",
            b"{\"kind\":\"event\" \xff}",
            b"{\xff:1}",
            b"[\"event\",\"p\",null,null,null]\xff",
            b"{\"kind\":tr\xff}",
            b"{\"kind\":\"event\",\"pattern\":\"p\",\"id\":12\xff}",
            b"{\"kind\":\"event\",\"pattern\":\"\\u00\xff\"}",
        ] {
            let ours = RequestFrame::decode(frame).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<RequestFrame<'_>>(frame)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(frame));
        }
    }

    use super::*;

    fn err(bytes: &str) -> String {
        RequestFrame::decode(bytes.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn decodes_nestforge_frames() {
        let f = RequestFrame::decode(
            br#"{"kind":"message","pattern":"app.info","payload":null,"metadata":{"values":{"trace":"abc"}}}"#,
        )
        .unwrap();
        assert_eq!(
            (f.kind, &*f.pattern, f.payload_json()),
            (Kind::Message, "app.info", "null")
        );
        assert_eq!(f.metadata.get("trace"), Some("abc"));
        assert!(matches!(f.pattern, Cow::Borrowed(_)));

        let f =
            RequestFrame::decode(br#"{"kind":"event","pattern":"app.ping","payload":{"x":[1,2]}}"#)
                .unwrap();
        assert_eq!((f.kind, f.payload_json()), (Kind::Event, r#"{"x":[1,2]}"#));
        assert!(f.metadata.values.is_empty());

        let f = RequestFrame::decode(br#"["event","app.ping",null,{"values":{}}]"#).unwrap();
        assert_eq!((f.kind, &*f.pattern), (Kind::Event, "app.ping"));
    }

    #[test]
    fn metadata_forms() {
        for m in [
            "",
            r#","metadata":{}"#,
            r#","metadata":null"#,
            r#","metadata":{"values":{}}"#,
        ] {
            let text = format!(r#"{{"kind":"message","pattern":"p","payload":1{m}}}"#);
            let f = RequestFrame::decode(text.as_bytes()).unwrap();
            assert!(f.metadata.values.is_empty(), "{m}");
        }
        assert_eq!(
            err(r#"{"kind":"message","pattern":"p","payload":1,"metadata":{"values":{"k":1}}}"#),
            "invalid type: integer `1`, expected a string at line 1 column 71"
        );
    }

    #[test]
    fn nestforge_error_texts() {
        assert_eq!(err("hello"), "expected value at line 1 column 1");
        assert_eq!(err(""), "EOF while parsing a value at line 1 column 0");
        assert_eq!(
            err(r#"{"kind":"Message","pattern":"p","payload":null}"#),
            "unknown variant `Message`, expected `message` or `event` at line 1 column 17"
        );
        assert_eq!(
            err(r#"{"kind":"message","kind":"event"}"#),
            "duplicate field `kind` at line 1 column 24"
        );
        assert_eq!(
            err(r#"{"pattern":"p","payload":null}"#),
            "missing field `kind` at line 1 column 30"
        );
        assert_eq!(
            err(r#"{"kind":"message","payload":null}"#),
            "missing field `pattern` at line 1 column 33"
        );
        assert_eq!(
            err(r#"{"kind":"message","pattern":"p","payload":null} x"#),
            "trailing characters at line 1 column 49"
        );
        assert_eq!(err("\u{7f}\u{0}"), "expected value at line 1 column 1");
    }

    #[test]
    fn ids() {
        let digits = |n| "9".repeat(n);
        for (id, ok) in [
            ("7", true),
            ("-1.5", true),
            (r#""a-1""#, true),
            ("{}", false),
            ("[1]", false),
            ("true", false),
            // Integers: up to 300 digits pass unparsed, longer ones are parsed as f64.
            (&*digits(300), true),
            (&*format!("-{}", digits(308)), true),
            (&*digits(309), false),
            ("1e308", true),
            ("-1e309", false),
        ] {
            let text = format!(r#"{{"kind":"message","pattern":"p","id":{id}}}"#);
            let r = RequestFrame::decode(text.as_bytes());
            assert_eq!(r.is_ok(), ok, "{id}");
            if ok {
                assert_eq!(r.unwrap().id.unwrap().get(), id);
            }
        }
        let f = RequestFrame::decode(br#"{"kind":"message","pattern":"p","id":null}"#).unwrap();
        assert!(f.id.is_none());
    }

    #[test]
    fn escaped_pattern_is_owned() {
        let f = RequestFrame::decode(br#"{"kind":"event","pattern":"a\u002eb"}"#).unwrap();
        assert_eq!(f.pattern, "a.b");
    }

    #[test]
    fn reply_bytes() {
        let mut out = Vec::new();
        reply_prefix(&mut out, None, "app.info");
        out.extend_from_slice(br#"{"app_name":"X","transport":"websocket"}"#);
        reply_suffix(&mut out, &TransportMetadata::new());
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"pattern":"app.info","payload":{"app_name":"X","transport":"websocket"},"metadata":{"values":{}}}"#
        );
        let mut out = Vec::new();
        reply_prefix(&mut out, Some(b"\"r1\""), "a\"b");
        out.extend_from_slice(b"1");
        reply_suffix(
            &mut out,
            &TransportMetadata::new().insert("z", "1").insert("a", "2"),
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"r1","pattern":"a\"b","payload":1,"metadata":{"values":{"a":"2","z":"1"}}}"#
        );
    }
}
