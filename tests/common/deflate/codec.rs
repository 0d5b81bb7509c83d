//! `permessage-deflate` as a client does it, with no socket: messages compressed as browsers
//! send them (raw DEFLATE, a sync flush, its tail removed: RFC 7692 §7.2.1), replies
//! inflated, and JSON telemetry to compress. Shared by the tests (`common::deflate`) and the
//! bench (`--compress`).

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
};

/// `payload` compressed as a message's payload at `level` (1 to 9; browsers use zlib's
/// default, 6), each message with a fresh window.
pub fn deflate(payload: &[u8], level: u8) -> Vec<u8> {
    let flags = create_comp_flags_from_zip_params(i32::from(level), -15, 0);
    let mut compressor = Box::new(CompressorOxide::new(flags));
    let mut out = Vec::with_capacity(payload.len() / 2 + 16);
    compress_to_output(&mut compressor, payload, TDEFLFlush::Sync, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush");
    out.truncate(out.len() - 4);
    out
}

/// A compressed message's payload inflated (the sync tail appended, then an empty final
/// block); `None` when it does not inflate.
pub fn inflate(compressed: &[u8]) -> Option<Vec<u8>> {
    let mut stream = Vec::with_capacity(compressed.len() + 9);
    stream.extend_from_slice(compressed);
    stream.extend_from_slice(&[0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff]);
    miniz_oxide::inflate::decompress_to_vec(&stream).ok()
}

/// JSON telemetry of `len` bytes (at least 64): readings of a few sensors, as a device
/// reports them, padded with spaces to the length.
pub fn telemetry(len: usize) -> String {
    let mut out = String::from("{\"device\":\"edge-0042\",\"readings\":[");
    for i in 0u64.. {
        let reading = format!(
            "{}{{\"sensor\":\"s{}\",\"ts\":{},\"celsius\":{}.{}}}",
            if i == 0 { "" } else { "," },
            i % 6,
            1_765_000_000_000 + i * 250,
            18 + (i * 7) % 11,
            (i * 3) % 10
        );
        if out.len() + reading.len() + 2 > len {
            break;
        }
        out += &reading;
    }
    out += "]}";
    while out.len() < len {
        out.push(' ');
    }
    out
}
