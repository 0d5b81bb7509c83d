//! A mock byte stream for the layer's unit tests: input fed by the test, output, write calls
//! and the half-close recorded, writes that can be made to wait (a peer that does not read).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_lite::{AsyncRead, AsyncWrite};

use super::conn::Conn;
use super::{WebSocket, WebSocketConfig};

#[derive(Default)]
pub(crate) struct Pipe {
    pub(crate) input: Vec<u8>,
    /// Reads past the input give end of stream instead of waiting.
    pub(crate) eof: bool,
    pub(crate) output: Vec<u8>,
    pub(crate) writes: usize,
    pub(crate) closed: bool,
    /// Writes wait (a peer that does not read), registering `writer`.
    pub(crate) blocked: bool,
    reader: Option<Waker>,
    pub(crate) writer: Option<Waker>,
}

/// A stream for a connection in tests; clones share the pipe.
#[derive(Clone, Default)]
pub(crate) struct Mock(pub(crate) Arc<Mutex<Pipe>>);

impl Mock {
    /// More input; wakes a waiting read.
    pub(crate) fn feed(&self, bytes: &[u8]) {
        let mut pipe = self.0.lock().unwrap();
        pipe.input.extend_from_slice(bytes);
        if let Some(w) = pipe.reader.take() {
            w.wake();
        }
    }

    /// The end of the input; wakes a waiting read.
    pub(crate) fn end(&self) {
        let mut pipe = self.0.lock().unwrap();
        pipe.eof = true;
        if let Some(w) = pipe.reader.take() {
            w.wake();
        }
    }

    pub(crate) fn writes(&self) -> usize {
        self.0.lock().unwrap().writes
    }

    /// Writes wait (`true`) or go through again (`false`, waking a waiting write).
    pub(crate) fn block_writes(&self, blocked: bool) {
        let mut pipe = self.0.lock().unwrap();
        pipe.blocked = blocked;
        if let Some(w) = pipe.writer.take().filter(|_| !blocked) {
            w.wake();
        }
    }

    /// The frames written so far: `(opcode, payload)` (payloads under 126 bytes).
    pub(crate) fn frames(&self) -> Vec<(u8, Vec<u8>)> {
        let pipe = self.0.lock().unwrap();
        let (mut out, mut rest) = (Vec::new(), &pipe.output[..]);
        while rest.len() >= 2 {
            let len = usize::from(rest[1] & 0x7f);
            assert!(len < 126, "short frames only");
            out.push((rest[0] & 0x0f, rest[2..2 + len].to_vec()));
            rest = &rest[2 + len..];
        }
        out
    }

    /// A connection over this stream with `input` already received and `config` (pings
    /// and the idle timeout off).
    pub(crate) fn conn(&self, input: &[u8], config: WebSocketConfig) -> Conn {
        let config = config.ping_interval(None).idle_timeout(None);
        Conn::new(
            Box::new(self.clone()),
            input.to_vec(),
            super::Extensions::default(),
            Arc::new(config),
            Arc::default(),
            Arc::default(),
            crate::rt::Deadlines::new(),
        )
    }

    /// A socket over this stream with `input` already received and `config` (pings and the
    /// idle timeout off).
    pub(crate) fn socket(&self, input: &[u8], config: WebSocketConfig) -> WebSocket {
        WebSocket::new(Box::new(self.conn(input, config)), Arc::default())
    }
}

impl crate::rt::Io for Mock {}

impl AsyncRead for Mock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.0.lock().unwrap();
        if pipe.input.is_empty() {
            if pipe.eof {
                return Poll::Ready(Ok(0));
            }
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
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.0.lock().unwrap();
        if pipe.blocked {
            pipe.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        pipe.writes += 1;
        pipe.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.lock().unwrap().closed = true;
        Poll::Ready(Ok(()))
    }
}

/// A masked client frame (mask key 0, so the payload reads as is), with a 16-bit length
/// from 126 bytes.
pub(crate) fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match u8::try_from(payload.len()) {
        Ok(len) if len < 126 => frame.push(0x80 | len),
        _ => {
            frame.push(0x80 | 126);
            let len = u16::try_from(payload.len()).expect("under 64 KiB");
            frame.extend_from_slice(&len.to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(payload);
    frame
}

/// A masked client text frame.
pub(crate) fn text_frame(text: &str) -> Vec<u8> {
    client_frame(1, text.as_bytes())
}
