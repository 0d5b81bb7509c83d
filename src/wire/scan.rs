//! The request frames clients send most, decoded without serde: a flat object of `kind`,
//! `pattern`, `payload`, `id` and `metadata`, whose strings have no escapes and whose
//! payload is a scalar or empty. Anything else (escapes, nesting, other keys, duplicates,
//! errors) is `None`, and serde_json decodes it, with its error messages; what this decodes,
//! serde_json decodes the same (a differential test holds it to that).

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::{Kind, RequestFrame, TransportMetadata};

/// Decodes `text` if it has the common shape; `None` leaves it to serde_json.
pub(super) fn scan(text: &str) -> Option<RequestFrame<'_>> {
    let mut s = Scanner { text, at: 0 };
    let (mut kind, mut pattern, mut payload, mut id, mut metadata) = (None, None, None, None, None);
    s.skip_ws();
    s.eat(b'{')?;
    s.skip_ws();
    if s.peek()? != b'}' {
        loop {
            let key = s.string()?;
            s.skip_ws();
            s.eat(b':')?;
            s.skip_ws();
            match key {
                "kind" if kind.is_none() => {
                    kind = Some(match s.string()? {
                        "message" => Kind::Message,
                        "event" => Kind::Event,
                        _ => return None,
                    })
                }
                "pattern" if pattern.is_none() => pattern = Some(s.string()?),
                "payload" if payload.is_none() => payload = Some(s.scalar()?),
                "id" if id.is_none() => id = Some(s.scalar()?),
                "metadata" if metadata.is_none() => metadata = Some(s.empty_metadata()?),
                _ => return None,
            }
            s.skip_ws();
            match s.next()? {
                b',' => s.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        s.at += 1;
    }
    s.skip_ws();
    if s.at != text.len() {
        return None;
    }
    Some(RequestFrame {
        kind: kind?,
        pattern: Cow::Borrowed(pattern?),
        payload: raw(payload)?,
        metadata: TransportMetadata::default(),
        id: raw(id)?,
    })
}

/// A scalar's text as the `Option<&RawValue>` serde gives (`null` is `None`); `None` if
/// serde_json would not take it (it always does: the scanner checked the grammar).
fn raw(text: Option<&str>) -> Option<Option<&RawValue>> {
    match text {
        None | Some("null") => Some(None),
        Some(text) => serde_json::from_str(text).ok().map(Some),
    }
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters: its contents.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = &self.text.as_bytes()[start..];
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// A scalar (string without escapes, number, `true`, `false`, `null`) or an empty
    /// object or array: its JSON text.
    fn scalar(&mut self) -> Option<&'a str> {
        let start = self.at;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'-' | b'0'..=b'9' => self.number()?,
            b't' => self.word("true")?,
            b'f' => self.word("false")?,
            b'n' => self.word("null")?,
            open @ (b'{' | b'[') => {
                self.at += 1;
                self.skip_ws();
                self.eat(if open == b'{' { b'}' } else { b']' })?;
            }
            _ => return None,
        }
        self.text.get(start..self.at)
    }

    fn word(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.first_digit()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.first_digit()?;
        }
        Some(())
    }

    fn first_digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then(|| self.digits())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// `null`, `{}` or `{"values":{}}`.
    fn empty_metadata(&mut self) -> Option<()> {
        if self.peek()? == b'n' {
            return self.word("null");
        }
        self.eat(b'{')?;
        self.skip_ws();
        if self.peek()? == b'"' {
            if self.string()? != "values" {
                return None;
            }
            self.skip_ws();
            self.eat(b':')?;
            self.skip_ws();
            self.eat(b'{')?;
            self.skip_ws();
            self.eat(b'}')?;
            self.skip_ws();
        }
        self.eat(b'}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `scan` decodes, serde_json decodes the same.
    fn agrees(text: &str) -> bool {
        let Some(fast) = scan(text) else {
            return false;
        };
        let slow: RequestFrame<'_> = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{text:?}: scanned, but serde_json says {e}"));
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text:?}");
        true
    }

    #[test]
    fn the_common_frames_are_scanned() {
        for text in [
            r#"{"kind":"message","pattern":"app.info","payload":null,"id":12345}"#,
            r#"{"kind":"message","pattern":"app.info","payload":null,"metadata":{}}"#,
            r#"{"kind":"event","pattern":"app.ping","payload":"x","id":"r-1"}"#,
            r#" { "id" : -1.5e-3 , "payload" : { } , "pattern" : "é" , "kind" : "event" } "#,
            r#"{"kind":"message","pattern":"p","metadata":{"values":{}},"payload":[]}"#,
            r#"{"kind":"message","pattern":"p","payload":true,"metadata":null,"id":null}"#,
        ] {
            assert!(agrees(text), "{text}");
        }
    }

    #[test]
    fn the_rest_is_left_to_serde_json() {
        for text in [
            r#"["message","app.info",null]"#,
            r#"{"kind":"message","pattern":"a\u002eb"}"#,
            r#"{"kind":"message","pattern":"p","payload":{"x":1}}"#,
            r#"{"kind":"message","pattern":"p","metadata":{"values":{"k":"v"}}}"#,
            r#"{"kind":"message","pattern":"p","other":1}"#,
            r#"{"kind":"message","kind":"event","pattern":"p"}"#,
            r#"{"kind":"Message","pattern":"p"}"#,
            r#"{"pattern":"p"}"#,
            r#"{"kind":"message","pattern":"p","id":01}"#,
            r#"{"kind":"message","pattern":"p"} x"#,
            "",
        ] {
            assert!(scan(text).is_none(), "{text}");
        }
    }

    /// Frames made of every field in several forms, in two orders and three spacings, each
    /// also cut at every length and with every byte replaced by each of a few others: none
    /// is decoded by the scanner differently from serde_json.
    #[test]
    fn differs_from_serde_json_nowhere() {
        let kinds = [r#""message""#, r#""event""#, r#""messages""#, "1"];
        let patterns = [r#""app.info""#, r#""""#, r#""é ü""#, r#""a\"b""#, "null"];
        let payloads = [
            "null",
            "0",
            "-0",
            "12345",
            "-1.5e+3",
            "1E400",
            "01",
            "1.",
            "-",
            r#""s""#,
            r#""""#,
            "{}",
            "[ ]",
            "{ \n}",
            "true",
            "false",
            "nul",
            r#"{"x":1}"#,
            "[1]",
        ];
        let ids = [
            "7", "-0.5", r#""r1""#, "null", "{}", "[]", "true", "1e999", "0x1",
        ];
        let metadata = [
            "null",
            "{}",
            r#"{"values":{}}"#,
            r#"{ "values" : { } }"#,
            r#"{"values":null}"#,
            r#"{"value":{}}"#,
            r#"{"values":{"k":"v"}}"#,
        ];
        let mut texts = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            for (j, pattern) in patterns.iter().enumerate() {
                for (k, payload) in payloads.iter().enumerate() {
                    let id = ids[(i + j + k) % ids.len()];
                    let meta = metadata[(i * 3 + k) % metadata.len()];
                    let fields = [
                        format!(r#""kind":{kind}"#),
                        format!(r#""pattern":{pattern}"#),
                        format!(r#""payload":{payload}"#),
                        format!(r#""id":{id}"#),
                        format!(r#""metadata":{meta}"#),
                    ];
                    let backwards: Vec<_> = fields.iter().rev().cloned().collect();
                    for (order, sep) in [(&fields[..], ","), (&backwards[..], " ,\n\t")] {
                        texts.push(format!("{{{}}}", order.join(sep)));
                        texts.push(format!(" {{ {} }}\r\n", order[..3].join(sep)));
                    }
                }
            }
        }
        let mut scanned = 0;
        for text in &texts {
            scanned += usize::from(agrees(text));
            let bytes = text.as_bytes();
            for cut in 0..bytes.len() {
                if let Ok(prefix) = std::str::from_utf8(&bytes[..cut]) {
                    agrees(prefix);
                }
                for by in [
                    b'"', b'\\', b',', b':', b'}', b']', b' ', b'x', b'0', b'e', 0x01,
                ] {
                    let mut changed = bytes.to_vec();
                    changed[cut] = by;
                    if let Ok(changed) = std::str::from_utf8(&changed) {
                        agrees(changed);
                    }
                }
            }
        }
        // The common shapes were among them.
        assert!(scanned > texts.len() / 10, "{scanned} of {}", texts.len());
    }
}
