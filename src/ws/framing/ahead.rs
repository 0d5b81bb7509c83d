//! The byte stream the framing reads: any `Read + Write`, which may also tell how many bytes
//! a read could take now (a socket's `FIONREAD`), to size the buffer of a large payload.

use std::io::{self, Read, Write};

/// A byte stream that may tell how many bytes a read could take now.
pub(crate) trait Ahead: Read + Write {
    /// Bytes ready to read without waiting; 0 when unknown.
    fn available(&mut self) -> usize {
        0
    }
}

/// A stream that tells nothing ahead.
pub(super) struct Untold<'a, S>(pub(super) &'a mut S);

impl<S: Read + Write> Read for Untold<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        self.0.read_vectored(bufs)
    }
}

impl<S: Read + Write> Write for Untold<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<S: Read + Write> Ahead for Untold<'_, S> {}
