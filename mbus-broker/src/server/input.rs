//! A connection's input: reads into a shared scratch buffer, decodes frames in place, and keeps
//! only the incomplete tail of the last frame per connection.
//!
//! An idle connection owns no buffer at all. A connection in the middle of a frame keeps that
//! frame's bytes, which the frame size limit bounds, and reads straight after them.

use std::io::{self, Read};

use mbus_proto::decode;

use crate::core::{ConnId, Core};

/// The least a read into a connection's own buffer asks the socket for.
const MIN_READ: usize = 64 << 10;
/// An emptied buffer larger than this is freed rather than kept for the next partial frame.
const KEEP: usize = 256 << 10;

/// The bytes of a connection's next frame that have arrived so far.
#[derive(Default)]
pub struct Input {
    pending: Vec<u8>,
}

impl Input {
    /// True when part of a frame has arrived and the rest has not.
    pub fn is_mid_frame(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Reads once from `stream` and passes every whole frame to the core. Returns the bytes read;
    /// 0 means the peer closed its side.
    pub fn read_from(
        &mut self,
        stream: &mut impl Read,
        scratch: &mut [u8],
        core: &mut Core,
        id: ConnId,
        max_frame: u32,
    ) -> io::Result<usize> {
        if self.pending.is_empty() {
            let n = stream.read(scratch)?;
            let used = feed(core, id, &scratch[..n], max_frame);
            self.pending.extend_from_slice(&scratch[used..n]);
            return Ok(n);
        }
        let old = self.pending.len();
        self.pending
            .resize(old + missing(&self.pending).max(MIN_READ), 0);
        let n = match stream.read(&mut self.pending[old..]) {
            Ok(n) => n,
            Err(e) => {
                self.pending.truncate(old);
                return Err(e);
            }
        };
        self.pending.truncate(old + n);
        let used = feed(core, id, &self.pending, max_frame);
        self.pending.drain(..used);
        if self.pending.is_empty() && self.pending.capacity() > KEEP {
            self.pending = Vec::new();
        }
        Ok(n)
    }
}

/// Bytes still to come of the frame that `pending` starts, once its length prefix is known.
/// The prefix was checked against the frame limit when it arrived, so this is bounded.
fn missing(pending: &[u8]) -> usize {
    match pending.first_chunk::<{ mbus_proto::HEADER_LEN }>() {
        Some(prefix) => {
            let total = mbus_proto::HEADER_LEN + u32::from_be_bytes(*prefix) as usize;
            total.saturating_sub(pending.len())
        }
        None => 0,
    }
}

/// Decodes and applies the whole frames at the start of `data`; returns the bytes they took.
/// Stops at the first undecodable frame, which the core answers and closes the connection for.
fn feed(core: &mut Core, id: ConnId, data: &[u8], max_frame: u32) -> usize {
    let mut used = 0;
    while !core.is_closing(id) {
        match decode(&data[used..], max_frame) {
            Ok(Some((frame, n))) => {
                core.receive(id, frame);
                used += n;
            }
            Ok(None) => break,
            Err(e) => {
                core.decode_error(id, &e);
                break;
            }
        }
    }
    used
}
