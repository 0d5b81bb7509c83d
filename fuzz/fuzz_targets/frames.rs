//! Fuzzes the WebSocket framing each connection runs (`src/conn/framing`), with the crate's
//! edge limits (16 KiB frames, 64 KiB messages, 4 KiB read buffer), reading client bytes from an in-memory stream until an error or
//! `WouldBlock`, echoing data messages and closing on errors as the connection does.
//! No panic, no endless loop, bounded output.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use nestforge_edge::WebSocketConfig;
use tungstenite::error::Error as WsError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::Message;

/// Client bytes served `chunk` at a time, then `WouldBlock`; writes are collected.
struct Stream<'a> {
    input: &'a [u8],
    chunk: usize,
    output: Vec<u8>,
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.chunk.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
    // Like a socket's `readv`: the buffers in order, `chunk` bytes in all.
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut left = self.chunk.min(self.input.len());
        let mut n = 0;
        for buf in bufs {
            let step = buf.len().min(left);
            buf[..step].copy_from_slice(&self.input[n..n + step]);
            n += step;
            left -= step;
        }
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Stream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    // Byte 0: how much the upgrade read ahead (bytes after the head); byte 1: read size.
    let [split, chunk, data @ ..] = data else {
        return;
    };
    let split = (*split as usize * data.len() / 255).min(data.len());
    let chunk = if *chunk == 0 {
        usize::MAX
    } else {
        *chunk as usize * 64
    };
    let edge = WebSocketConfig::default();
    let mut ws = nestforge_edge::Framing::new(&data[..split], &edge);
    let mut stream = Stream {
        input: &data[split..],
        chunk,
        output: Vec::new(),
    };

    let mut steps = 0usize;
    let mut received = 0usize;
    loop {
        // Every message consumes at least a 2-byte frame header: no endless loop.
        steps += 1;
        assert!(steps <= data.len() / 2 + 4, "read loop does not progress");
        match ws.read(&mut stream) {
            Ok(message) => {
                match &message {
                    Message::Text(_) | Message::Binary(_) => {
                        assert!(message.len() <= edge.get_max_message_size());
                        received += message.len();
                        // Echo, as a gateway would; may fail once closing.
                        let _ = ws.write(message);
                        let _ = ws.flush(&mut stream);
                    }
                    Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125),
                    Message::Close(frame) => {
                        if let Some(frame) = frame {
                            assert!(frame.reason.len() <= 123);
                        }
                    }
                    Message::Frame(_) => panic!("raw frames are never read"),
                }
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                if let Some(code) = nestforge_edge::close_code(&e).map(CloseCode::from) {
                    let frame = CloseFrame {
                        code,
                        reason: "protocol error".into(),
                    };
                    ws.close(Some(frame));
                    let _ = ws.flush(&mut stream);
                }
                // Like the connection, never read again after a failure.
                break;
            }
        }
    }
    // Output is bounded by what came in: echoes, pongs and one close frame.
    assert!(
        stream.output.len() <= 2 * data.len() + received + 256,
        "wrote {} bytes for {} in",
        stream.output.len(),
        data.len()
    );
});
