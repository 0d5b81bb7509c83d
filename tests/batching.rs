//! Write batching, observed on a mock stream that counts writes: replies to requests that
//! arrive together leave in one write, a lone request's reply leaves at once.

mod common;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{frame, scaled, upgrade_head, Echo};
use futures_lite::{AsyncRead, AsyncWrite};
use nestforge_edge::prelude::*;

/// Input fed by the test, output and write calls recorded.
#[derive(Default)]
struct Pipe {
    input: Vec<u8>,
    output: Vec<u8>,
    writes: usize,
    reader: Option<Waker>,
}

#[derive(Clone, Default)]
struct Mock(Arc<Mutex<Pipe>>);

impl Mock {
    fn feed(&self, bytes: &[u8]) {
        let mut pipe = self.0.lock().unwrap();
        pipe.input.extend_from_slice(bytes);
        if let Some(w) = pipe.reader.take() {
            w.wake();
        }
    }
    fn writes(&self) -> usize {
        self.0.lock().unwrap().writes
    }
}

impl AsyncRead for Mock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut pipe = self.0.lock().unwrap();
        if pipe.input.is_empty() {
            pipe.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(pipe.input.len());
        buf[..n].copy_from_slice(&pipe.input[..n]);
        pipe.input.drain(..n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Mock {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut pipe = self.0.lock().unwrap();
        pipe.writes += 1;
        pipe.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

module! { struct AppModule { providers: [] } }

/// Runs the connection on this thread while the steps run in order, each polled until it
/// holds (at most 5 s each, scaled).
fn settle(server: &nestforge_edge::Server, mock: &Mock, steps: &[&dyn Fn(&Mock) -> bool]) {
    let fut = server.serve_connection(mock.clone(), None);
    futures_lite::future::block_on(futures_lite::future::or(fut, async {
        for step in steps {
            let deadline = std::time::Instant::now() + scaled(Duration::from_secs(5));
            while !step(mock) {
                assert!(std::time::Instant::now() < deadline, "timed out");
                async_io::Timer::after(Duration::from_millis(5)).await;
            }
        }
    }));
}

/// Bytes written after the 101 head.
fn frames_len(m: &Mock) -> usize {
    let pipe = m.0.lock().unwrap();
    match pipe.output.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => pipe.output.len() - (i + 4),
        None => 0,
    }
}

#[test]
fn pipelined_requests_get_their_replies_in_one_write() {
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway(Echo)
        .into_server()
        .unwrap();
    let mock = Mock::default();
    mock.feed(upgrade_head("/ws").as_bytes());
    let burst: Vec<u8> = (0..16)
        .flat_map(|i| frame(true, 1, format!("m{i:02}").as_bytes()))
        .collect();
    settle(
        &server,
        &mock,
        &[
            // the 101 goes out in one write
            &|m| m.writes() == 1,
            &|m| {
                m.feed(&burst);
                true
            },
            // 16 replies of 2 + 3 bytes: all of them in one more write
            &|m| frames_len(m) == 16 * 5,
            &|m| {
                assert_eq!(m.writes(), 2, "16 replies, one write");
                m.feed(&frame(true, 1, b"one"));
                true
            },
            // a lone request is answered at once, in its own write
            &|m| frames_len(m) == 16 * 5 + 5,
            &|m| {
                assert_eq!(m.writes(), 3);
                true
            },
        ],
    );
}

/// `Echo` through the `Stream`/`Sink` halves of `split()`, in one loop.
fn split_echo(_: WebSocketContext, socket: WebSocket) -> impl std::future::Future<Output = ()> {
    use futures::{SinkExt, StreamExt};
    async move {
        let (mut sender, mut receiver) = socket.split();
        while let Some(Ok(m)) = receiver.next().await {
            if m.is_text() && sender.send(m).await.is_err() {
                break;
            }
        }
    }
}

/// The sender half in another task on the same thread, fed through a bounded channel;
/// `send_all` flushes when the channel is momentarily empty.
fn split_echo_two_tasks(
    _: WebSocketContext,
    socket: WebSocket,
) -> impl std::future::Future<Output = ()> {
    use futures::{SinkExt, StreamExt};
    async move {
        let (mut sender, mut receiver) = socket.split();
        let (mut tx, rx) = futures::channel::mpsc::channel::<Message>(16);
        let tasks = async_executor::Executor::new();
        tasks
            .run(async {
                let sending = tasks.spawn(async move {
                    let _ = sender.send_all(&mut rx.map(Ok)).await;
                });
                while let Some(Ok(m)) = receiver.next().await {
                    if m.is_text() && tx.send(m).await.is_err() {
                        break;
                    }
                }
                drop(tx);
                sending.await;
            })
            .await;
    }
}

fn burst_then_lone(server: nestforge_edge::Server, lone_writes: usize) {
    let mock = Mock::default();
    mock.feed(upgrade_head("/ws").as_bytes());
    let burst: Vec<u8> = (0..16)
        .flat_map(|i| frame(true, 1, format!("m{i:02}").as_bytes()))
        .collect();
    settle(
        &server,
        &mock,
        &[
            &|m| m.writes() == 1,
            &|m| {
                m.feed(&burst);
                true
            },
            &|m| frames_len(m) == 16 * 5,
            &|m| {
                assert_eq!(m.writes(), 1 + lone_writes, "16 replies, one write");
                m.feed(&frame(true, 1, b"one"));
                true
            },
            &|m| frames_len(m) == 16 * 5 + 5,
            &|m| {
                assert_eq!(m.writes(), 2 + lone_writes);
                true
            },
        ],
    );
}

#[test]
fn split_halves_in_one_loop_keep_the_batching() {
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway(split_echo)
        .into_server()
        .unwrap();
    burst_then_lone(server, 1);
}

#[test]
fn a_sender_half_in_another_task_batches_with_send_all() {
    let server = NestForgeFactory::<AppModule>::create()
        .unwrap()
        .with_websocket_gateway(split_echo_two_tasks)
        .into_server()
        .unwrap();
    burst_then_lone(server, 1);
}
