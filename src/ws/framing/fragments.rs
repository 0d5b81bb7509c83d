//! A fragmented message being reassembled: the message limit, UTF-8 checked as fragments
//! arrive (failing at the first bad one), the message once complete.

use bytes::Bytes;
use tungstenite::error::{CapacityError, Error, Result};
use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::Message;

pub(super) struct Fragments {
    text: bool,
    /// The payloads so far (large fragments are read straight into it).
    pub(super) data: Vec<u8>,
    /// Text: length of the prefix known to be valid UTF-8.
    checked: usize,
}

impl Fragments {
    pub(super) fn new(text: bool, capacity: usize) -> Self {
        Fragments {
            text,
            data: Vec::with_capacity(capacity),
            checked: 0,
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

    pub(super) fn complete(self) -> Result<Message> {
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
