//! A fragmented message being reassembled: the message limit, UTF-8 checked as fragments
//! arrive (failing at the first bad one), the message once complete. A compressed message
//! (feature `deflate`) is joined as it came, counted against the limit as it is, and
//! inflated (then checked) once complete.

use bytes::Bytes;
use tungstenite::error::{CapacityError, Error, Result};
use tungstenite::protocol::frame::{FrameHeader, Utf8Bytes};
use tungstenite::Message;

pub(super) struct Fragments {
    /// UTF-8 is checked as the fragments arrive (a text message, not compressed).
    text: bool,
    /// The payloads so far (large fragments are read straight into it).
    pub(super) data: Vec<u8>,
    /// Text: length of the prefix known to be valid UTF-8.
    checked: usize,
    /// The payloads are DEFLATE data (RSV1 on the first frame), inflated once complete into
    /// a text (`Some(true)`) or binary message.
    #[cfg(feature = "deflate")]
    inflate: Option<bool>,
}

impl Fragments {
    /// The message whose first frame (text when `text`, else binary) has `header`.
    pub(super) fn new(text: bool, header: &FrameHeader) -> Self {
        #[cfg(feature = "deflate")]
        if header.rsv1 {
            return Fragments {
                text: false,
                data: Vec::new(),
                checked: 0,
                inflate: Some(text),
            };
        }
        #[cfg(not(feature = "deflate"))]
        let _ = header;
        Fragments {
            text,
            data: Vec::new(),
            checked: 0,
            #[cfg(feature = "deflate")]
            inflate: None,
        }
    }

    /// Appends a fragment's payload, enforcing the message limit and failing fast on bad
    /// UTF-8.
    pub(super) fn extend(&mut self, tail: &[u8], max: usize) -> Result<()> {
        too_long(self.data.len().saturating_add(tail.len()), max)?;
        self.data.extend_from_slice(tail);
        self.check_text()
    }

    /// Text: checks the bytes appended since the last check.
    pub(super) fn check_text(&mut self) -> Result<()> {
        if self.text {
            match std::str::from_utf8(&self.data[self.checked..]) {
                Ok(_) => self.checked = self.data.len(),
                Err(e) if e.error_len().is_some() => return Err(e.into()),
                // An incomplete character at the end: the next fragment may finish it.
                Err(e) => self.checked += e.valid_up_to(),
            }
        }
        Ok(())
    }

    /// The message, its last fragment in; a compressed one inflated to at most `max` bytes.
    pub(super) fn complete(self, max: usize) -> Result<Message> {
        #[cfg(feature = "deflate")]
        if let Some(text) = self.inflate {
            return super::compressed::inflate(&self.data, text, max);
        }
        #[cfg(not(feature = "deflate"))]
        let _ = max;
        if self.text {
            let text = String::from_utf8(self.data)?;
            Ok(Message::Text(Utf8Bytes::from(text)))
        } else {
            Ok(Message::Binary(Bytes::from(self.data)))
        }
    }
}

/// `MessageTooLong` when `size` passes `max_size`.
pub(super) fn too_long(size: usize, max_size: usize) -> Result<()> {
    if size > max_size {
        return Err(Error::Capacity(CapacityError::MessageTooLong {
            size,
            max_size,
        }));
    }
    Ok(())
}
