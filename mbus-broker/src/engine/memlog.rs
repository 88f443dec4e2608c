//! A topic's log: messages stored once, as ready-to-send `Deliver` frames, in offset order.
//!
//! The log is a queue of segments. Each segment is one growable buffer of encoded frames plus,
//! for every offset, the start of the frame that holds it (a publish's batch is one frame of as
//! many offsets as it has messages), so that a consumer at any offset is found by binary search
//! and its bytes can be handed to `writev` as they are, for every consumer alike. Retention drops
//! whole segments from the front; the count limit may also move the first offset inside a segment.

use std::collections::VecDeque;
use std::io::IoSlice;

use mbus_proto::{Batch, Frame, MessageRef};

use super::segpool::SegmentPool;

/// Bounds on what a log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most bytes of encoded frames to keep. The log keeps at least its newest segment.
    pub max_bytes: usize,
    /// Most messages to keep.
    pub max_messages: u64,
    /// Size at which a segment is closed and a new one started.
    pub segment_bytes: usize,
}

/// One run of consecutive frames in one buffer.
#[derive(Debug)]
pub struct Segment {
    /// Offset of the first frame in `buf`.
    pub base: u64,
    /// When the segment was started, in the caller's order of appends across all logs, so that
    /// the oldest segment of many logs can be found.
    pub born: u64,
    /// Encoded `Deliver` frames, length prefixes included, back to back.
    pub buf: Vec<u8>,
    /// For each offset `base + i`, the start in `buf` of the frame that holds it: the offsets
    /// of one frame share its start.
    pub starts: Vec<u32>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.base + self.starts.len() as u64
    }

    /// Bytes of memory its buffers hold, unused capacity included.
    pub fn held(&self) -> usize {
        self.buf.capacity() + self.starts.capacity() * std::mem::size_of::<u32>()
    }

    /// Byte range in `buf` of the frame that holds `offset`.
    pub fn frame_range(&self, offset: u64) -> std::ops::Range<usize> {
        let i = (offset - self.base) as usize;
        let start = self.starts[i] as usize;
        let prefix = self.buf[start..start + mbus_proto::HEADER_LEN]
            .try_into()
            .expect("a length prefix");
        start..start + mbus_proto::HEADER_LEN + u32::from_be_bytes(prefix) as usize
    }

    /// The offset after the frame that holds `offset`.
    pub fn frame_end(&self, offset: u64) -> u64 {
        let start = self.starts[(offset - self.base) as usize];
        self.base + self.starts.partition_point(|&s| s <= start) as u64
    }

    /// The first offset of the frame that holds `offset`.
    pub fn frame_first(&self, offset: u64) -> u64 {
        let start = self.starts[(offset - self.base) as usize];
        self.base + self.starts.partition_point(|&s| s < start) as u64
    }
}

/// A read position in a log: the next offset to send and how many bytes of its frame were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The offset of the frame being sent, or next to be sent.
    pub offset: u64,
    /// Bytes of that frame already written to the peer; 0 at a frame boundary.
    pub partial: usize,
}

/// The messages of one topic.
#[derive(Debug)]
pub struct Log {
    segments: VecDeque<Segment>,
    /// The oldest offset still served; older ones were dropped by retention.
    first: u64,
    /// The offset the next appended message gets.
    next: u64,
    /// The end of what consumers may be sent: messages from here to `next` are stored but not
    /// yet durable, and a consumer must never see a message that a crash could take back.
    visible: u64,
    /// Appends wait for [`Log::reveal`]; without a disk behind the log they are visible at once.
    gated: bool,
    /// Bytes held by all segments' frames.
    bytes: usize,
    /// Bytes of memory held by all segments, unused capacity included.
    held: usize,
    retention: Retention,
    /// The time of the newest message, in milliseconds since the Unix epoch: no later message
    /// gets an earlier one.
    last_time: u64,
}

impl Log {
    /// An empty log whose first message gets offset 0.
    pub fn new(retention: Retention) -> Self {
        Log {
            gated: false,
            ..Log::durable(retention, 0, 0)
        }
    }

    /// An empty log in front of a topic's files on disk: its first message gets offset `next`
    /// (older ones stay on disk), and appended messages are hidden from consumers until
    /// [`Log::reveal`] says they are durable. `last_time` is the time of the newest message
    /// stored, which no later message goes below.
    pub fn durable(retention: Retention, next: u64, last_time: u64) -> Self {
        Log {
            gated: true,
            segments: VecDeque::new(),
            first: next,
            next,
            visible: next,
            bytes: 0,
            held: 0,
            retention,
            last_time,
        }
    }

    /// The time of the newest message appended (or stored before, for a durable log).
    pub fn last_time(&self) -> u64 {
        self.last_time
    }

    /// The oldest offset the log still serves.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The offset the next message will get; the log holds `first()..next()`.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The end of what consumers may be sent.
    pub fn visible(&self) -> u64 {
        self.visible
    }

    /// Lets consumers see every message appended so far.
    pub fn reveal(&mut self) {
        self.visible = self.next;
    }

    /// The encoded frame at `offset`, if it is in memory.
    pub fn frame(&self, offset: u64) -> Option<&[u8]> {
        let seg = self.segment_of(offset)?;
        Some(&seg.buf[seg.frame_range(offset)])
    }

    /// Bytes of encoded frames held in memory.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of memory the log's buffers hold: its frames, their positions, and the capacity
    /// reserved for more. This is what the log costs the broker.
    pub fn held(&self) -> usize {
        self.held
    }

    /// When the oldest segment in memory was started, if the log holds any (see
    /// [`Segment::born`]).
    pub fn oldest_born(&self) -> Option<u64> {
        self.segments.front().map(|s| s.born)
    }

    /// Appends a publish's batch as one frame stored at `time` (or at the newest message's
    /// time, if that is later: times never go back) and returns the offset of its first
    /// message; a segment it starts is stamped `born`, its buffer taken from `pool` when it is
    /// a whole one. Segments that retention expires are left in place until
    /// [`Log::pop_expired`] hands them out.
    pub fn append(
        &mut self,
        topic: &str,
        time: u64,
        batch: &Batch<'_>,
        born: u64,
        pool: &mut SegmentPool,
    ) -> u64 {
        let offset = self.next;
        let time = time.max(self.last_time);
        self.last_time = time;
        let needed = mbus_proto::delivery_len(topic, offset, time, batch);
        let fits = self.segments.back().is_some_and(|s| {
            s.buf.is_empty() || s.buf.len() + needed <= self.retention.segment_bytes
        });
        // What the segment appended to held before, unless it is new.
        let back_before = if fits {
            self.segments.back().map_or(0, Segment::held)
        } else {
            // A log's first segment grows with it, so that a small topic (or one whose memory
            // was taken back) costs little. Once a log has filled a segment, the next ones are
            // whole, from the pool, so that a busy log never copies itself to grow; a frame
            // larger than a segment gets a buffer of its own size.
            let seg = if !self.segments.is_empty() && needed <= self.retention.segment_bytes {
                pool.take(offset, born)
            } else {
                let capacity = if self.segments.is_empty() { 0 } else { needed };
                Segment {
                    base: offset,
                    born,
                    buf: Vec::with_capacity(capacity),
                    starts: Vec::new(),
                }
            };
            self.segments.push_back(seg);
            0
        };
        let seg = self.segments.back_mut().expect("a segment to append to");
        reserve_within(&mut seg.buf, needed, self.retention.segment_bytes);
        let start = seg.buf.len();
        let count = batch.len() as u64;
        let at = u32::try_from(start).expect("segment over 4 GiB");
        seg.starts.extend(std::iter::repeat_n(at, count as usize));
        mbus_proto::encode_delivery(&mut seg.buf, topic, offset, time, batch);
        self.bytes += seg.buf.len() - start;
        self.held = self.held + seg.held() - back_before;
        self.next += count;
        if !self.gated {
            self.visible = self.next;
        }
        self.apply_retention();
        offset
    }

    fn apply_retention(&mut self) {
        let r = self.retention;
        if self.next - self.first > r.max_messages {
            self.first = self.next - r.max_messages;
        }
        let mut bytes = self.bytes;
        for seg in self
            .segments
            .iter()
            .take(self.segments.len().saturating_sub(1))
        {
            if bytes <= r.max_bytes {
                break;
            }
            bytes -= seg.buf.len();
            self.first = self.first.max(seg.end());
        }
    }

    /// Removes and returns the oldest segment if retention no longer needs any of it.
    pub fn pop_expired(&mut self) -> Option<Segment> {
        if self.segments.front()?.end() > self.first {
            return None;
        }
        self.pop_front()
    }

    /// Removes and returns the oldest segment, whatever retention says, after which the log
    /// serves from the segment after it, or holds nothing in memory and serves from its next
    /// append. Consumers behind a removed segment are behind `first()`, as after retention.
    pub fn evict_oldest(&mut self) -> Option<Segment> {
        let seg = self.pop_front()?;
        self.first = self.first.max(seg.end());
        Some(seg)
    }

    fn pop_front(&mut self) -> Option<Segment> {
        let seg = self.segments.pop_front()?;
        self.bytes -= seg.buf.len();
        self.held -= seg.held();
        Some(seg)
    }

    /// The segment holding the frame with `offset`, if the log still has it in memory.
    pub fn segment_of(&self, offset: u64) -> Option<&Segment> {
        self.segment_index(offset).map(|i| &self.segments[i])
    }

    /// The time and the message at `offset`, if the log still serves it.
    pub fn message_at(&self, offset: u64) -> Option<(u64, MessageRef<'_>)> {
        if offset < self.first {
            return None;
        }
        let seg = self.segment_of(offset)?;
        record_message(&seg.buf[seg.frame_range(offset)], offset)
    }

    /// The time of the message at `offset`, which must be in memory.
    fn time_of(&self, offset: u64) -> u64 {
        let seg = self.segment_of(offset).expect("the offset is in memory");
        record_message(&seg.buf[seg.frame_range(offset)], offset)
            .expect("the log holds Deliver frames it encoded")
            .0
    }

    /// The offset of the first message stored at or after `time`, as far as memory can tell:
    /// `next()` when no message is, and `None` when the answer may lie before what memory
    /// holds (a durable log whose oldest message in memory is already at or after `time`, or
    /// that holds none). A binary search over the messages in memory, whose times never go
    /// back.
    pub fn offset_at_time(&self, time: u64) -> Option<u64> {
        if self.last_time < time {
            return Some(self.next);
        }
        let oldest = self
            .segments
            .front()
            .map_or(self.next, |s| s.base.max(self.first));
        if oldest >= self.next {
            // Nothing in memory: without a disk behind the log, nothing older is left either.
            return (!self.gated).then_some(self.next);
        }
        if self.time_of(oldest) >= time {
            return (!self.gated).then_some(oldest);
        }
        // time_of(lo) < time <= time_of(hi - 1): the answer is in lo + 1..hi.
        let (mut lo, mut hi) = (oldest, self.next);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.time_of(mid) < time {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi)
    }

    /// Takes back the frame just appended, whose first offset is `offset`, which no consumer
    /// can have seen: the log of a durable topic holds it only until its store has taken it too.
    ///
    /// # Panics
    ///
    /// If `offset` is not the first offset of the last frame, or consumers may already see it.
    pub fn retract(&mut self, offset: u64) {
        assert!(
            offset < self.next && self.visible <= offset,
            "only an unseen last frame can be retracted"
        );
        let seg = self.segments.back_mut().expect("a frame was appended");
        let i = (offset - seg.base) as usize;
        let start = seg.starts[i];
        assert!(
            seg.starts[i..].iter().all(|&s| s == start) && (i == 0 || seg.starts[i - 1] < start),
            "only the last frame, from its first offset, can be retracted"
        );
        seg.starts.truncate(i);
        self.bytes -= seg.buf.len() - start as usize;
        seg.buf.truncate(start as usize);
        self.next = offset;
        // Retention may have moved `first` on for this frame; it stays there, never past it.
        self.first = self.first.min(offset);
        if seg.starts.is_empty() {
            let seg = self.segments.pop_back().expect("it is there");
            self.held -= seg.held();
        }
    }

    /// Takes back every message from `offset` on, none of which consumers may see yet: what a
    /// durable topic's failed commit held. Messages the memory budget already took from memory
    /// are simply forgotten.
    ///
    /// # Panics
    ///
    /// If consumers may already see a message from `offset` on, or `offset` is past `next()`.
    pub fn retract_to(&mut self, offset: u64) {
        assert!(
            self.visible <= offset && offset <= self.next,
            "only unseen messages can be retracted"
        );
        while self.next > offset {
            let Some(seg) = self.segments.back() else {
                self.next = offset;
                self.first = self.first.min(offset);
                break;
            };
            let last = seg.frame_first(self.next - 1);
            self.retract(last);
        }
    }

    fn segment_index(&self, offset: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.base <= offset);
        let seg = self.segments.get(i.checked_sub(1)?)?;
        (offset < seg.end()).then_some(i - 1)
    }

    /// Appends to `out` slices of the encoded frames from `cursor` on, at most `max_bytes` in all
    /// (whole segments' runs, the first trimmed by `cursor.partial`), and returns the byte count.
    /// A cursor outside `first()..visible()` yields nothing.
    pub fn read_at<'a>(
        &'a self,
        cursor: Cursor,
        max_bytes: usize,
        out: &mut Vec<IoSlice<'a>>,
        max_slices: usize,
    ) -> usize {
        let Some(mut i) = self.segment_index(cursor.offset) else {
            return 0;
        };
        if cursor.offset < self.first {
            // Retention has passed this offset, but a consumer half-way through its frame must
            // still get the rest of it, and only that, before it hears of the gap.
            if cursor.partial == 0 {
                return 0;
            }
            let range = self.segments[i].frame_range(cursor.offset);
            let from = range.start + cursor.partial;
            let take = (range.end - from).min(max_bytes);
            if take > 0 && out.len() < max_slices {
                out.push(IoSlice::new(&self.segments[i].buf[from..from + take]));
                return take;
            }
            return 0;
        }
        if cursor.offset >= self.visible {
            return 0;
        }
        let seg = &self.segments[i];
        let mut from = seg.frame_range(cursor.offset).start + cursor.partial;
        let mut total = 0;
        while total < max_bytes && out.len() < max_slices {
            let Some(seg) = self.segments.get(i) else {
                break;
            };
            if seg.base >= self.visible {
                break;
            }
            let end = if self.visible < seg.end() {
                seg.frame_range(self.visible).start
            } else {
                seg.buf.len()
            };
            let take = (end - from).min(max_bytes - total);
            out.push(IoSlice::new(&seg.buf[from..from + take]));
            total += take;
            i += 1;
            from = 0;
        }
        total
    }

    /// The cursor `n` bytes after `cursor`, which must lie inside the log and have at least `n`
    /// bytes after it.
    pub fn advance(&self, cursor: Cursor, n: usize) -> Cursor {
        let mut i = self
            .segment_index(cursor.offset)
            .expect("cursor inside the log");
        let mut pos = self.segments[i].frame_range(cursor.offset).start + cursor.partial + n;
        while pos >= self.segments[i].buf.len() {
            pos -= self.segments[i].buf.len();
            i += 1;
            if i == self.segments.len() {
                debug_assert_eq!(pos, 0, "advanced past the end of the log");
                return Cursor {
                    offset: self.next,
                    partial: 0,
                };
            }
        }
        // The frame `pos` falls in: the cursor names its first offset, or, still inside the
        // frame it started in, the offset it named (a start inside a batch), so that offsets
        // only move forward.
        let seg = &self.segments[i];
        let k = seg.starts.partition_point(|&s| s as usize <= pos) - 1;
        let start = seg.starts[k];
        let first = seg.frame_first(seg.base + k as u64);
        Cursor {
            offset: first.max(cursor.offset),
            partial: pos - start as usize,
        }
    }
}

/// The time and the message `offset` of `frame`, a `Deliver` frame the log encoded.
pub(super) fn record_message(frame: &[u8], offset: u64) -> Option<(u64, MessageRef<'_>)> {
    match Frame::parse(&frame[mbus_proto::HEADER_LEN..]) {
        Ok(Frame::Deliver {
            offset: base,
            time,
            batch,
            ..
        }) => {
            let m = batch
                .iter()
                .nth(usize::try_from(offset.checked_sub(base)?).ok()?)?;
            Some((time + u64::from(m.delta), m))
        }
        _ => None,
    }
}

/// Grows `buf` to fit `needed` more bytes, doubling but not past `limit` unless one frame needs it.
fn reserve_within(buf: &mut Vec<u8>, needed: usize, limit: usize) {
    let want = buf.len() + needed;
    if want <= buf.capacity() {
        return;
    }
    let cap = (buf.capacity() * 2).max(4096).min(limit).max(want);
    buf.reserve_exact(cap - buf.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use mbus_proto::{DEFAULT_MAX_FRAME, decode};

    /// Appends `data` as a message without headers, stored at time 0.
    fn push(log: &mut Log, topic: &str, data: &[u8], born: u64) -> u64 {
        let mut pool = SegmentPool::new(log.retention.segment_bytes, 1);
        log.append(topic, 0, &Batch::one(data), born, &mut pool)
    }

    /// A pool for appends whose segments' source does not matter to the test.
    fn pool() -> SegmentPool {
        SegmentPool::new(1 << 20, 1)
    }

    fn log(max_bytes: usize, max_messages: u64, segment_bytes: usize) -> Log {
        Log::new(Retention {
            max_bytes,
            max_messages,
            segment_bytes,
        })
    }

    fn read_all(log: &Log, cursor: Cursor) -> Vec<u8> {
        let mut slices = Vec::new();
        log.read_at(cursor, usize::MAX, &mut slices, usize::MAX);
        slices.iter().flat_map(|s| s.iter().copied()).collect()
    }

    fn offsets(bytes: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some((frame, n)) = decode(rest, DEFAULT_MAX_FRAME).unwrap() {
            match frame {
                Frame::Deliver { offset, .. } => out.push(offset),
                other => panic!("unexpected {other:?}"),
            }
            rest = &rest[n..];
        }
        assert!(rest.is_empty(), "trailing bytes");
        out
    }

    #[test]
    fn appends_frames_that_decode_with_their_offsets() {
        let mut l = log(1 << 20, 1000, 100);
        for i in 0..10u64 {
            assert_eq!(push(&mut l, "t", format!("m{i}").as_bytes(), 0), i);
        }
        assert!(l.segments.len() > 1, "small segments split the log");
        assert_eq!(
            offsets(&read_all(&l, Cursor::default())),
            (0..10).collect::<Vec<_>>()
        );
        let from7 = read_all(
            &l,
            Cursor {
                offset: 7,
                partial: 0,
            },
        );
        assert_eq!(offsets(&from7), vec![7, 8, 9]);
    }

    #[test]
    fn a_batch_is_one_frame_read_whole_from_any_of_its_offsets() {
        let mut l = log(1 << 20, 1000, 4096);
        push(&mut l, "t", b"zero", 0);
        let mut batch = mbus_proto::BatchBuilder::new();
        for data in [&b"one"[..], b"two", b"three"] {
            batch.push(data, &[]).unwrap();
        }
        assert_eq!(l.append("t", 7, &batch.batch().unwrap(), 0, &mut pool()), 1);
        push(&mut l, "t", b"four", 0);
        assert_eq!((l.first(), l.next()), (0, 5));
        let whole = read_all(&l, Cursor::default());
        assert_eq!(
            offsets(&whole),
            [0, 1, 4],
            "three frames, the batch one of them"
        );
        for at in 1..4 {
            let from = Cursor {
                offset: at,
                partial: 0,
            };
            assert_eq!(offsets(&read_all(&l, from)), [1, 4], "from {at}");
            let frame = l.segment_of(at).unwrap().frame_range(at).len();
            // Part of the frame sent: still where the consumer stands. All of it: past it.
            let part = l.advance(from, frame - 1);
            assert_eq!((part.offset, part.partial), (at, frame - 1));
            assert_eq!(l.advance(from, frame).offset, 4);
        }
        assert_eq!(
            l.message_at(3).map(|(t, m)| (t, m.data)),
            Some((7, &b"three"[..]))
        );
        // The batch is taken back whole.
        let retention = Retention {
            max_bytes: 1 << 20,
            max_messages: 1000,
            segment_bytes: 4096,
        };
        let mut l2 = Log::durable(retention, 0, 0);
        push(&mut l2, "t", b"zero", 0);
        l2.reveal();
        l2.append("t", 0, &batch.batch().unwrap(), 0, &mut pool());
        l2.retract_to(1);
        assert_eq!(l2.next(), 1);
        assert_eq!(offsets(&read_all(&l2, Cursor::default())), [0]);
    }

    #[test]
    fn advance_walks_frames_and_segments() {
        let mut l = log(1 << 20, 1000, 64);
        for _ in 0..20 {
            push(&mut l, "topic", b"0123456789", 0);
        }
        let all = read_all(&l, Cursor::default());
        let frame_len = all.len() / 20;
        for n in 0..all.len() {
            let c = l.advance(Cursor::default(), n);
            assert_eq!(c.offset, (n / frame_len) as u64, "n={n}");
            assert_eq!(c.partial, n % frame_len, "n={n}");
            assert_eq!(read_all(&l, c), all[n..], "n={n}");
        }
        let end = l.advance(Cursor::default(), all.len());
        assert_eq!(
            end,
            Cursor {
                offset: 20,
                partial: 0
            }
        );
    }

    #[test]
    fn read_at_respects_byte_and_slice_limits() {
        let mut l = log(1 << 20, 1000, 64);
        for _ in 0..20 {
            push(&mut l, "topic", b"0123456789", 0);
        }
        let mut slices = Vec::new();
        assert_eq!(l.read_at(Cursor::default(), 50, &mut slices, 100), 50);
        slices.clear();
        let n = l.read_at(Cursor::default(), usize::MAX, &mut slices, 2);
        assert_eq!(slices.len(), 2);
        assert_eq!(n, slices.iter().map(|s| s.len()).sum::<usize>());
    }

    #[test]
    fn count_retention_moves_first_and_frees_whole_segments() {
        let mut l = log(1 << 20, 5, 64);
        for _ in 0..20 {
            push(&mut l, "t", b"x", 0);
        }
        assert_eq!(l.first(), 15);
        assert_eq!(l.next(), 20);
        let mut dropped = 0;
        while let Some(seg) = l.pop_expired() {
            assert!(seg.end() <= 15);
            dropped += seg.starts.len();
        }
        assert!(dropped > 0);
        assert!(l.segments.front().unwrap().base <= 15);
        assert_eq!(
            offsets(&read_all(
                &l,
                Cursor {
                    offset: 15,
                    partial: 0
                }
            )),
            vec![15, 16, 17, 18, 19]
        );
        assert!(
            read_all(
                &l,
                Cursor {
                    offset: 3,
                    partial: 0
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn byte_retention_keeps_the_total_under_the_bound() {
        let mut l = log(1000, u64::MAX, 256);
        for _ in 0..1000 {
            push(&mut l, "t", &[7; 50], 0);
            while l.pop_expired().is_some() {}
            assert!(l.bytes() <= 1000 + 256, "bytes {}", l.bytes());
        }
        assert!(l.first() > 900);
        let kept = offsets(&read_all(
            &l,
            Cursor {
                offset: l.first(),
                partial: 0,
            },
        ));
        assert_eq!(kept, (l.first()..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_frame_larger_than_a_segment_gets_a_segment_of_its_own() {
        let mut l = log(1 << 20, 1000, 64);
        push(&mut l, "t", b"small", 0);
        push(&mut l, "t", &[1; 500], 0);
        push(&mut l, "t", b"small", 0);
        assert_eq!(l.segments.len(), 3);
        assert_eq!(offsets(&read_all(&l, Cursor::default())), vec![0, 1, 2]);
    }

    #[test]
    fn a_retracted_message_leaves_no_trace_and_its_offset_is_reused() {
        let retention = Retention {
            max_bytes: usize::MAX,
            max_messages: u64::MAX,
            segment_bytes: 256,
        };
        let mut log = Log::durable(retention, 10, 0);
        // Two frames of 115 bytes fill a 256-byte segment.
        for _ in 0..2 {
            push(&mut log, "t", &[1; 100], 0);
        }
        log.reveal();
        let (bytes, segments) = (log.bytes(), log.segments.len());
        // The third message needs a segment of its own, which goes again with it.
        let offset = push(&mut log, "t", &[2; 100], 0);
        assert_eq!((offset, log.segments.len()), (12, segments + 1));
        log.retract(offset);
        assert_eq!((log.next(), log.visible(), log.bytes()), (12, 12, bytes));
        assert_eq!(log.segments.len(), segments);
        assert_eq!(log.frame(12), None);
        let cursor = Cursor {
            offset: 10,
            partial: 0,
        };
        assert_eq!(offsets(&read_all(&log, cursor)), [10, 11]);
        // One that fits behind others in a segment.
        push(&mut log, "t", &[3; 10], 0);
        push(&mut log, "t", &[3; 10], 0);
        let bytes = log.bytes();
        assert_eq!(push(&mut log, "t", &[3; 10], 0), 14);
        log.retract(14);
        assert_eq!((log.next(), log.bytes()), (14, bytes));
        assert_eq!(push(&mut log, "t", &[4; 10], 0), 14);
        log.reveal();
        assert_eq!(log.message_at(14).map(|(_, m)| m.data), Some(&[4; 10][..]));
        assert_eq!(offsets(&read_all(&log, cursor)), [10, 11, 12, 13, 14]);
    }

    #[test]
    #[should_panic(expected = "only an unseen last frame can be retracted")]
    fn a_message_consumers_may_see_cannot_be_retracted() {
        let mut log = log(usize::MAX, u64::MAX, 1024);
        let offset = push(&mut log, "t", b"x", 0);
        log.retract(offset);
    }

    /// What the log's buffers hold, counted afresh.
    fn held_counted(log: &Log) -> usize {
        log.segments.iter().map(Segment::held).sum()
    }

    #[test]
    fn held_memory_is_counted_through_every_change() {
        let mut log = Log::durable(
            Retention {
                max_bytes: 2000,
                max_messages: u64::MAX,
                segment_bytes: 512,
            },
            0,
            0,
        );
        let mut born = 0;
        for round in 0..40u64 {
            for size in [10, 100, 300, 600] {
                born += 1;
                let offset = push(&mut log, "t", &vec![1; size], born);
                assert_eq!(log.held(), held_counted(&log), "append of {size} bytes");
                if (round + size as u64) % 3 == 0 {
                    log.retract(offset);
                    assert_eq!(log.held(), held_counted(&log), "retract");
                } else {
                    log.reveal();
                }
                while log.pop_expired().is_some() {
                    assert_eq!(log.held(), held_counted(&log), "retention");
                }
            }
            if round % 7 == 6 {
                log.evict_oldest().unwrap();
                assert_eq!(log.held(), held_counted(&log), "evict");
            }
        }
        assert!(log.held() >= log.bytes() && log.bytes() > 0);
    }

    #[test]
    fn eviction_takes_the_oldest_buffer_and_then_the_newest_segment() {
        let mut log = log(usize::MAX, u64::MAX, 100);
        for born in 0..4 {
            push(&mut log, "t", &[born as u8; 60], 10 + born);
        }
        assert_eq!((log.first(), log.oldest_born()), (0, Some(10)));
        // Segments go oldest first, each moving `first` past its messages.
        assert_eq!(log.evict_oldest().map(|s| s.born), Some(10));
        assert_eq!((log.first(), log.oldest_born()), (1, Some(11)));
        log.evict_oldest();
        log.evict_oldest();
        // The newest segment too: the log then holds nothing and serves from its next append.
        assert_eq!(log.evict_oldest().map(|s| s.base), Some(3));
        assert_eq!((log.first(), log.next(), log.held()), (4, 4, 0));
        assert_eq!(log.oldest_born(), None);
        assert!(log.evict_oldest().is_none());
        assert_eq!(push(&mut log, "t", b"again", 20), 4);
        assert_eq!(log.message_at(4).map(|(_, m)| m.data), Some(&b"again"[..]));
    }

    #[test]
    fn segments_after_the_first_are_whole_and_reuse_what_the_pool_was_given() {
        let mut pool = SegmentPool::new(100, 4);
        let mut log = log(100, u64::MAX, 100);
        let append = |log: &mut Log, pool: &mut SegmentPool, born: u64| {
            log.append("t", 0, &Batch::one(&[0; 60]), born, pool);
            while let Some(seg) = log.pop_expired() {
                pool.give(seg);
            }
        };
        // The first segment grows with the log (here to a whole segment), outside the pool;
        // the second is the pool's first fresh one, and retention hands the first to the pool.
        append(&mut log, &mut pool, 0);
        assert_eq!((pool.allocated, pool.reused, pool.len()), (0, 0, 0));
        append(&mut log, &mut pool, 1);
        assert_eq!((pool.allocated, pool.reused, pool.len()), (1, 0, 1));
        // From then on, each segment retention frees serves the next one.
        for born in 2..10 {
            append(&mut log, &mut pool, born);
        }
        assert_eq!((pool.allocated, pool.reused, pool.len()), (1, 8, 1));
        assert_eq!(log.held(), held_counted(&log));
        // A frame larger than a segment gets a buffer of its own, not from the pool.
        log.append("t", 0, &Batch::one(&[0; 300]), 10, &mut pool);
        assert_eq!((pool.allocated, pool.reused), (1, 8));
    }
}
