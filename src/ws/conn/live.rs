//! The byte stream under a connection, as the blocking `Read`/`Write` that
//! [`Framing`](crate::ws::Framing) drives, for one poll.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tungstenite::error::Error as WsError;

use crate::rt::Io;
use crate::ws::framing::Ahead;

/// Read/Write over the async stream for one poll: `Pending` becomes `WouldBlock`.
/// Reads stop for this turn once `read_left` bytes were read (the task is woken to continue
/// after the other connections had their turn); `heard` records that the peer sent something;
/// `socket_empty` that the last read emptied the socket (see [`Io::arm_readable`]), `filled`
/// that it took all it was offered.
pub(super) struct Live<'a, 'b> {
    pub(super) io: &'a mut dyn Io,
    pub(super) cx: &'a mut Context<'b>,
    pub(super) read_left: &'a mut usize,
    pub(super) heard: &'a mut bool,
    pub(super) socket_empty: &'a mut bool,
    pub(super) filled: &'a mut bool,
}

impl Live<'_, '_> {
    /// One read of up to `offered` bytes, made by `read` unless the turn's byte budget is
    /// spent or the socket is known to be empty.
    fn read_with(
        &mut self,
        offered: usize,
        read: impl FnOnce(Pin<&mut dyn Io>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> io::Result<usize> {
        if *self.read_left == 0 {
            self.cx.waker().wake_by_ref();
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if still_empty(self.io, self.cx, self.socket_empty) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match read(Pin::new(&mut *self.io), self.cx) {
            Poll::Ready(Ok(n)) => {
                *self.read_left = self.read_left.saturating_sub(n);
                *self.heard |= n > 0;
                *self.filled = n == offered;
                if n > 0 && n < offered {
                    *self.socket_empty = self.io.arm_readable(self.cx);
                }
                Ok(n)
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => {
                *self.filled = false;
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }
}

impl Ahead for Live<'_, '_> {
    fn available(&mut self) -> usize {
        self.io.available()
    }
}

impl Read for Live<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(buf.len(), |io, cx| io.poll_read(cx, buf))
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let offered = bufs.iter().map(|b| b.len()).sum();
        self.read_with(offered, |io, cx| io.poll_read_vectored(cx, bufs))
    }
}

impl Write for Live<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match Pin::new(&mut *self.io).poll_flush(self.cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Whether a read can be skipped: the last read emptied the socket and the stream has
/// reported no readiness since (it tells exactly, see [`Io::poll_readable`]). Clears
/// `socket_empty` once the socket is to be read (an error polling readiness is left to that
/// read to return).
pub(super) fn still_empty(io: &mut dyn Io, cx: &mut Context<'_>, socket_empty: &mut bool) -> bool {
    if !*socket_empty {
        return false;
    }
    if io.poll_readable(cx).is_pending() {
        return true;
    }
    *socket_empty = false;
    false
}

/// A stream with nothing to read and no room to write: lets tungstenite parse what is
/// already buffered and queue frames without touching the socket.
pub(super) struct Offline;

impl Read for Offline {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Offline {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

pub(super) fn would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}
