//! Finding a time: the first offset stored at or after a time of day, by binary search over the
//! times each segment's index holds beside its positions, reading no record before it.

use super::TopicStore;
use super::error::StoreError;
use super::layout::idx_path;
use super::segment::{SealedFiles, entry_at};

impl TopicStore {
    /// The offset of the first record stored at or after `ms` (milliseconds since the Unix
    /// epoch), or `next()` when none is.
    ///
    /// Each segment's first time decides which segment holds the answer (a binary search over
    /// the segments, one index entry read per step), then a binary search over that segment's
    /// index finds the offset: about `log2(segments) + log2(records)` reads of 16 bytes, and no
    /// read of a log. The times are the ones the index holds; recovery checks them against the
    /// records it checks, and a damaged index entry can only misplace the answer, never serve
    /// a wrong message.
    pub fn offset_at_time(&mut self, ms: u64) -> Result<u64, StoreError> {
        if self.last_time < ms || self.first() == self.next() {
            return Ok(self.next());
        }
        let segments = self.sealed.len() + 1;
        // The number of segments whose first record is earlier than `ms`: the answer is in the
        // last of them, or starts the one after it.
        let (mut lo, mut hi) = (0, segments);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.time_in(mid, 0)? {
                Some(t) if t < ms => lo = mid + 1,
                _ => hi = mid,
            }
        }
        if lo == 0 {
            return Ok(self.first());
        }
        let seg = lo - 1;
        let (base, count) = self.span(seg);
        let (mut lo, mut hi) = (1, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.time_in(seg, mid)? {
                Some(t) if t < ms => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(base + lo)
    }

    /// The base offset and record count of segment `i`, the active one last.
    fn span(&self, i: usize) -> (u64, u64) {
        match self.sealed.get(i) {
            Some(seg) => {
                let end = self.sealed.get(i + 1).map_or(self.active.base, |s| s.base);
                (seg.base, end - seg.base)
            }
            None => (self.active.base, self.active.count),
        }
    }

    /// The time index entry `k` of segment `i` gives, `None` past its last record.
    fn time_in(&mut self, i: usize, k: u64) -> Result<Option<u64>, StoreError> {
        let (base, count) = self.span(i);
        if k >= count {
            return Ok(None);
        }
        let io = |e| StoreError::Io {
            path: idx_path(&self.dir, base),
            source: e,
        };
        if i == self.sealed.len() {
            return entry_at(&self.active.idx, k)
                .map(|(_, t)| Some(t))
                .map_err(io);
        }
        if self.reader.as_ref().is_none_or(|r| r.base != base) {
            self.reader = None;
            self.reader = Some(SealedFiles::open(&self.files, &self.dir, base)?);
        }
        let files = self.reader.as_ref().expect("just opened");
        entry_at(&files.idx, k).map(|(_, t)| Some(t)).map_err(io)
    }
}
