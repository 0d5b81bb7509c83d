//! `Conn` on a mock stream: when `send` flushes, the read-ahead, the fairness budget and the
//! close sequence.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_lite::future::{block_on, poll_fn};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use super::Conn;
use crate::ws::mock::{client_frame, text_frame, Mock};
use crate::ws::WebSocketConfig;

fn text(s: &str) -> Vec<u8> {
    text_frame(s)
}

fn close_frame(code: u16) -> Vec<u8> {
    client_frame(8, &code.to_be_bytes())
}

fn conn(mock: &Mock, config: WebSocketConfig) -> Conn {
    mock.conn(&[], config)
}

fn recv(conn: &mut Conn) -> Option<Message> {
    block_on(poll_fn(|cx| conn.poll_recv(cx))).map(Result::unwrap)
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_lone_reply_is_flushed_at_once() {
    let mock = Mock::default();
    let mut conn = conn(&mock, WebSocketConfig::default());
    mock.feed(&text("a"));
    assert_eq!(recv(&mut conn), Some(Message::text("a")));
    block_on(conn.send(Message::text("A"))).unwrap();
    assert_eq!(mock.writes(), 1);
    assert_eq!(mock.frames(), [(1, b"A".to_vec())]);
}

#[test]
fn replies_wait_while_requests_are_read_ahead() {
    let mock = Mock::default();
    let mut conn = conn(&mock, WebSocketConfig::default());
    mock.feed(&[text("a"), text("b"), text("c")].concat());
    for (request, reply) in [("a", "A"), ("b", "B")] {
        assert_eq!(recv(&mut conn), Some(Message::text(request)));
        block_on(conn.send(Message::text(reply))).unwrap();
        // Another request is buffered: read ahead, the reply is held back.
        assert!(conn.peeked.is_some());
        assert_eq!(mock.writes(), 0);
    }
    assert_eq!(recv(&mut conn), Some(Message::text("c")));
    block_on(conn.send(Message::text("C"))).unwrap();
    // Nothing left behind the last request: the three replies leave in one write.
    assert_eq!(mock.writes(), 1);
    let frames = mock.frames();
    let replies: Vec<_> = frames.iter().map(|(_, p)| p.as_slice()).collect();
    assert_eq!(replies, [b"A", b"B", b"C"]);
}

/// A masked text frame of 100 `x` (a 16-bit length, mask key 0).
fn long_text() -> Vec<u8> {
    text_frame(&"x".repeat(100))
}

/// A connection with 64-byte reads (and `config`) that has received "a": the read that
/// brought it took all 64 bytes it was offered, ending inside a 100-byte frame whose rest
/// is already in the socket.
fn a_received_and_a_frame_on_its_way(config: WebSocketConfig) -> (Mock, Conn) {
    a_received_before(config, &long_text())
}

/// A connection with 64-byte reads that received "a", with `next` behind it in the socket.
fn a_received_before(config: WebSocketConfig, next: &[u8]) -> (Mock, Conn) {
    let mock = Mock::default();
    let mut conn = conn(&mock, config.read_buffer_size(64));
    mock.feed(&[&text("a")[..], next].concat());
    assert_eq!(recv(&mut conn), Some(Message::text("a")));
    (mock, conn)
}

#[test]
fn a_reply_waits_for_the_rest_of_a_frame_a_full_read_cut() {
    // The rest of the frame is in the socket, so "A" waits and leaves with "B" in one write.
    let (mock, mut conn) = a_received_and_a_frame_on_its_way(WebSocketConfig::default());
    block_on(conn.send(Message::text("A"))).unwrap();
    assert!(conn.peeked.is_none() && conn.framing.holds_partial_frame());
    assert_eq!(mock.writes(), 0);
    assert_eq!(recv(&mut conn), Some(Message::text("x".repeat(100))));
    block_on(conn.send(Message::text("B"))).unwrap();
    assert_eq!(mock.writes(), 1);
    assert_eq!(mock.frames(), [(1, b"A".to_vec()), (1, b"B".to_vec())]);
}

#[test]
fn a_sink_flush_does_not_wait_for_a_frame_on_its_way() {
    // `Sink::poll_flush` may run on another task than the reader's (after `split`): only a
    // whole request read ahead holds it back, not one still arriving.
    let (mock, mut conn) = a_received_and_a_frame_on_its_way(WebSocketConfig::default());
    let mut sending = super::Sending::new(Message::text("A"));
    block_on(poll_fn(|cx| {
        conn.poll_send(cx, &mut sending, super::Flush::Batched)
    }))
    .unwrap();
    assert_eq!(mock.frames(), [(1, b"A".to_vec())]);
}

#[test]
fn replies_held_for_a_frame_on_its_way_stop_at_hold_back() {
    let (mock, mut conn) = a_received_and_a_frame_on_its_way(WebSocketConfig::default());
    block_on(conn.send(Message::binary(vec![0; super::send::HOLD_BACK - 100]))).unwrap();
    assert_eq!(mock.writes(), 0, "below HOLD_BACK: held");
    block_on(conn.send(Message::binary(vec![0; 100]))).unwrap();
    // (The mock takes one buffer of a vectored write at a time.)
    assert!(mock.writes() > 0, "at HOLD_BACK: written");
}

#[test]
fn a_held_reply_leaves_when_the_fairness_budget_yields() {
    // "A" is held, then the budget (one message) is spent, and the turn ends with the
    // reply written.
    let config = WebSocketConfig::default().fairness_budget(1);
    let (mock, mut conn) = a_received_and_a_frame_on_its_way(config);
    block_on(conn.send(Message::text("A"))).unwrap();
    assert_eq!(mock.writes(), 0);
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    assert!(conn
        .poll_recv(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken to go on");
    assert_eq!(mock.frames(), [(1, b"A".to_vec())]);
}

#[test]
fn a_reply_waits_no_longer_than_the_input() {
    // A short read (the socket emptied) ends inside a frame: the rest is not here yet, the
    // reply leaves at once.
    let (mock, mut cut) = a_received_before(WebSocketConfig::default(), &long_text()[..20]);
    block_on(cut.send(Message::text("A"))).unwrap();
    assert_eq!(mock.writes(), 1);

    // A read that fills its buffer exactly where the sender stopped: the reply is held
    // back, and leaves when the reader finds the socket empty.
    let (mock, mut held) = a_received_before(WebSocketConfig::default(), &long_text()[..57]);
    block_on(held.send(Message::text("A"))).unwrap();
    assert_eq!(mock.writes(), 0);
    let waker = Waker::from(Arc::new(CountingWaker::default()));
    assert!(held
        .poll_recv(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(mock.frames(), [(1, b"A".to_vec())]);
}

#[test]
fn the_fairness_budget_yields_and_wakes_itself() {
    let mock = Mock::default();
    let mut conn = conn(&mock, WebSocketConfig::default().fairness_budget(2));
    mock.feed(&[text("1"), text("2"), text("3")].concat());
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    let mut got = Vec::new();
    for _ in 0..2 {
        match conn.poll_recv(&mut cx) {
            Poll::Ready(Some(Ok(m))) => got.push(m),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    // Budget spent: yield, but ask to be polled again at once.
    assert!(conn.poll_recv(&mut cx).is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    match conn.poll_recv(&mut cx) {
        Poll::Ready(Some(Ok(m))) => got.push(m),
        other => panic!("expected a message, got {other:?}"),
    }
    assert_eq!(
        got,
        [Message::text("1"), Message::text("2"), Message::text("3")]
    );
}

#[test]
fn the_peers_close_is_answered_and_reported() {
    let mock = Mock::default();
    let mut conn = conn(&mock, WebSocketConfig::default());
    mock.feed(&close_frame(1000));
    assert!(matches!(recv(&mut conn), Some(Message::Close(_))));
    mock.end();
    assert_eq!(recv(&mut conn), None);
    let info = block_on(conn.finish(CloseCode::Normal));
    assert_eq!((info.code, info.by_peer), (1000, true));
    // Our Close echoes the peer's, once.
    let closes = mock.frames().into_iter().filter(|(op, _)| *op == 8).count();
    assert_eq!(closes, 1);
    assert!(mock.0.lock().unwrap().closed);
}

#[test]
fn our_close_waits_for_the_peers_close() {
    let mock = Mock::default();
    let mut conn = conn(&mock, WebSocketConfig::default());
    let peer = mock.clone();
    let finish = conn.finish(CloseCode::Normal);
    let info = block_on(futures_lite::future::zip(finish, async move {
        // The server's Close goes out first, then the peer answers and hangs up.
        while peer.frames().is_empty() {
            crate::rt::Timer::after(Duration::from_millis(1)).await;
        }
        peer.feed(&close_frame(1000));
        peer.end();
    }))
    .0;
    assert_eq!(mock.frames(), [(8, 1000u16.to_be_bytes().to_vec())]);
    assert_eq!((info.code, info.by_peer), (1000, false));
}

#[test]
fn a_protocol_error_closes_without_waiting_for_the_peer() {
    let mock = Mock::default();
    // Long enough to notice a wait for the peer's Close.
    let mut conn = conn(
        &mock,
        WebSocketConfig::default().close_timeout(Duration::from_secs(30)),
    );
    // An unmasked frame from a client.
    mock.feed(&[0x81, 0x01, b'x']);
    assert!(matches!(
        block_on(poll_fn(|cx| conn.poll_recv(cx))),
        Some(Err(_))
    ));
    assert_eq!(recv(&mut conn), None);
    mock.end();
    let started = std::time::Instant::now();
    let info = block_on(conn.finish(CloseCode::Normal));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!((info.code, info.by_peer), (1002, false));
    assert_eq!(mock.frames()[0].0, 8);
}

#[test]
fn a_held_reply_goes_out_before_the_close_of_a_bad_frame() {
    let mock = Mock::default();
    let mut conn = conn(
        &mock,
        WebSocketConfig::default()
            .read_buffer_size(64)
            .close_timeout(Duration::from_secs(30)),
    );
    // "a", then the start of a text frame whose end is not UTF-8.
    let mut bad = long_text();
    *bad.last_mut().unwrap() = 0xff;
    mock.feed(&[&text("a")[..], &bad[..57]].concat());
    assert_eq!(recv(&mut conn), Some(Message::text("a")));
    block_on(conn.send(Message::text("A"))).unwrap();
    assert!(conn.peeked.is_none());
    assert_eq!(mock.writes(), 0, "held for the frame on its way");
    mock.feed(&bad[57..]);
    assert!(matches!(
        block_on(poll_fn(|cx| conn.poll_recv(cx))),
        Some(Err(_))
    ));
    mock.end();
    let info = block_on(conn.finish(CloseCode::Normal));
    assert_eq!((info.code, info.by_peer), (1007, false));
    // The reply to "a" is not lost: it leaves first, then the Close.
    let frames = mock.frames();
    assert_eq!(frames[0], (1, b"A".to_vec()));
    assert_eq!(frames[1].0, 8);
}

#[test]
fn a_held_reply_is_written_when_the_stream_ends_inside_a_frame() {
    let mock = Mock::default();
    let mut conn = conn(&mock, WebSocketConfig::default().read_buffer_size(64));
    mock.feed(&[&text("a")[..], &long_text()[..57]].concat());
    mock.end();
    assert_eq!(recv(&mut conn), Some(Message::text("a")));
    block_on(conn.send(Message::text("A"))).unwrap();
    assert_eq!(mock.writes(), 0, "held for the frame on its way");
    // The rest never comes: the read fails, and the reply owed to "a" is still written.
    assert!(block_on(poll_fn(|cx| conn.poll_recv(cx))).is_some_and(|r| r.is_err()));
    let _ = block_on(conn.finish(CloseCode::Normal));
    assert_eq!(mock.frames().first(), Some(&(1, b"A".to_vec())));
}

#[test]
fn send_after_the_close_is_refused() {
    let mock = Mock::default();
    let mut conn = conn(&mock, WebSocketConfig::default());
    mock.feed(&close_frame(1001));
    assert!(matches!(recv(&mut conn), Some(Message::Close(_))));
    mock.end();
    assert_eq!(recv(&mut conn), None);
    assert!(block_on(conn.send(Message::text("late"))).is_err());
}
