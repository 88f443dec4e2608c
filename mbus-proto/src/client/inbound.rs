//! A client's inbound buffer: large reads, split into whole frames in place.

use crate::{DecodeError, HEADER_LEN, check};

/// Where a string or payload of a frame lies in the inbound buffer.
///
/// Valid until the next [`super::ClientProtocol::read_space`], which may move the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
}

/// Bytes from the broker; `buf[start..end]` is not yet handed out.
#[derive(Debug)]
pub(super) struct Inbound {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Inbound {
    /// A buffer of `size` bytes, the size of most reads; it grows to fit a larger frame.
    pub fn new(size: usize) -> Self {
        Inbound {
            buf: vec![0; size],
            start: 0,
            end: 0,
        }
    }

    /// The length, prefix included, of the whole frame that starts the unread bytes, if it has
    /// arrived; an error as soon as its prefix announces more than `max_frame`.
    pub fn frame_len(&self, max_frame: u32) -> Result<Option<usize>, DecodeError> {
        check(&self.buf[self.start..self.end], max_frame)
    }

    /// The body of the frame of `len` bytes that starts the unread bytes.
    pub fn body(&self, len: usize) -> &[u8] {
        &self.buf[self.start + HEADER_LEN..self.start + len]
    }

    /// Marks `len` bytes as handed out. They stay in place until the next read.
    pub fn consume(&mut self, len: usize) {
        self.start += len;
    }

    /// Room after the unread bytes, once they are moved to the front: at least enough for the
    /// rest of the frame they begin. Only the unread tail moves: at most one partial frame.
    /// Called only once `frame_len` found no whole frame, so that there is such a rest.
    pub fn space(&mut self) -> &mut [u8] {
        let unread = &self.buf[self.start..self.end];
        // `poll` has checked the prefix against its limit, so the frame fits in memory.
        let needed = unread
            .first_chunk::<HEADER_LEN>()
            .map_or(HEADER_LEN, |prefix| {
                HEADER_LEN + u32::from_be_bytes(*prefix) as usize
            });
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if needed > self.buf.len() {
            self.buf.resize(needed, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`Inbound::space`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Where `part`, a slice of a frame from [`Inbound::body`], lies in the buffer.
    pub fn span(&self, part: &[u8]) -> Span {
        let start = part.as_ptr().addr() - self.buf.as_ptr().addr();
        debug_assert!(start + part.len() <= self.buf.len());
        Span {
            start,
            end: start + part.len(),
        }
    }

    /// The bytes at `span`.
    pub fn bytes(&self, span: Span) -> &[u8] {
        &self.buf[span.start..span.end]
    }

    /// The text at `span`, which was a `&str` when [`Inbound::span`] found it.
    pub fn text(&self, span: Span) -> &str {
        std::str::from_utf8(self.bytes(span)).expect("the span was a decoded string")
    }
}
