//! A connection's input: reads into a shared scratch buffer, decodes frames in place, and keeps
//! only the incomplete tail of the last frame per connection.
//!
//! An idle connection owns no buffer at all. A connection in the middle of a frame keeps the
//! bytes of that frame that have arrived, and no more: a length prefix alone costs nothing, and
//! the buffer grows with the bytes, by an eighth at a time, never past the frame. A short tail
//! (the usual case with small messages) is put back in front of the scratch buffer and the read
//! goes after it, so reads stay as large as the scratch buffer however the stream is cut. A long
//! frame is read into the scratch buffer too, and only the bytes that belong to it are appended:
//! a peer that sends a large frame a byte at a time costs a read and a one-byte copy per byte,
//! not a copy of the frame per byte. Before its `Hello` a connection may send only a small
//! frame (`HELLO_FRAME_LIMIT`), so an unknown peer cannot make the broker hold much.

use std::io::{self, Read};

use mbus_proto::decode;

use crate::engine::{ConnId, Core};

/// The least a read asks the socket for.
const MIN_READ: usize = 64 << 10;
/// The longest tail that is copied in front of the scratch buffer for the next read, and the
/// most buffer a connection keeps between frames.
const SHORT_TAIL: usize = 4 << 10;

/// The bytes of a connection's next frame that have arrived so far.
#[derive(Default)]
pub struct Input {
    /// The start of the next frame, exactly as much of it as arrived.
    pending: Vec<u8>,
}

impl Input {
    /// True when part of a frame has arrived and the rest has not.
    pub fn is_mid_frame(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Bytes of memory this connection's input holds.
    pub fn held(&self) -> usize {
        self.pending.capacity()
    }

    /// Reads once from `stream` and passes every whole frame to the core. Returns the bytes read;
    /// 0 means the peer closed its side.
    pub fn read_from(
        &mut self,
        stream: &mut impl Read,
        scratch: &mut [u8],
        core: &mut Core,
        id: ConnId,
    ) -> io::Result<usize> {
        let old = self.pending.len();
        let frame_end = old + missing(&self.pending);
        if old <= SHORT_TAIL && frame_end.max(old + MIN_READ) <= scratch.len() {
            scratch[..old].copy_from_slice(&self.pending);
            let n = stream.read(&mut scratch[old..])?;
            let used = feed(core, id, &scratch[..old + n]);
            self.keep(&scratch[used..old + n]);
            return Ok(n);
        }
        // A frame longer than the scratch buffer, or a long tail of one: what arrives of it is
        // appended, and what follows its end is decoded where it was read.
        let n = stream.read(scratch)?;
        let take = (frame_end - old).min(n);
        self.grow(take, frame_end);
        self.pending.extend_from_slice(&scratch[..take]);
        if self.pending.len() < frame_end {
            return Ok(n);
        }
        feed(core, id, &self.pending);
        let used = feed(core, id, &scratch[take..n]);
        self.keep(&scratch[take + used..n]);
        Ok(n)
    }

    /// Makes room for `more` bytes of the frame that ends at `frame_end`: at least an eighth
    /// more than is held, never more than the frame, so that memory follows what arrived and a
    /// trickle costs few copies.
    fn grow(&mut self, more: usize, frame_end: usize) {
        let need = self.pending.len() + more;
        if need > self.pending.capacity() {
            let len = self.pending.len();
            let target = need.max(len + len / 8).max(SHORT_TAIL).min(frame_end);
            self.pending.reserve_exact(target - len);
        }
    }

    /// Keeps `tail`, the start of a frame whose rest has not arrived, in place of what was kept.
    fn keep(&mut self, tail: &[u8]) {
        self.pending.clear();
        if self.pending.capacity() > SHORT_TAIL.max(tail.len()) {
            self.pending = Vec::new();
        }
        self.pending.extend_from_slice(tail);
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

/// Decodes and applies the whole frames at the start of `data`, each within the limit the core
/// sets for the connection now; returns the bytes they took. Stops at the first undecodable
/// frame, which the core answers and closes the connection for.
fn feed(core: &mut Core, id: ConnId, data: &[u8]) -> usize {
    let mut used = 0;
    while !core.is_closing(id) {
        match decode(&data[used..], core.frame_limit(id)) {
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mbus_proto::{Frame, PROTOCOL_VERSION, Role, Start};

    use super::*;
    use crate::BrokerConfig;
    use crate::engine::Progress;

    /// A stream that hands out its bytes in chunks of the given sizes, in turn.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: std::iter::Cycle<std::slice::Iter<'a, usize>>,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (*self.sizes.next().unwrap())
                .min(buf.len())
                .min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn hello(role: Role) -> Frame<'static> {
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role,
            token: None,
        }
    }

    /// Every frame arrives whole and in order, however the stream is cut: frames of a few bytes
    /// and frames larger than the scratch buffer, in reads of one byte up to more than it holds.
    #[test]
    fn frames_survive_any_cut_of_the_stream() {
        let mut core = Core::new(BrokerConfig::default().core(), Instant::now());
        let peer = "127.0.0.1:1".parse().unwrap();
        let consumer = core.open(Role::Consumer, peer);
        core.receive(consumer, hello(Role::Consumer));
        let subscribe = Frame::Subscribe {
            topic: "t",
            start: Start::Earliest,
        };
        core.receive(consumer, subscribe);
        let producer = core.open(Role::Producer, peer);

        let sizes = [0usize, 1, 7, 150, 70_000, 300_000, 3];
        let payloads: Vec<Vec<u8>> = (0..60)
            .map(|i| vec![i as u8; sizes[i % sizes.len()]])
            .collect();
        let mut stream_bytes = hello(Role::Producer).to_bytes();
        for p in &payloads {
            let publish = Frame::publish("t", p);
            publish.encode(&mut stream_bytes);
        }
        let mut stream = Chunked {
            data: &stream_bytes,
            sizes: [1, 3, 1000, 65_536, 200_000, 9, 131_072].iter().cycle(),
        };
        let mut scratch = vec![0; 128 << 10];
        let mut input = Input::default();
        while input
            .read_from(&mut stream, &mut scratch, &mut core, producer)
            .unwrap()
            != 0
        {}
        assert!(!input.is_mid_frame());
        assert!(
            input.held() <= SHORT_TAIL,
            "a connection between frames holds little"
        );

        let mut out = Vec::new();
        while core.write(consumer, &mut out).unwrap() != Progress::Drained {}
        let mut rest = &out[..];
        let mut got = Vec::new();
        while let Some((frame, n)) = decode(rest, 2 << 20).unwrap() {
            if let Frame::Deliver { offset, batch, .. } = frame {
                got.push((offset, batch.single().expect("one message").to_vec()));
            }
            rest = &rest[n..];
        }
        let want: Vec<_> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as u64, p))
            .collect();
        assert_eq!(got, want);
    }
}
