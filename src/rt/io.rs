//! The one stream type the layers above see: any byte stream, with an optional readiness
//! hint; TCP on async-io's reactor, with a `poll_close` that half-closes.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};

/// A connection's byte stream.
pub(crate) type Stream = Box<dyn Io>;

/// Any byte stream a connection can run on.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {
    /// Called after a read that returned less than it was offered (the socket is empty):
    /// registers for the next readiness event and says whether the stream can tell
    /// readiness (a socket registered with the run loop's reactor); `false` by default.
    ///
    /// The connection then waits in [`poll_readable`](Self::poll_readable) instead of
    /// reading again: the read that would return `WouldBlock` is a syscall per message saved.
    fn arm_readable(&mut self, _cx: &mut Context<'_>) -> bool {
        false
    }

    /// After [`arm_readable`](Self::arm_readable) returned `true`: `Ready` once the stream
    /// reported readiness (exactly: a task woken for another reason finds it `Pending`),
    /// `Pending` (the waker registered) until then.
    fn poll_readable(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Bytes a read could take now without waiting (`FIONREAD`); 0 when the stream cannot
    /// tell. Sizes the buffer of a large payload by what has arrived of it.
    fn available(&mut self) -> usize {
        0
    }
}

/// Any `AsyncRead + AsyncWrite` stream as an [`Io`] (with no readiness hint).
#[derive(Debug)]
pub(crate) struct AnyStream<S>(pub(crate) S);

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Io for AnyStream<S> {}

impl<S: AsyncRead + Unpin> AsyncRead for AnyStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read_vectored(cx, bufs)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AnyStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// Connects to `addr` over TCP (with `TCP_NODELAY`), on async-io's reactor: the crate's
/// own outbound links (the MQTT bridge's broker connection).
#[cfg(feature = "mqtt")]
pub(crate) async fn connect(addr: std::net::SocketAddr) -> io::Result<Stream> {
    let stream = Async::<TcpStream>::connect(addr).await?;
    let _ = stream.get_ref().set_nodelay(true);
    Ok(Box::new(AsyncIoStream(stream)))
}

/// A TCP stream on async-io's reactor whose `poll_close` half-closes (`shutdown(Write)`),
/// which `Async<TcpStream>`'s does not: the close handshake and HTTP rejections rely on
/// the peer seeing EOF.
///
/// It gives no readiness hint: async-io's documented API tells readiness only as "an event
/// since the last `Pending`", which cannot say that a socket emptied by a short read has
/// data again without another read. So a connection reads until `WouldBlock` (one `EAGAIN`
/// per message more than on the run loop's own reactor).
#[derive(Debug)]
pub(crate) struct AsyncIoStream(pub(crate) Async<TcpStream>);

impl Io for AsyncIoStream {}

impl AsyncRead for AsyncIoStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read_vectored(cx, bufs)
    }
}

impl AsyncWrite for AsyncIoStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.get_ref().shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}
