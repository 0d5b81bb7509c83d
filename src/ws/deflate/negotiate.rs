//! The `permessage-deflate` offer to accept, read from the `Sec-WebSocket-Extensions` lines
//! of an upgrade request (RFC 6455 §9.1 grammar, RFC 7692 §7 parameters), and the response
//! value that accepts it.
//!
//! Every line is parsed before anything is chosen: a header that breaks the grammar
//! anywhere (a bad token, an unterminated quote, a stray separator, a quoted value that is
//! not a token once unescaped) declines every offer, so the connection runs without
//! extensions. Extension and parameter names are compared as RFC 7692 spells them
//! (lowercase, case-sensitive): an offer spelled otherwise is an unknown extension, or an
//! offer with an unknown parameter.

use crate::ws::Headers;

/// The base-2 logarithm of the compressor's LZ77 window (32 KiB): what the client inflates
/// with when its offer does not restrict it.
pub(crate) const MAX_WINDOW_BITS: u8 = 15;

/// The response without a window parameter. Both `*_no_context_takeover` are always sent
/// (RFC 7692 §7.1.1.1 and §7.1.1.2 let a server add them unasked): the server keeps no
/// compression context between messages, and the client must keep none either, so that a
/// message inflates on its own.
const ACCEPT: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

macro_rules! accept_window {
    ($($bits:literal),*) => {
        [$(concat!(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "; server_max_window_bits=",
            $bits
        )),*]
    };
}

/// The response echoing `server_max_window_bits=N`, for N = 8..=15.
const ACCEPT_WINDOW: [&str; 8] = accept_window!(8, 9, 10, 11, 12, 13, 14, 15);

/// A `permessage-deflate` agreement: neither side takes compression context from one
/// message to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deflate {
    /// The base-2 logarithm of the LZ77 window the client inflates our messages with: the
    /// `server_max_window_bits` it offered (8..=15), [`MAX_WINDOW_BITS`] when it did not
    /// restrict it. [`compress`](super::compress) takes it: below 15, messages longer than
    /// the window are sent uncompressed.
    pub(crate) server_window_bits: u8,
    /// The accepted offer named `server_max_window_bits`: the response echoes it.
    window_offered: bool,
}

impl Deflate {
    /// The `Sec-WebSocket-Extensions` value of the `101`:
    /// `permessage-deflate; server_no_context_takeover; client_no_context_takeover`, then
    /// `; server_max_window_bits=N` when the offer had it (the same N: RFC 7692 §7.1.2.1).
    /// `client_max_window_bits` is never answered: the inflater reads any window up to 15,
    /// so the client's choice stands (RFC 7692 §7.1.2.2 lets the server omit it).
    pub(crate) fn response(&self) -> &'static str {
        if !self.window_offered {
            return ACCEPT;
        }
        let i = usize::from(self.server_window_bits.saturating_sub(8));
        ACCEPT_WINDOW.get(i).copied().unwrap_or(ACCEPT)
    }
}

/// The first `permessage-deflate` offer of `headers` that can be honoured (RFC 7692 §5: an
/// offer that cannot be is declined and the next one tried), or `None`: no offer, only
/// invalid ones, or a malformed header (every offer declined).
///
/// Valid offers are all honoured. An offer is invalid, and declined, when it names a
/// parameter twice or one RFC 7692 does not define, gives a value to
/// `server_no_context_takeover` or `client_no_context_takeover`, gives
/// `server_max_window_bits` no value, or gives a `*_max_window_bits` value that is not a
/// decimal from 8 to 15 without leading zeros (quoted or not).
pub(crate) fn negotiate(headers: &Headers) -> Option<Deflate> {
    let mut chosen = None;
    for (_, line) in headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
    {
        parse_line(line, &mut |offer| {
            if chosen.is_none() {
                chosen = offer;
            }
        })?;
    }
    chosen
}

/// Parses one header line (`1#extension`), calling `found` at the end of each extension with
/// the agreement it makes (`None`: not `permessage-deflate`, or invalid). `None` when the
/// line breaks the grammar.
fn parse_line(line: &[u8], found: &mut impl FnMut(Option<Deflate>)) -> Option<()> {
    let mut at = Cursor {
        bytes: line,
        pos: 0,
    };
    loop {
        at.skip_ows();
        match at.peek() {
            None => return Some(()),
            // An empty list element (RFC 9110 §5.6.1: tolerated).
            Some(b',') => {
                at.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut offer = Offer::new(at.token()?);
        loop {
            at.skip_ows();
            if !at.eat(b';') {
                break;
            }
            at.skip_ows();
            let name = at.token()?;
            at.skip_ows();
            let value = if at.eat(b'=') {
                at.skip_ows();
                Some(at.value()?)
            } else {
                None
            };
            offer.param(name, value);
        }
        match at.peek() {
            None | Some(b',') => found(offer.finish()),
            Some(_) => return None,
        }
    }
}

/// What one extension of the list makes of its parameters.
struct Offer {
    /// The extension is `permessage-deflate`: its parameters are checked.
    deflate: bool,
    /// A parameter was repeated, unknown or given a wrong value.
    invalid: bool,
    /// The parameters seen, one bit each.
    seen: u8,
    server_window: Option<u8>,
}

impl Offer {
    fn new(name: &[u8]) -> Self {
        Offer {
            deflate: name == b"permessage-deflate",
            invalid: false,
            seen: 0,
            server_window: None,
        }
    }

    fn param(&mut self, name: &[u8], value: Option<Value<'_>>) {
        if !self.deflate {
            return;
        }
        let (bit, valid) = match name {
            b"server_no_context_takeover" => (1, value.is_none()),
            b"client_no_context_takeover" => (2, value.is_none()),
            b"server_max_window_bits" => {
                self.server_window = value.and_then(window_bits);
                (4, self.server_window.is_some())
            }
            b"client_max_window_bits" => (8, value.is_none_or(|v| window_bits(v).is_some())),
            _ => (0, false),
        };
        self.invalid |= !valid || self.seen & bit != 0;
        self.seen |= bit;
    }

    fn finish(self) -> Option<Deflate> {
        (self.deflate && !self.invalid).then(|| Deflate {
            server_window_bits: self.server_window.unwrap_or(MAX_WINDOW_BITS),
            window_offered: self.server_window.is_some(),
        })
    }
}

/// A `*_max_window_bits` value: a decimal from 8 to 15 without leading zeros
/// (RFC 7692 §7.1.2.1, §7.1.2.2).
fn window_bits(value: Value<'_>) -> Option<u8> {
    let mut digits = [0u8; 2];
    let mut len = 0;
    for b in value.unescaped() {
        *digits.get_mut(len)? = b;
        len += 1;
    }
    match &digits[..len] {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// A parameter value: a token, or the inside of a quoted string whose unescaped bytes form
/// a token (checked by [`Cursor::value`]).
#[derive(Clone, Copy)]
enum Value<'a> {
    Token(&'a [u8]),
    Quoted(&'a [u8]),
}

impl<'a> Value<'a> {
    fn unescaped(self) -> impl Iterator<Item = u8> + 'a {
        let (bytes, quoted) = match self {
            Value::Token(bytes) => (bytes, false),
            Value::Quoted(bytes) => (bytes, true),
        };
        let mut escaped = false;
        bytes.iter().filter_map(move |&b| {
            if quoted && !escaped && b == b'\\' {
                escaped = true;
                return None;
            }
            escaped = false;
            Some(b)
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.pos += usize::from(hit);
        hit
    }

    /// Optional whitespace: spaces and tabs.
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// `token = 1*tchar`.
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.bytes[start..self.pos])
    }

    /// `token / quoted-string`, a quoted one holding a token once unescaped
    /// (RFC 6455 §9.1).
    fn value(&mut self) -> Option<Value<'a>> {
        if !self.eat(b'"') {
            return self.token().map(Value::Token);
        }
        let start = self.pos;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        let inner = self.bytes.get(start..self.pos)?;
        self.pos += 1;
        let value = Value::Quoted(inner);
        let mut unescaped = value.unescaped().peekable();
        (unescaped.peek().is_some() && unescaped.all(is_tchar)).then_some(value)
    }
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(lines: &[&str]) -> Option<Deflate> {
        negotiate(&Headers::from_pairs(
            lines.iter().map(|l| ("Sec-WebSocket-Extensions", *l)),
        ))
    }

    fn response(lines: &[&str]) -> Option<&'static str> {
        offer(lines).map(|d| d.response())
    }

    const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    #[test]
    fn no_header_or_no_deflate_offer() {
        assert_eq!(negotiate(&Headers::new()), None);
        assert_eq!(response(&[""]), None);
        assert_eq!(response(&["x-webkit-deflate-frame"]), None);
        assert_eq!(response(&["permessage-foo; x=1, mux"]), None);
    }

    #[test]
    fn rfc7692_examples() {
        // §5.1: the simplest offer, and a browser's (§7.1.2.2's client_max_window_bits
        // without a value).
        assert_eq!(response(&["permessage-deflate"]), Some(BOTH));
        let browser = "permessage-deflate; client_max_window_bits";
        assert_eq!(response(&[browser]), Some(BOTH));
        // §5.2 / §7.1.3: two offers, the first restricting our window.
        let two = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                   permessage-deflate; client_max_window_bits";
        let d = offer(&[two]).unwrap();
        assert_eq!(d.server_window_bits, 10);
        assert_eq!(
            d.response(),
            format!("{BOTH}; server_max_window_bits=10").as_str()
        );
        // §7.1.1: both no-context parameters offered, answered as always.
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        assert_eq!(response(&[both]), Some(BOTH));
        assert_eq!(
            response(&["permessage-deflate; client_no_context_takeover"]),
            Some(BOTH)
        );
        assert_eq!(
            response(&["permessage-deflate;server_no_context_takeover"]),
            Some(BOTH)
        );
    }

    #[test]
    fn unrestricted_window_is_15_and_not_answered() {
        let d = offer(&["permessage-deflate"]).unwrap();
        assert_eq!(d.server_window_bits, MAX_WINDOW_BITS);
        assert!(!d.response().contains("window_bits"));
    }

    #[test]
    fn every_server_window_is_echoed() {
        for n in 8..=15u8 {
            let line = format!("permessage-deflate; server_max_window_bits={n}");
            let d = offer(&[&line]).unwrap();
            assert_eq!(d.server_window_bits, n);
            assert_eq!(d.response(), format!("{BOTH}; server_max_window_bits={n}"));
            // Quoted, and with both windows.
            let line = format!(
                "permessage-deflate; client_max_window_bits={n}; server_max_window_bits=\"{n}\""
            );
            let d = offer(&[&line]).unwrap();
            assert_eq!(d.server_window_bits, n);
            assert_eq!(d.response(), format!("{BOTH}; server_max_window_bits={n}"));
        }
    }

    #[test]
    fn client_window_is_accepted_and_never_answered() {
        for n in 8..=15u8 {
            let line = format!("permessage-deflate; client_max_window_bits={n}");
            assert_eq!(response(&[&line]), Some(BOTH));
        }
    }

    #[test]
    fn bad_window_values_decline_the_offer() {
        for bad in [
            "7", "16", "0", "08", "+9", "9.0", "1O", "0x9", "", "\"\"", "\"1 0\"", "100",
        ] {
            for param in ["server_max_window_bits", "client_max_window_bits"] {
                let line = format!("permessage-deflate; {param}={bad}");
                assert_eq!(response(&[&line]), None, "{line}");
            }
        }
        // server_max_window_bits needs a value.
        assert_eq!(
            response(&["permessage-deflate; server_max_window_bits"]),
            None
        );
    }

    #[test]
    fn quoted_values_are_unescaped() {
        let d = offer(&["permessage-deflate; server_max_window_bits=\"1\\2\""]).unwrap();
        assert_eq!(d.server_window_bits, 12);
        assert_eq!(
            response(&["permessage-deflate; client_max_window_bits=\"9\""]),
            Some(BOTH)
        );
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_one_taken() {
        for first in [
            // A parameter twice.
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=9; server_max_window_bits=9",
            // Unknown, or spelled otherwise.
            "permessage-deflate; foo",
            "permessage-deflate; foo=1",
            "permessage-deflate; Server_No_Context_Takeover",
            // A value on a flag.
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
            // Out of range.
            "permessage-deflate; server_max_window_bits=16",
        ] {
            let lines = format!("{first}, permessage-deflate; server_max_window_bits=11");
            let d = offer(&[&lines]);
            assert_eq!(d.map(|d| d.server_window_bits), Some(11), "{first}");
            // The same across two header lines.
            let d = offer(&[first, "permessage-deflate; server_max_window_bits=11"]);
            assert_eq!(d.map(|d| d.server_window_bits), Some(11), "{first}");
            assert_eq!(response(&[first]), None, "{first}");
        }
    }

    #[test]
    fn the_first_valid_offer_wins() {
        let d = offer(&[
            "x-webkit-deflate-frame; no_context_takeover",
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=12",
        ])
        .unwrap();
        assert_eq!(d.server_window_bits, 9);
        let d =
            offer(&["permessage-deflate; server_max_window_bits=12, permessage-deflate"]).unwrap();
        assert_eq!(d.server_window_bits, 12);
        // Other extensions' parameters are theirs.
        let d = offer(&["foo; server_max_window_bits=99; a; a, permessage-deflate"]).unwrap();
        assert_eq!(d.server_window_bits, 15);
        // Spelled otherwise, it is another extension.
        assert_eq!(response(&["Permessage-Deflate"]), None);
    }

    #[test]
    fn whitespace_and_empty_elements() {
        let d =
            offer(&[" ,\tpermessage-deflate \t;\t server_max_window_bits \t=\t 13 ,, "]).unwrap();
        assert_eq!(d.server_window_bits, 13);
        assert_eq!(response(&[", ,"]), None);
    }

    #[test]
    fn malformed_headers_decline_everything() {
        for line in [
            "permessage-deflate;",
            "permessage-deflate; ; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits==10",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; server_max_window_bits=\"10\\\"",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate server_no_context_takeover",
            "permessage-deflate; client_max_window_bits=10 11",
            "permessage-deflate; a=\"b\"c",
            "per message-deflate",
            "permessage-deflate; =10",
            "\"permessage-deflate\"",
            "permessage-deflate/1",
            "permessage-deflate; x=(1)",
            "permessage-deflate\u{e9}",
            ";",
            "=",
            "\\",
        ] {
            assert_eq!(response(&[line]), None, "{line}");
            // Good offers do not survive a malformed part anywhere in the header.
            assert_eq!(response(&["permessage-deflate", line]), None, "{line}");
            let joined = format!("permessage-deflate, {line}");
            assert_eq!(response(&[&joined]), None, "{line}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let alphabet = b"permessage-deflate_server_client_max_window_bits_no_context_takeover \
                         \t;,=\"\\0123456789\x00\xff";
        let valid = b"permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits";
        for round in 0..20_000 {
            // Random bytes, or a valid offer with a few bytes replaced.
            let mut line: Vec<u8> = if round % 2 == 0 {
                (0..next() % 40)
                    .map(|_| alphabet[next() % alphabet.len()])
                    .collect()
            } else {
                valid.to_vec()
            };
            for _ in 0..(round % 2) * (1 + next() % 3) {
                let at = next() % line.len();
                line[at] = alphabet[next() % alphabet.len()];
            }
            let headers = Headers::from_pairs([("sec-websocket-extensions", line.as_slice())]);
            if let Some(d) = negotiate(&headers) {
                assert!((8..=15).contains(&d.server_window_bits));
                assert!(d.response().starts_with(BOTH));
            }
        }
    }
}
