//! Frames waiting for the socket: headers and small payloads copied into one buffer, large
//! payloads kept as the `Bytes` they came in (no copy) and written with `writev`.
//!
//! Nothing is held once everything is written: the buffer and the queue of parts go back to
//! per-thread spares that the next connection to write takes, so a flush costs no
//! allocation and an idle connection no memory.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::Bytes;

/// Payloads from this size on are queued by reference rather than copied.
const BY_REFERENCE: usize = 2048;

/// Slices per `writev`.
const MAX_SLICES: usize = 16;

/// The spare buffer is kept only up to this capacity.
const SPARE_MAX: usize = 64 * 1024;

/// The spare queue of parts is kept only up to this capacity.
const PARTS_SPARE_MAX: usize = 64;

thread_local! {
    /// An empty write buffer, taken by the next connection that writes.
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// An empty queue of parts, likewise.
    static PARTS_SPARE: RefCell<VecDeque<Part>> = const { RefCell::new(VecDeque::new()) };
}

/// A payload to be written after `buf[..at]`.
struct Part {
    at: usize,
    data: Bytes,
}

#[derive(Default)]
pub(super) struct Output {
    buf: Vec<u8>,
    /// Bytes of `buf` written.
    sent: usize,
    /// Payloads queued by reference, in order (`at` never decreases).
    parts: VecDeque<Part>,
    /// Bytes of the first part written.
    part_sent: usize,
    /// Bytes in `parts`, written or not.
    parts_len: usize,
}

impl Output {
    /// Bytes queued and not written yet.
    pub(super) fn unsent(&self) -> usize {
        self.buf.len() - self.sent + self.parts_len - self.part_sent
    }

    pub(super) fn is_empty(&self) -> bool {
        self.unsent() == 0
    }

    /// Bytes of buffer held.
    pub(super) fn held(&self) -> usize {
        self.buf.capacity() + self.parts.capacity() * std::mem::size_of::<Part>()
    }

    /// Appends a frame: `header` (already encoded) and its payload.
    pub(super) fn push(&mut self, header: &[u8], payload: Payload<'_>) {
        if self.buf.capacity() == 0 {
            self.buf = SPARE.with_borrow_mut(std::mem::take);
        } else if self.parts.is_empty() && self.sent > 0 && self.sent * 2 >= self.buf.len() {
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
        self.buf.extend_from_slice(header);
        match payload {
            Payload::Owned(data) if data.len() >= BY_REFERENCE => {
                if self.parts.capacity() == 0 {
                    self.parts = PARTS_SPARE.with_borrow_mut(std::mem::take);
                }
                self.parts_len += data.len();
                self.parts.push_back(Part {
                    at: self.buf.len(),
                    data,
                });
            }
            Payload::Owned(data) => self.buf.extend_from_slice(&data),
            Payload::Borrowed(data) => self.buf.extend_from_slice(data),
        }
    }

    /// Writes until everything is out (then releases the buffer) or the stream blocks.
    pub(super) fn write_to(&mut self, stream: &mut impl Write) -> io::Result<()> {
        while !self.is_empty() {
            let n = self.write_once(stream)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset while sending",
                ));
            }
            self.advance(n);
        }
        self.release();
        Ok(())
    }

    fn write_once(&self, stream: &mut impl Write) -> io::Result<usize> {
        if self.parts.is_empty() {
            return stream.write(&self.buf[self.sent..]);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = 0;
        let mut pos = self.sent;
        for (i, part) in self.parts.iter().enumerate() {
            if n + 2 > MAX_SLICES {
                break;
            }
            if pos < part.at {
                slices[n] = IoSlice::new(&self.buf[pos..part.at]);
                n += 1;
                pos = part.at;
            }
            let skip = if i == 0 { self.part_sent } else { 0 };
            slices[n] = IoSlice::new(&part.data[skip..]);
            n += 1;
        }
        if n < MAX_SLICES && pos < self.buf.len() && self.parts.back().is_some_and(|p| p.at == pos)
        {
            slices[n] = IoSlice::new(&self.buf[pos..]);
            n += 1;
        }
        stream.write_vectored(&slices[..n])
    }

    /// Marks `n` more bytes as written.
    fn advance(&mut self, mut n: usize) {
        while let Some(part) = self.parts.front() {
            let gap = part.at - self.sent;
            if n < gap {
                self.sent += n;
                return;
            }
            self.sent += gap;
            n -= gap;
            let rest = part.data.len() - self.part_sent;
            if n < rest {
                self.part_sent += n;
                return;
            }
            n -= rest;
            self.parts_len -= part.data.len();
            self.part_sent = 0;
            self.parts.pop_front();
        }
        self.sent += n;
    }

    /// Everything is written: the buffer goes back to the thread's spare.
    fn release(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        self.sent = 0;
        if self.parts.capacity() > 0 {
            let parts = std::mem::take(&mut self.parts);
            if parts.capacity() <= PARTS_SPARE_MAX {
                PARTS_SPARE.with_borrow_mut(|spare| {
                    if spare.capacity() < parts.capacity() {
                        *spare = parts;
                    }
                });
            }
        }
        if buf.capacity() > 0 && buf.capacity() <= SPARE_MAX {
            buf.clear();
            SPARE.with_borrow_mut(|spare| {
                if spare.capacity() < buf.capacity() {
                    *spare = buf;
                }
            });
        }
    }
}

/// A frame's payload: owned ones may be queued without a copy.
pub(super) enum Payload<'a> {
    Owned(Bytes),
    Borrowed(&'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `step` bytes per write, recording the number of slices offered.
    struct Trickle {
        step: usize,
        got: Vec<u8>,
        slices: Vec<usize>,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.slices.push(bufs.len());
            let mut left = self.step;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
            }
            Ok(self.step - left)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn interleaved_small_and_large_payloads_come_out_in_order_at_any_write_size() {
        let large: Vec<Bytes> = (0..20u8)
            .map(|i| Bytes::from(vec![i; BY_REFERENCE + i as usize * 100]))
            .collect();
        let mut expected = Vec::new();
        for step in [1, 7, 100, 4096, 1 << 20] {
            let mut out = Output::default();
            expected.clear();
            for (i, data) in large.iter().enumerate() {
                out.push(&[0xA0, i as u8], Payload::Borrowed(b"small"));
                expected.extend_from_slice(&[0xA0, i as u8]);
                expected.extend_from_slice(b"small");
                out.push(&[0xB0], Payload::Owned(data.clone()));
                expected.push(0xB0);
                expected.extend_from_slice(data);
            }
            assert_eq!(out.unsent(), expected.len());
            let mut sink = Trickle {
                step,
                got: Vec::new(),
                slices: Vec::new(),
            };
            out.write_to(&mut sink).unwrap();
            assert_eq!(sink.got, expected, "step {step}");
            assert!(sink.slices.iter().all(|&n| n <= MAX_SLICES));
            assert!(out.is_empty());
            assert_eq!(out.held(), 0);
        }
    }
}
