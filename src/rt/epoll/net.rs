//! TCP listener and stream on the loop's reactor.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::future::poll_fn;
use futures_lite::{AsyncRead, AsyncWrite};

use super::reactor::{Dir, EpollReactor, Registered};
use crate::rt::{Io, Stream};

/// A listener registered with the loop's reactor; accepted streams are registered too.
#[derive(Debug)]
pub(crate) struct EpollListener {
    listener: Registered<TcpListener>,
    reactor: Rc<EpollReactor>,
}

impl EpollListener {
    pub(super) fn new(reactor: Rc<EpollReactor>, listener: TcpListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(EpollListener {
            listener: reactor.register(listener)?,
            reactor,
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get().local_addr()
    }

    /// The next connection, non-blocking, with `TCP_NODELAY`.
    pub(crate) async fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        let (stream, peer) = self.accept_stream().await?;
        Ok((Box::new(stream), peer))
    }

    pub(super) async fn accept_stream(&mut self) -> io::Result<(EpollStream, SocketAddr)> {
        let (registration, listener) = self.listener.parts();
        let (stream, peer) =
            poll_fn(|cx| registration.poll_io(Dir::Read, cx, &mut || listener.accept())).await?;
        stream.set_nonblocking(true)?;
        let _ = stream.set_nodelay(true);
        Ok((EpollStream(self.reactor.register(stream)?), peer))
    }
}

/// A connection registered with the loop's reactor: no syscall but the read or write itself
/// (readiness comes from edge-triggered events, never re-armed). `poll_close` half-closes.
#[derive(Debug)]
pub(crate) struct EpollStream(pub(super) Registered<TcpStream>);

impl AsyncRead for EpollStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let (registration, stream) = self.get_mut().0.parts();
        registration.poll_io(Dir::Read, cx, &mut || (&*stream).read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let (registration, stream) = self.get_mut().0.parts();
        registration.poll_io(Dir::Read, cx, &mut || (&*stream).read_vectored(bufs))
    }
}

impl AsyncWrite for EpollStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let (registration, stream) = self.get_mut().0.parts();
        registration.poll_io(Dir::Write, cx, &mut || (&*stream).write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let (registration, stream) = self.get_mut().0.parts();
        registration.poll_io(Dir::Write, cx, &mut || (&*stream).write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.get().shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl Io for EpollStream {
    fn arm_readable(&mut self, cx: &mut Context<'_>) -> bool {
        // A short read emptied the socket: data arriving after it raises a new edge (one
        // that came during the read leaves the direction ready: one `EAGAIN` at worst).
        self.0.registration.clear(Dir::Read, cx);
        true
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.registration.poll_ready(Dir::Read, cx).map(Ok)
    }

    fn available(&mut self) -> usize {
        rustix::io::ioctl_fionread(self.0.get()).map_or(0, |n| n as usize)
    }
}
