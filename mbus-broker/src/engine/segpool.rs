//! The broker-wide pool of segment buffers: what retention, the memory budget or a deleted topic
//! takes out of a log is kept, up to a bound, for the next segment any topic starts.
//!
//! A broker at its limits then reuses memory it already has, instead of returning it to the
//! system and faulting fresh pages in for the next segment (on a virtual machine the slowest
//! thing a busy broker does). Only whole segments are kept, buffers of the configured segment
//! size: a small topic's first segment, which grows with it, and a segment made for one frame
//! larger than the segment size are let go. The pool holds at most [`SegmentPool::max_segments`]
//! buffers; what it holds is memory on top of what the logs hold, bounded by
//! [`pool_segments`].

use super::memlog::Segment;

/// The most buffers a pool keeps, whatever the memory budget.
pub const MAX_POOL_SEGMENTS: usize = 16;

/// How many buffers of `segment_bytes` a broker with a memory budget of `max_memory` keeps
/// pooled: at most [`MAX_POOL_SEGMENTS`] and at most an eighth of the budget, but at least one,
/// so that a log at its retention reuses its own segment.
pub fn pool_segments(max_memory: usize, segment_bytes: usize) -> usize {
    (max_memory / 8 / segment_bytes.max(1)).clamp(1, MAX_POOL_SEGMENTS)
}

/// Segment buffers not in use, and how often they served.
#[derive(Debug)]
pub struct SegmentPool {
    free: Vec<Segment>,
    segment_bytes: usize,
    max_segments: usize,
    /// Bytes the pooled buffers hold.
    held: usize,
    /// Segments started with a pooled buffer, since start.
    pub reused: u64,
    /// Whole segments started with fresh memory, since start.
    pub allocated: u64,
}

impl SegmentPool {
    /// An empty pool of buffers of `segment_bytes`, keeping at most `max_segments`.
    pub fn new(segment_bytes: usize, max_segments: usize) -> Self {
        SegmentPool {
            free: Vec::new(),
            segment_bytes,
            max_segments,
            held: 0,
            reused: 0,
            allocated: 0,
        }
    }

    /// The most buffers the pool keeps.
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// Bytes of memory the pooled buffers hold.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Buffers pooled now.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// Whether no buffer is pooled.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// An empty segment for offset `base`, stamped `born`, whose buffer holds a whole segment
    /// without growing: a pooled one if there is one, else fresh memory.
    pub fn take(&mut self, base: u64, born: u64) -> Segment {
        let mut seg = match self.free.pop() {
            Some(seg) => {
                self.held -= seg.held();
                self.reused += 1;
                seg
            }
            None => {
                self.allocated += 1;
                Segment {
                    base,
                    born,
                    buf: Vec::with_capacity(self.segment_bytes),
                    starts: Vec::new(),
                }
            }
        };
        seg.base = base;
        seg.born = born;
        seg
    }

    /// Keeps `seg`'s buffers for a later segment if it is a whole segment and the pool has room;
    /// lets them go otherwise.
    pub fn give(&mut self, mut seg: Segment) {
        let whole = (self.segment_bytes..=self.segment_bytes + self.segment_bytes / 4)
            .contains(&seg.buf.capacity());
        if whole && self.free.len() < self.max_segments {
            seg.buf.clear();
            seg.starts.clear();
            self.held += seg.held();
            self.free.push(seg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(capacity: usize) -> Segment {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(b"frames");
        Segment {
            base: 7,
            born: 3,
            buf,
            starts: vec![0, 0, 0],
        }
    }

    #[test]
    fn a_buffer_given_back_serves_the_next_segment_cleared() {
        let mut pool = SegmentPool::new(1024, 2);
        let fresh = pool.take(0, 1);
        assert_eq!((pool.allocated, pool.reused), (1, 0));
        assert!(fresh.buf.capacity() >= 1024 && fresh.buf.is_empty());
        let pointer = fresh.buf.as_ptr();
        pool.give(fresh);
        assert_eq!(pool.len(), 1);
        assert!(pool.held() >= 1024);
        let again = pool.take(40, 9);
        assert_eq!(again.buf.as_ptr(), pointer, "the same memory");
        assert_eq!((again.base, again.born), (40, 9));
        assert!(again.buf.is_empty() && again.starts.is_empty());
        assert_eq!((pool.allocated, pool.reused, pool.held()), (1, 1, 0));
    }

    #[test]
    fn only_whole_segments_are_kept_and_no_more_than_the_bound() {
        let mut pool = SegmentPool::new(1024, 2);
        pool.give(segment(100));
        pool.give(segment(4096));
        assert!(
            pool.is_empty(),
            "a grown first segment or an oversized one is let go"
        );
        for _ in 0..3 {
            pool.give(segment(1024));
        }
        assert_eq!(pool.len(), 2);
        let held: usize = pool.free.iter().map(Segment::held).sum();
        assert_eq!(pool.held(), held);
        let seg = pool.take(0, 0);
        assert_eq!(seg.buf, b"", "given back cleared");
    }

    #[test]
    fn the_bound_follows_the_budget() {
        const MIB: usize = 1 << 20;
        assert_eq!(pool_segments(usize::MAX, MIB), MAX_POOL_SEGMENTS);
        assert_eq!(pool_segments(256 * MIB, MIB), 16);
        assert_eq!(pool_segments(64 * MIB, MIB), 8);
        assert_eq!(pool_segments(MIB, MIB), 1);
    }
}
