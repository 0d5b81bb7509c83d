//! The run loop and its reactor on loopback sockets.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::poll_fn;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::block_on;
use super::net::{EpollListener, EpollStream};
use super::reactor::Registered;
use super::run::current;
use crate::rt::Io;

const CHUNK: usize = 64 * 1024;

/// Ready once another thread set it (and woke the waker it kept).
#[derive(Default)]
struct Flag(Mutex<(bool, Option<Waker>)>);

struct WaitFlag(Arc<Flag>);

impl Future for WaitFlag {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0 .0.lock().unwrap();
        if state.0 {
            return Poll::Ready(());
        }
        state.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn wakes_from_another_thread_and_runs_async_io_timers() {
    let flag = Arc::new(Flag::default());
    let setter = Arc::clone(&flag);
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        let mut state = setter.0.lock().unwrap();
        state.0 = true;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    });
    let started = Instant::now();
    let out = block_on(async {
        assert!(
            current().is_some(),
            "the loop's reactor is current inside it"
        );
        WaitFlag(flag).await;
        async_io::Timer::after(Duration::from_millis(20)).await;
        7
    });
    assert_eq!(out, 7);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(current().is_none(), "and not after it");
    thread.join().unwrap();
}

#[test]
fn a_nested_block_on_runs_without_the_outer_reactor() {
    block_on(async {
        let inner = block_on(async { current().is_none() });
        assert!(inner, "no reactor current in the nested block_on");
        assert!(current().is_some(), "the outer one back after it");
    });
}

#[test]
fn a_nested_block_on_waits_for_async_io_timers() {
    block_on(async {
        let started = Instant::now();
        block_on(crate::rt::Timer::after(Duration::from_millis(20)));
        assert!(started.elapsed() >= Duration::from_millis(20));
    });
}

/// A connected pair: the server side on the loop's reactor, the client a blocking socket.
async fn pair() -> (EpollStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut listener = EpollListener::new(current().unwrap(), listener).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let (server, _) = listener.accept_stream().await.unwrap();
    (server, client)
}

/// A connected pair: the server side registered with the loop's reactor (with no listener
/// registered meanwhile, so that it takes the slot freed last), the client a blocking socket.
fn registered_pair() -> (EpollStream, TcpStream) {
    let (server, client) = plain_pair();
    (
        EpollStream(current().unwrap().register(server).unwrap()),
        client,
    )
}

/// A connected pair of plain sockets (the first to be registered by the test).
fn plain_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    (server, client)
}

#[test]
fn a_read_waits_for_data_and_a_write_for_room() {
    block_on(async {
        let (mut server, mut client) = pair().await;
        // Nothing sent yet: the read waits, then the bytes written meanwhile arrive.
        let mut first = true;
        let mut buf = [0; 16];
        let n = poll_fn(|cx| {
            let polled = Pin::new(&mut server).poll_read(cx, &mut buf);
            if first {
                assert!(polled.is_pending());
                first = false;
                client.write_all(b"hello").unwrap();
            }
            polled
        })
        .await
        .unwrap();
        assert_eq!(&buf[..n], b"hello");

        // Fill the socket until a write waits, then drain it from another thread.
        client.set_nonblocking(false).unwrap();
        let chunk = vec![7u8; CHUNK];
        let mut written = 0;
        loop {
            let polled =
                poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll_write(cx, &chunk))).await;
            match polled {
                Poll::Ready(n) => written += n.unwrap(),
                Poll::Pending => break,
            }
        }
        assert!(written > 0);
        let reader = std::thread::spawn(move || {
            let mut total = 0;
            let mut buf = vec![0; CHUNK];
            while total < written + CHUNK {
                total += client.read(&mut buf).unwrap();
            }
            total
        });
        server.write_all(&chunk).await.unwrap();
        assert_eq!(reader.join().unwrap(), written + CHUNK);

        // EOF after the peer closed.
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    });
}

#[test]
fn the_end_of_the_stream_is_seen_after_a_short_read() {
    block_on(async {
        let (mut server, mut client) = pair().await;
        client.write_all(b"bye").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        // The loop takes the event (data and the peer's FIN) before the read.
        async_io::Timer::after(Duration::from_millis(50)).await;
        let mut buf = [0; 16];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"bye");
        // The short read emptied the socket; the FIN raises no new edge, yet the end of
        // the stream stays visible (a closed direction is never cleared).
        let ended = poll_fn(|cx| {
            server.arm_readable(cx);
            Poll::Ready(server.poll_readable(cx).is_ready())
        })
        .await;
        assert!(ended, "readiness kept after the peer's FIN");
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
    });
}

/// Fails the test instead of hanging when `future` takes longer than `secs`.
async fn within<T>(secs: u64, future: impl Future<Output = T>) -> T {
    // The deadline is polled first: a future that would complete only because the
    // deadline's wake-up polled it again still fails.
    let deadline = async {
        async_io::Timer::after(Duration::from_secs(secs)).await;
        panic!("timed out after {secs} s");
    };
    futures_lite::future::or(deadline, future).await
}

/// After `stale_peer`'s socket (which left the loop, but whose file may live on) sent data
/// and hung up, `fresh` (registered since, perhaps in the same slot) still waits for its own
/// data and is woken by it: no stale event marked it ready or ended (which would leave a
/// waiting read unwoken).
async fn no_stale_event_reaches(
    stale_peer: TcpStream,
    fresh: &mut EpollStream,
    mut fresh_peer: TcpStream,
) {
    let mut stale_peer = stale_peer;
    stale_peer.write_all(b"old").unwrap();
    stale_peer.shutdown(std::net::Shutdown::Both).unwrap();
    drop(stale_peer);
    // The loop takes whatever events came meanwhile.
    async_io::Timer::after(Duration::from_millis(50)).await;
    // The read waits, and is woken by the data its own peer sends later.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        fresh_peer.write_all(b"new").unwrap();
        fresh_peer
    });
    let mut buf = [0; 8];
    let n = within(5, fresh.read(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"new");
    drop(writer.join().unwrap());
}

#[test]
fn a_socket_dropped_on_another_thread_sends_no_event_to_the_next_registration() {
    /// A socket whose close waits until the test lets it go: the window between the
    /// moment its owner drops it and the moment its descriptor is closed.
    struct SlowClose(TcpStream, std::sync::mpsc::Receiver<()>);
    impl std::os::fd::AsFd for SlowClose {
        fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            self.0.as_fd()
        }
    }
    impl Drop for SlowClose {
        fn drop(&mut self) {
            let _ = self.1.recv_timeout(Duration::from_secs(10));
        }
    }
    block_on(within(10, async {
        let (server, stale_peer) = plain_pair();
        let (release, released) = std::sync::mpsc::channel();
        let stale: Registered<SlowClose> = current()
            .unwrap()
            .register(SlowClose(server, released))
            .unwrap();
        // Dropped on another thread, which then waits to close the descriptor.
        let dropper = std::thread::spawn(move || drop(stale));
        std::thread::sleep(Duration::from_millis(50));
        // A new connection registers meanwhile, and the old one's peer writes and hangs up.
        let (mut fresh, fresh_peer) = registered_pair();
        no_stale_event_reaches(stale_peer, &mut fresh, fresh_peer).await;
        release.send(()).unwrap();
        dropper.join().unwrap();
    }));
}

#[test]
fn a_duplicated_descriptor_sends_no_event_to_the_socket_that_takes_its_slot() {
    block_on(within(10, async {
        let (stale, stale_peer) = registered_pair();
        // A duplicate keeps the socket's file open after the registration's descriptor
        // closes (as a child process's inherited copy would).
        let duplicate = stale.0.get().try_clone().unwrap();
        drop(stale);
        let (mut fresh, fresh_peer) = registered_pair();
        no_stale_event_reaches(stale_peer, &mut fresh, fresh_peer).await;
        drop(duplicate);
    }));
}

#[test]
fn a_socket_used_after_its_loop_returned_fails_instead_of_waiting() {
    let (mut server, _client) = block_on(pair());
    // The loop is gone: nothing would ever report readiness again.
    let mut buf = [0; 8];
    let read = futures_lite::future::block_on(within(5, server.read(&mut buf)));
    let err = read.expect_err("a read on a socket whose loop returned");
    assert!(err.to_string().contains("run loop"), "{err}");
    // A loop of its own afterwards does not bring it back.
    block_on(async {
        assert!(
            server.write(b"x").await.is_ok(),
            "writes that need no wait still go"
        );
        assert!(server.read(&mut buf).await.is_err());
    });
}
