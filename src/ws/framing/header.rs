//! The frame header codec (RFC 6455 section 5.2) over byte slices: the same headers,
//! lengths and errors as tungstenite's `FrameHeader::parse` and `FrameHeader::format`,
//! without the `Read`/`Write` cursor they go through (a few dozen instructions per frame
//! instead of a few hundred).

use tungstenite::error::{Error, ProtocolError, Result};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::MAX_HEADER;

/// Decodes the frame header at the front of `buf`: the header, its payload length and the
/// header's size; `None` while `buf` holds only part of it. A reserved opcode is
/// `InvalidOpcode` once the whole header is there (as tungstenite reports it).
pub(super) fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, u64, usize)>> {
    let [first, second, ref rest @ ..] = *buf else {
        return Ok(None);
    };
    let (len, rest) = match second & 0x7f {
        126 => match rest.split_first_chunk::<2>() {
            Some((n, rest)) => (u64::from(u16::from_be_bytes(*n)), rest),
            None => return Ok(None),
        },
        127 => match rest.split_first_chunk::<8>() {
            Some((n, rest)) => (u64::from_be_bytes(*n), rest),
            None => return Ok(None),
        },
        n => (u64::from(n), rest),
    };
    let mask = if second & 0x80 != 0 {
        match rest.first_chunk::<4>() {
            Some(mask) => Some(*mask),
            None => return Ok(None),
        }
    } else {
        None
    };
    let opcode = match first & 0x0f {
        0 => OpCode::Data(Data::Continue),
        1 => OpCode::Data(Data::Text),
        2 => OpCode::Data(Data::Binary),
        8 => OpCode::Control(Control::Close),
        9 => OpCode::Control(Control::Ping),
        10 => OpCode::Control(Control::Pong),
        reserved => return Err(Error::Protocol(ProtocolError::InvalidOpcode(reserved))),
    };
    let used = buf.len() - rest.len() + if mask.is_some() { 4 } else { 0 };
    let header = FrameHeader {
        is_final: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        rsv2: first & 0x20 != 0,
        rsv3: first & 0x10 != 0,
        opcode,
        mask,
    };
    Ok(Some((header, len, used)))
}

/// Encodes `header` for a `len`-byte payload into `out`; returns the bytes used. The length
/// takes the shortest form, as tungstenite writes it.
pub(super) fn encode(header: &FrameHeader, len: u64, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = u8::from(header.is_final) << 7
        | u8::from(header.rsv1) << 6
        | u8::from(header.rsv2) << 5
        | u8::from(header.rsv3) << 4
        | u8::from(header.opcode);
    let masked = if header.mask.is_some() { 0x80 } else { 0 };
    let mut used = match len {
        0..=125 => {
            out[1] = masked | len as u8;
            2
        }
        126..=0xffff => {
            out[1] = masked | 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = masked | 127;
            out[2..10].copy_from_slice(&len.to_be_bytes());
            10
        }
    };
    if let Some(mask) = header.mask {
        out[used..used + 4].copy_from_slice(&mask);
        used += 4;
    }
    used
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// tungstenite's answer for the same bytes: header, length, bytes used.
    fn reference(buf: &[u8]) -> Result<Option<(FrameHeader, u64, usize)>> {
        let mut cursor = Cursor::new(buf);
        let parsed = FrameHeader::parse(&mut cursor)?;
        Ok(parsed.map(|(h, len)| (h, len, cursor.position() as usize)))
    }

    fn same(ours: Result<Option<(FrameHeader, u64, usize)>>, buf: &[u8]) {
        match (ours, reference(buf)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{buf:02x?}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{buf:02x?}"),
            (a, b) => panic!("{buf:02x?}: ours {a:?}, tungstenite {b:?}"),
        }
    }

    #[test]
    fn rfc6455_section_5_7_headers() {
        // A single-frame unmasked text message "Hello", then masked.
        let (h, len, used) = decode(&[0x81, 0x05, b'H']).unwrap().unwrap();
        assert!(h.is_final && h.mask.is_none() && h.opcode == OpCode::Data(Data::Text));
        assert_eq!((len, used), (5, 2));
        let (h, len, used) = decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f])
            .unwrap()
            .unwrap();
        assert_eq!((h.mask, len, used), (Some([0x37, 0xfa, 0x21, 0x3d]), 5, 6));
        // A fragmented text message: first fragment, then the final continuation.
        let (h, _, _) = decode(&[0x01, 0x03]).unwrap().unwrap();
        assert!(!h.is_final && h.opcode == OpCode::Data(Data::Text));
        let (h, _, _) = decode(&[0x80, 0x02]).unwrap().unwrap();
        assert!(h.is_final && h.opcode == OpCode::Data(Data::Continue));
        // Ping, 256 bytes and 64 KiB binary messages in one unmasked frame.
        let (h, len, _) = decode(&[0x89, 0x05]).unwrap().unwrap();
        assert_eq!((h.opcode, len), (OpCode::Control(Control::Ping), 5));
        assert_eq!(decode(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap().1, 256);
        let long = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(decode(&long).unwrap().unwrap().1, 65536);
        // Every strict prefix is incomplete.
        for end in 0..long.len() {
            assert!(decode(&long[..end]).unwrap().is_none());
        }
    }

    #[test]
    fn decode_agrees_with_tungstenite_on_every_first_two_bytes_and_prefix() {
        for first in 0..=255u8 {
            for second in 0..=255u8 {
                let mut buf = vec![first, second];
                buf.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]);
                buf.extend_from_slice(&[1, 2, 3, 4, 5]);
                for end in 0..=15 {
                    same(decode(&buf[..end]), &buf[..end]);
                }
            }
        }
    }

    #[test]
    fn encode_agrees_with_tungstenite() {
        let lengths = [
            0,
            1,
            125,
            126,
            127,
            0xffff,
            0x1_0000,
            1 << 32,
            u64::MAX >> 1,
        ];
        for opcode in [0u8, 1, 2, 8, 9, 10] {
            for bits in 0..32u8 {
                for len in lengths {
                    let header = FrameHeader {
                        is_final: bits & 1 != 0,
                        rsv1: bits & 2 != 0,
                        rsv2: bits & 4 != 0,
                        rsv3: bits & 8 != 0,
                        opcode: OpCode::from(opcode),
                        mask: (bits & 16 != 0).then_some([9, 8, 7, 6]),
                    };
                    let mut ours = [0u8; MAX_HEADER];
                    let used = encode(&header, len, &mut ours);
                    let mut theirs = Vec::new();
                    header.format(len, &mut theirs).unwrap();
                    assert_eq!(&ours[..used], &theirs[..], "{header:?} {len}");
                    assert_eq!(decode(&ours[..used]).unwrap(), Some((header, len, used)));
                }
            }
        }
    }
}
