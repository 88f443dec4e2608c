//! The consumer's read buffer: large reads from the socket, split into whole frames in place.

use std::io::{self, Read};
use std::ops::Range;

use mbus_proto::{DecodeError, HEADER_LEN, check};

/// The buffer's starting size and so the size of most reads. It grows to fit a larger frame.
const INITIAL_SIZE: usize = 256 * 1024;

/// Bytes read from the broker; `buf[start..end]` is not yet handed out.
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub(crate) fn new() -> ReadBuf {
        ReadBuf {
            buf: vec![0; INITIAL_SIZE],
            start: 0,
            end: 0,
        }
    }

    /// The length, prefix included, of the whole frame that starts the unread bytes, if it has
    /// arrived; an error as soon as its prefix announces more than `max_frame`.
    pub(crate) fn frame_len(&self, max_frame: u32) -> Result<Option<usize>, DecodeError> {
        check(&self.buf[self.start..self.end], max_frame)
    }

    /// The body of the frame of `len` bytes that starts the unread bytes.
    pub(crate) fn body(&self, len: usize) -> &[u8] {
        &self.buf[self.start + HEADER_LEN..self.start + len]
    }

    /// Marks `len` bytes as handed out. They stay in place until the next read.
    pub(crate) fn consume(&mut self, len: usize) {
        self.start += len;
    }

    /// Reads once from `src`, after making room for the rest of the incomplete frame that
    /// starts the unread bytes; returns what `read` returned, 0 at end of stream.
    ///
    /// Only the unread tail moves, and only when a read is due: at most one partial frame.
    pub(crate) fn read_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        let unread = &self.buf[self.start..self.end];
        // The caller has checked the prefix against its limit, so the frame fits in memory.
        let needed = unread
            .first_chunk::<HEADER_LEN>()
            .map_or(HEADER_LEN, |prefix| {
                HEADER_LEN + u32::from_be_bytes(*prefix) as usize
            });
        debug_assert!(
            needed > unread.len(),
            "read_from called with a whole frame unread"
        );
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if needed > self.buf.len() {
            self.buf.resize(needed, 0);
        }
        let n = src.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Where `part`, a slice of a frame from [`ReadBuf::body`], lies in the buffer.
    pub(crate) fn span(&self, part: &[u8]) -> Range<usize> {
        let start = part.as_ptr().addr() - self.buf.as_ptr().addr();
        debug_assert!(start + part.len() <= self.buf.len());
        start..start + part.len()
    }

    /// The bytes at `span`, as [`ReadBuf::span`] found them.
    pub(crate) fn bytes(&self, span: Range<usize>) -> &[u8] {
        &self.buf[span]
    }

    /// The text at `span`, which was a `&str` when [`ReadBuf::span`] found it.
    pub(crate) fn text(&self, span: Range<usize>) -> &str {
        std::str::from_utf8(&self.buf[span]).expect("the span was a decoded string")
    }
}
