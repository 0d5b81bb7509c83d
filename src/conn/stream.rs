//! The byte stream under a connection, as tungstenite's blocking `Read`/`Write` for one poll.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use tungstenite::error::Error as WsError;

/// Any byte stream a connection can run on.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
/// Read/Write over the async stream for one poll: `Pending` becomes `WouldBlock`.
/// Reads stop for this turn once `read_left` bytes were read (the task is woken to continue
/// after the other connections had their turn); `heard` records that the peer sent something.
pub(super) struct Live<'a, 'b> {
    pub(super) io: &'a mut dyn Io,
    pub(super) cx: &'a mut Context<'b>,
    pub(super) read_left: &'a mut usize,
    pub(super) heard: &'a mut bool,
}

impl Read for Live<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if *self.read_left == 0 {
            self.cx.waker().wake_by_ref();
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match Pin::new(&mut *self.io).poll_read(self.cx, buf) {
            Poll::Ready(Ok(n)) => {
                *self.read_left = self.read_left.saturating_sub(n);
                *self.heard |= n > 0;
                Ok(n)
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Live<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
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
