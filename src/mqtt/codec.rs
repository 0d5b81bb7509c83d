//! The MQTT packets the bridge uses (3.1.1 and 5.0), as pure functions over bytes.
//!
//! Only the client side of CONNECT/CONNACK, PUBLISH (QoS 0 and 1), PUBACK,
//! SUBSCRIBE/SUBACK, PINGREQ/PINGRESP and DISCONNECT. Decoding never panics and never
//! allocates beyond the packet it is given; the session checks the remaining length
//! against its cap ([`frame_len`]) before it buffers a packet.

/// The protocol level on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    V311,
    V5,
}

/// A packet received from the broker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    ConnAck {
        code: u8,
    },
    Publish {
        qos: u8,
        pid: u16,
        topic: &'a str,
        payload: &'a [u8],
    },
    PubAck {
        pid: u16,
    },
    SubAck {
        pid: u16,
        codes: &'a [u8],
    },
    PingResp,
    Disconnect,
    /// Anything else a broker should not send a client (ignored).
    Other(u8),
}

/// Why a packet could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The remaining length is longer than the cap.
    TooLarge,
    /// Not a well-formed packet.
    Invalid,
}

/// Where the next packet in `buf` ends: `Ok(None)` while its fixed header is incomplete,
/// `Ok(Some((header_len, total_len)))` once known, `Err` when it is larger than `cap`
/// bytes or its length field is invalid.
pub(crate) fn frame_len(buf: &[u8], cap: usize) -> Result<Option<(usize, usize)>, Malformed> {
    let mut len: usize = 0;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if len > cap {
                return Err(Malformed::TooLarge);
            }
            return Ok(Some((2 + i, 2 + i + len)));
        }
    }
    Err(Malformed::Invalid)
}

/// Decodes one whole packet (`frame_len` bytes).
pub(crate) fn decode(
    level: Level,
    packet: &[u8],
    header_len: usize,
) -> Result<Packet<'_>, Malformed> {
    let first = *packet.first().ok_or(Malformed::Invalid)?;
    let mut r = Reader(packet.get(header_len..).ok_or(Malformed::Invalid)?);
    Ok(match first >> 4 {
        2 => {
            let _flags = r.u8()?;
            Packet::ConnAck { code: r.u8()? }
        }
        3 => {
            let qos = (first >> 1) & 3;
            if qos == 3 {
                return Err(Malformed::Invalid);
            }
            let topic = r.str()?;
            let pid = if qos > 0 { r.u16()? } else { 0 };
            if level == Level::V5 {
                r.properties()?;
            }
            Packet::Publish {
                qos,
                pid,
                topic,
                payload: r.0,
            }
        }
        4 => Packet::PubAck { pid: r.u16()? },
        9 => {
            let pid = r.u16()?;
            if level == Level::V5 {
                r.properties()?;
            }
            Packet::SubAck { pid, codes: r.0 }
        }
        13 => Packet::PingResp,
        14 => Packet::Disconnect,
        other => Packet::Other(other),
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed::Invalid);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn str(&mut self) -> Result<&'a str, Malformed> {
        let n = self.u16()?;
        std::str::from_utf8(self.take(n.into())?).map_err(|_| Malformed::Invalid)
    }
    fn varint(&mut self) -> Result<usize, Malformed> {
        let mut value = 0usize;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed::Invalid)
    }
    /// Skips an MQTT 5 property block.
    fn properties(&mut self) -> Result<(), Malformed> {
        let n = self.varint()?;
        self.take(n).map(drop)
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Callers keep strings under 64 KiB (topics are checked, client ids too).
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

/// Appends a packet: fixed header byte, remaining length, body.
fn packet(out: &mut Vec<u8>, first: u8, body: &[u8]) {
    out.push(first);
    put_varint(out, body.len());
    out.extend_from_slice(body);
}

/// CONNECT with a clean session.
pub(crate) fn connect(
    out: &mut Vec<u8>,
    level: Level,
    client_id: &str,
    keep_alive_secs: u16,
    max_packet: u32,
) {
    let mut body = Vec::with_capacity(32 + client_id.len());
    put_str(&mut body, "MQTT");
    body.push(if level == Level::V5 { 5 } else { 4 });
    body.push(0x02); // clean session / clean start
    body.extend_from_slice(&keep_alive_secs.to_be_bytes());
    if level == Level::V5 {
        // Maximum Packet Size: the broker drops what we would refuse anyway.
        put_varint(&mut body, 5);
        body.push(0x27);
        body.extend_from_slice(&max_packet.to_be_bytes());
    }
    put_str(&mut body, client_id);
    packet(out, 0x10, &body);
}

/// PUBLISH at QoS 0 (`pid` 0) or 1.
pub(crate) fn publish(
    out: &mut Vec<u8>,
    level: Level,
    topic: &str,
    payload: &[u8],
    qos: u8,
    pid: u16,
) {
    out.push(0x30 | (qos.min(1) << 1));
    let props = usize::from(level == Level::V5);
    let pid_len = if qos > 0 { 2 } else { 0 };
    put_varint(out, 2 + topic.len() + pid_len + props + payload.len());
    put_str(out, topic);
    if qos > 0 {
        out.extend_from_slice(&pid.to_be_bytes());
    }
    if level == Level::V5 {
        out.push(0);
    }
    out.extend_from_slice(payload);
}

/// PUBACK (success; MQTT 5 allows omitting the reason code then).
pub(crate) fn puback(out: &mut Vec<u8>, pid: u16) {
    packet(out, 0x40, &pid.to_be_bytes());
}

/// One topic filter in a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) topic: String,
    pub(crate) qos: u8,
    /// MQTT 5 No Local: the broker does not send our own publishes back (ignored in 3.1.1;
    /// never set on shared subscriptions).
    pub(crate) no_local: bool,
}

/// SUBSCRIBE to `filters`.
pub(crate) fn subscribe(out: &mut Vec<u8>, level: Level, pid: u16, filters: &[Filter]) {
    let mut body = Vec::with_capacity(8 + filters.iter().map(|f| f.topic.len() + 3).sum::<usize>());
    body.extend_from_slice(&pid.to_be_bytes());
    if level == Level::V5 {
        body.push(0);
    }
    for f in filters {
        put_str(&mut body, &f.topic);
        let mut options = f.qos.min(1);
        if level == Level::V5 && f.no_local {
            options |= 0x04;
        }
        body.push(options);
    }
    packet(out, 0x82, &body);
}

/// PINGREQ.
pub(crate) fn pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xc0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(level: Level, bytes: &[u8]) -> Packet<'_> {
        let (h, total) = frame_len(bytes, 1 << 20).unwrap().unwrap();
        assert_eq!(total, bytes.len());
        decode(level, bytes, h).unwrap()
    }

    #[test]
    fn publish_roundtrips_in_both_levels() {
        for level in [Level::V311, Level::V5] {
            for (qos, pid) in [(0, 0), (1, 7)] {
                let mut out = Vec::new();
                publish(
                    &mut out,
                    level,
                    "app.info/reply",
                    b"{\"id\":\"x\"}",
                    qos,
                    pid,
                );
                // Our PUBLISH, read back as the broker's.
                assert_eq!(
                    roundtrip(level, &out),
                    Packet::Publish {
                        qos,
                        pid,
                        topic: "app.info/reply",
                        payload: b"{\"id\":\"x\"}"
                    }
                );
            }
        }
    }

    #[test]
    fn connect_bytes_3_1_1() {
        let mut out = Vec::new();
        connect(&mut out, Level::V311, "gw", 30, 1024);
        assert_eq!(
            out,
            [0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30, 0, 2, b'g', b'w']
        );
        let mut out = Vec::new();
        connect(&mut out, Level::V5, "gw", 30, 1024);
        assert_eq!(out[8], 5);
        assert_eq!(&out[12..18], &[5, 0x27, 0, 0, 4, 0]);
    }

    #[test]
    fn subscribe_options() {
        let f = |t: &str, no_local| Filter {
            topic: t.into(),
            qos: 1,
            no_local,
        };
        let mut out = Vec::new();
        subscribe(
            &mut out,
            Level::V5,
            3,
            &[f("a", true), f("$share/g/b", false)],
        );
        let mut want = vec![0x82u8, 20, 0, 3, 0, 0, 1, b'a', 5, 0, 10];
        want.extend_from_slice(b"$share/g/b");
        want.push(1);
        assert_eq!(out, want);
        let mut out = Vec::new();
        subscribe(&mut out, Level::V311, 3, &[f("a", true)]);
        assert_eq!(out, [0x82, 6, 0, 3, 0, 1, b'a', 1]);
    }

    #[test]
    fn acks_and_limits() {
        assert_eq!(
            decode(Level::V5, &[0x90, 4, 0, 9, 0, 1], 2),
            Ok(Packet::SubAck {
                pid: 9,
                codes: &[1]
            })
        );
        assert_eq!(
            decode(Level::V311, &[0x90, 3, 0, 9, 0x80], 2),
            Ok(Packet::SubAck {
                pid: 9,
                codes: &[0x80]
            })
        );
        assert_eq!(
            decode(Level::V311, &[0x20, 2, 0, 5], 2),
            Ok(Packet::ConnAck { code: 5 })
        );
        assert_eq!(frame_len(&[0x30], 10), Ok(None));
        assert_eq!(frame_len(&[0x30, 0x80], 10), Ok(None));
        assert_eq!(frame_len(&[0x30, 11], 10), Err(Malformed::TooLarge));
        assert_eq!(
            frame_len(&[0x30, 0xff, 0xff, 0xff, 0x7f], usize::MAX),
            Ok(Some((5, 5 + 268_435_455)))
        );
        assert_eq!(
            frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 1], usize::MAX),
            Err(Malformed::Invalid)
        );
    }

    #[test]
    fn hostile_packets_do_not_panic() {
        // Every prefix and every single-byte corruption of valid packets.
        let mut samples = Vec::new();
        let mut p = Vec::new();
        publish(&mut p, Level::V5, "t/x", b"payload", 1, 3);
        samples.push(p);
        samples.push(vec![0x90, 4, 0, 9, 0, 1]);
        samples.push(vec![0x20, 2, 0, 0]);
        for s in samples {
            for level in [Level::V311, Level::V5] {
                for cut in 0..s.len() {
                    let _ = decode(level, &s[..cut], 2.min(cut));
                    let _ = frame_len(&s[..cut], 64);
                }
                for i in 0..s.len() {
                    for b in [0u8, 0x7f, 0x80, 0xff] {
                        let mut t = s.clone();
                        t[i] = b;
                        if let Ok(Some((h, _))) = frame_len(&t, 1 << 20) {
                            let _ = decode(level, &t, h);
                        }
                    }
                }
            }
        }
    }
}
