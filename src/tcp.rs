//! A TCP stream whose `poll_close` half-closes (`shutdown(Write)`), which `Async<TcpStream>`
//! does not: the close handshake and HTTP rejections rely on the peer seeing EOF. And the
//! listener side: the acceptor, and room for the connections' descriptors.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};

use crate::conn::Io;

#[derive(Debug)]
pub(crate) struct Tcp(pub(crate) Async<TcpStream>);

impl AsyncRead for Tcp {
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
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read_vectored(cx, bufs)
    }
}

impl AsyncWrite for Tcp {
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
        bufs: &[io::IoSlice<'_>],
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

impl Io for Tcp {
    fn arm_readable(&mut self, cx: &mut Context<'_>) -> bool {
        // async-io still counts the readiness event behind the read just made as
        // unconsumed: the first call consumes it, the second registers for the next one
        // (re-arming the socket in the poller, which reports at once if data arrived
        // meanwhile). `Pending` at the first call: already registered, nothing delivered.
        match self.0.poll_readable(cx) {
            Poll::Ready(Ok(())) => self.0.poll_readable(cx).is_pending(),
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
        }
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }
}

/// Grows the process's descriptor table to hold `connections` more descriptors (and an
/// eighth more, for connections refused over the limit), on the calling thread before
/// `serve` accepts anything; as far as `RLIMIT_NOFILE` allows, and to at most 65,536 entries.
///
/// Linux grows the table by doubling when a descriptor number does not fit, and in a
/// process with more than one thread (async-io's, a signal thread) it then waits for an RCU
/// grace period: 13-22 ms inside the `accept4` that crosses 256, 512, 1,024 ... descriptors,
/// while every connection of the serving thread waits too (BENCHMARKS.md, 2026-12-01).
/// Done here, the wait is paid once, before the first client. The table is rounded up to a
/// power of two, 8 bytes of kernel memory per entry (and shared by every `serve` call of
/// the process).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn reserve_descriptors(listener: &TcpListener, connections: usize) {
    use std::os::fd::AsRawFd;
    const MOST: i32 = (1 << 16) - 1; // a table of 65,536
    let room = connections.min(MOST as usize) as i32;
    let mut highest = listener
        .as_raw_fd()
        .saturating_add(room + room / 8 + 16)
        .min(MOST);
    // Duplicating the listener to a descriptor number at least `highest` grows the table to
    // hold it; the duplicate is closed at once, the table keeps its size. Above the limit the
    // call fails (`EINVAL`): an eighth less each time, down to what the smallest table holds.
    while highest > 64 {
        if rustix::io::fcntl_dupfd_cloexec(listener, highest).is_ok() {
            return;
        }
        highest -= highest / 8;
    }
}

/// Elsewhere the table is left as it is.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn reserve_descriptors(_listener: &TcpListener, _connections: usize) {}

/// The listener of a `serve` call: on the run loop's own reactor inside
/// [`block_on`](crate::block_on), on async-io's under any other executor.
#[derive(Debug)]
pub(crate) enum Acceptor {
    Async(Async<TcpListener>),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Edge(crate::rt::EdgeListener),
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener) -> io::Result<Self> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(reactor) = crate::rt::current() {
            return Ok(Acceptor::Edge(crate::rt::EdgeListener::new(
                reactor, listener,
            )?));
        }
        Ok(Acceptor::Async(Async::new(listener)?))
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Acceptor::Async(listener) => listener.get_ref().local_addr(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Acceptor::Edge(listener) => listener.local_addr(),
        }
    }

    /// The next connection, with `TCP_NODELAY` set.
    pub(crate) async fn accept(&mut self) -> io::Result<(Box<dyn Io>, SocketAddr)> {
        match self {
            Acceptor::Async(listener) => {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.get_ref().set_nodelay(true);
                Ok((Box::new(Tcp(stream)), peer))
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Acceptor::Edge(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok((Box::new(stream), peer))
            }
        }
    }
}
