//! The pattern tables' hash.

use std::hash::{BuildHasherDefault, Hasher};

/// The route tables' hash: eight bytes per step (FxHash's multiply-rotate). The tables
/// hold the application's patterns only, so a client choosing the looked-up name cannot
/// lengthen any probe sequence (no need for SipHash's keyed defence, which costs ~180
/// instructions per `app.info` lookup against ~20).
pub(super) type PatternHash = BuildHasherDefault<PatternHasher>;

#[derive(Default)]
pub(super) struct PatternHasher(u64);

impl PatternHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for PatternHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(word) ^ (rest.len() as u64) << 59);
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The multiply leaves its best-mixed bits at the top; hashbrown indexes with the
        // bottom ones.
        self.0.rotate_left(26)
    }
}
