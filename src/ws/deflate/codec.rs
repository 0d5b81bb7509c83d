//! Compressing and inflating whole messages (RFC 7692 §7.2) with one compressor and one
//! inflater per thread, each starting every message afresh: a connection holds no
//! compression state, and a message never depends on the one before (both
//! `*_no_context_takeover` are always agreed).
//!
//! Each call takes a whole message, so two messages' inflations (or compressions) cannot
//! interleave on a thread: there is no call that leaves a message half-done in the shared
//! state. The framing reassembles a compressed message before inflating it.
//!
//! The compressor is miniz_oxide's, whose LZ77 window is fixed at 32 KiB. With no context
//! takeover a back-reference never reaches before the start of its message, so a message
//! of at most 2^N bytes is valid for any window of 2^N bytes: when the client restricted
//! our window (`server_max_window_bits=N` below 15), longer messages go uncompressed
//! (RSV1 clear), which an endpoint may always do.

use std::cell::RefCell;

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::core::inflate_flags::{
    TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
};
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use super::negotiate::MAX_WINDOW_BITS;

/// What a sync flush ends with: an empty stored block's LEN and NLEN. The sender removes
/// them (RFC 7692 §7.2.1), the receiver appends them (§7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the inflater reads after a message: [`SYNC_TAIL`], then an empty final stored block
/// (BFINAL 1, BTYPE 00, LEN 0, NLEN ffff). Reaching the end of that block shows the message
/// ended where a block may start; a message cut inside a block fails. (A stored block
/// rather than a fixed-code one: no Huffman table to build, which for a short message costs
/// as much as the rest of the inflation.)
const INFLATE_TAIL: [u8; 9] = [0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff];

/// miniz_oxide's level 1: greedy matching, one probe per position. On the gateway's JSON
/// frames it compresses 4 KiB to 6% and 64 KiB to 20% more bytes than the default level (6),
/// in 0.6 and 0.13 times its time (x86_64: 9 and 52 µs).
const LEVEL: i32 = 1;

/// The first output buffer of an inflation, as a multiple of the compressed size (JSON
/// inflates to about 4 to 10 times); it doubles from there up to the limit.
const FIRST_RATIO: usize = 4;

/// The smallest first output buffer.
const FIRST_MIN: usize = 256;

/// An inflation's output buffer is kept for the thread's next one up to this capacity; a
/// message inflated into it is copied out at its size (one allocation per message, rather
/// than the buffer's growth and a shrink).
const OUTPUT_SPARE_MAX: usize = 64 * 1024;

thread_local! {
    /// Created at the thread's first compression (about 320 KB: the 32 KiB window and its
    /// hash chains, the code and output buffers); a full flush ends every message, so the
    /// next one starts with an empty window.
    static COMPRESSOR: RefCell<Option<Box<CompressorOxide>>> = const { RefCell::new(None) };
    /// Created at the thread's first inflation (about 11 KB of Huffman tables); the output
    /// buffer is the message itself, so no window is kept.
    static INFLATER: RefCell<Option<Box<DecompressorOxide>>> = const { RefCell::new(None) };
    /// The last inflation's output buffer, empty, when it was small enough to keep.
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates to more than the limit (the inflation stopped there).
    TooBig,
    /// It is not valid DEFLATE data, or ends inside a block.
    Corrupt,
}

/// Appends `payload` compressed as a message's payload (raw DEFLATE, ending with a sync
/// flush whose trailing `00 00 ff ff` is removed: RFC 7692 §7.2.1) to `out`, and returns
/// `true`: the message is sent with RSV1 set on its first frame.
///
/// Returns `false`, `out` unchanged, when the message is to be sent uncompressed: it is
/// empty, it would not get smaller, or `window_bits` (the agreed `server_max_window_bits`)
/// is below 15 and the payload is longer than `1 << window_bits` bytes (see the module
/// docs).
pub(crate) fn compress(payload: &[u8], window_bits: u8, out: &mut Vec<u8>) -> bool {
    let too_long = window_bits < MAX_WINDOW_BITS && payload.len() > 1 << window_bits;
    if payload.is_empty() || too_long {
        return false;
    }
    let start = out.len();
    let flushed = with_compressor(|c| deflate_message(c, payload, start, out)).unwrap_or(false);
    if flushed && out[start..].ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
        true
    } else {
        out.truncate(start);
        false
    }
}

/// Compresses `payload` into `out` after `start`, ending with a full flush (a sync flush
/// that also empties the window). `false` when the output stopped short of the payload's
/// size or the compressor failed; the compressor is then reset.
fn deflate_message(
    c: &mut CompressorOxide,
    payload: &[u8],
    start: usize,
    out: &mut Vec<u8>,
) -> bool {
    // Output of this size, tail included, would be no smaller than the payload.
    let limit = payload.len() + SYNC_TAIL.len();
    let (status, used) = compress_to_output(c, payload, TDEFLFlush::Full, |chunk| {
        let fits = out.len() - start + chunk.len() < limit;
        if fits {
            out.extend_from_slice(chunk);
        }
        fits
    });
    let done = status == TDEFLStatus::Okay && used == payload.len();
    if !done {
        c.reset();
    }
    done
}

/// Runs `f` with this thread's compressor, created on first use; `None` only if the
/// compressor is in use (impossible: `f` never calls back here) or the thread is exiting.
fn with_compressor<T>(f: impl FnOnce(&mut CompressorOxide) -> T) -> Option<T> {
    COMPRESSOR
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let c = slot.get_or_insert_with(|| {
                let flags =
                    create_comp_flags_from_zip_params(LEVEL, -i32::from(MAX_WINDOW_BITS), 0);
                Box::new(CompressorOxide::new(flags))
            });
            Some(f(c))
        })
        .ok()
        .flatten()
}

/// Inflates a message's payload (its frames' payloads joined) after appending
/// `00 00 ff ff` (RFC 7692 §7.2.2).
///
/// At most `max_output` bytes are produced: the output buffer starts at a few times the
/// compressed size and doubles, capped at `max_output`, so a small message that would
/// inflate to far more (a bomb) stops with [`InflateError::TooBig`] having allocated at
/// most `max_output` bytes. Also accepted: messages of several DEFLATE blocks, a message
/// ending with a final block (BFINAL set: what follows it is ignored), and an empty
/// payload, which some peers send for an empty message.
///
/// The inflation runs in the thread's output buffer, kept (empty) for the next one up to
/// [`OUTPUT_SPARE_MAX`] bytes of capacity; a message is then copied out at its size, a
/// larger one keeps the buffer it was inflated into.
pub(crate) fn inflate(compressed: &[u8], max_output: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = OUTPUT
        .try_with(|cell| cell.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let result = inflate_into(compressed, max_output, &mut out);
    if out.capacity() > OUTPUT_SPARE_MAX {
        return result.map(|()| {
            out.shrink_to_fit();
            out
        });
    }
    let message = result.map(|()| out.to_vec());
    out.clear();
    let _ = OUTPUT.try_with(|cell| cell.try_borrow_mut().map(|mut b| *b = out));
    message
}

/// [`inflate`] into `out` (cleared first). On an error `out` is left as the inflation
/// stopped: a buffer of at most `max_output` bytes.
fn inflate_into(
    compressed: &[u8],
    max_output: usize,
    out: &mut Vec<u8>,
) -> Result<(), InflateError> {
    out.clear();
    if compressed.is_empty() {
        return Ok(());
    }
    let first = compressed
        .len()
        .saturating_mul(FIRST_RATIO)
        .max(FIRST_MIN)
        .min(max_output);
    out.reserve_exact(first);
    out.resize(first, 0);
    let written = with_inflater(|d| run_inflater(d, compressed, max_output, out))
        // The thread is exiting: an inflater of its own (on the stack).
        .unwrap_or_else(|| {
            run_inflater(&mut DecompressorOxide::new(), compressed, max_output, out)
        });
    out.truncate(written?);
    Ok(())
}

/// Inflates `compressed` then [`INFLATE_TAIL`] with `d` into `out` (already sized for the
/// first step); the bytes written.
fn run_inflater(
    d: &mut DecompressorOxide,
    compressed: &[u8],
    max_output: usize,
    out: &mut Vec<u8>,
) -> Result<usize, InflateError> {
    d.init();
    let mut written = 0;
    let inputs = [
        (compressed, TINFL_FLAG_HAS_MORE_INPUT),
        (&INFLATE_TAIL[..], 0),
    ];
    for (mut input, more) in inputs {
        let flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF | more;
        loop {
            let (status, used, produced) = decompress(d, input, out, written, flags);
            written += produced;
            input = input.get(used..).unwrap_or_default();
            match status {
                TINFLStatus::Done => return Ok(written),
                TINFLStatus::NeedsMoreInput if more != 0 => break,
                // The output is full. With the whole message read, maybe only because it
                // ended exactly there: the tail tells.
                TINFLStatus::HasMoreOutput if out.len() >= max_output => {
                    if more != 0 && input.is_empty() {
                        break;
                    }
                    return Err(InflateError::TooBig);
                }
                TINFLStatus::HasMoreOutput => grow(out, max_output),
                _ => return Err(InflateError::Corrupt),
            }
        }
    }
    Err(InflateError::Corrupt)
}

/// Doubles `out`'s length (zeroed), to at most `max_output`, allocating no more than that.
fn grow(out: &mut Vec<u8>, max_output: usize) {
    let len = out.len().saturating_mul(2).max(FIRST_MIN).min(max_output);
    out.reserve_exact(len - out.len());
    out.resize(len, 0);
}

/// Runs `f` with this thread's inflater, created on first use; `None` as for
/// [`with_compressor`].
fn with_inflater<T>(f: impl FnOnce(&mut DecompressorOxide) -> T) -> Option<T> {
    INFLATER
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            Some(f(slot.get_or_insert_with(Box::default)))
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests;
