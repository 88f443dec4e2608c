//! Opening a topic's files after any kind of stop: checking each segment's index against its
//! log, scanning what the index does not cover, cutting a torn tail and finding records again
//! after damage, without ever reading more than the end of each segment in the usual case.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::error::{IoContext, StoreError};
use super::file::{AppendFile, ReadAt};
use super::format::{IDX_ENTRY, Identity, MIN_MESSAGE, RECORD_HEADER, parse_header};
use super::layout::{idx_path, list_segments, log_path};
use super::record::{Expect, Window, check_at};
use super::segment::{Sealed, entry, entry_at};

/// How many of an index's last entries are tried before it is rebuilt from the start of its log.
/// After a crash only the newest entries can be wrong; a longer run of bad ones means the index
/// is not worth trusting at all.
const MAX_BACKTRACK: u64 = 16;

/// What opening a topic found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The oldest offset the topic holds.
    pub first: u64,
    /// The offset the next append gets.
    pub next: u64,
    /// Segments found (a new topic has one, empty).
    pub segments: usize,
    /// Bytes cut from the ends of segment files: a torn last record, or bytes after the last
    /// record a segment should hold.
    pub truncated_bytes: u64,
    /// Index entries written by recovery, for a missing, short or damaged index.
    pub reindexed: u64,
    /// Offsets whose records were found damaged or missing in the parts recovery scanned. They
    /// stay in the topic and [`super::TopicStore::read`] reports each as corrupt.
    pub corrupt: Vec<Range<u64>>,
    /// Offsets the newest segment's index listed beyond what its log still holds: messages
    /// that were stored and are lost. They stay in the topic, as corrupt, so that the topic goes
    /// on after them and no offset is ever handed out twice.
    pub lost: Vec<Range<u64>>,
    /// How long opening took.
    pub elapsed: Duration,
}

/// The state recovery leaves the topic in.
pub struct Recovered {
    /// Every segment but the last.
    pub sealed: VecDeque<Sealed>,
    /// The last segment's base offset, log length and record count, if there is a segment.
    pub last: Option<(u64, u64, u64)>,
    /// The time of the newest record, 0 without one.
    pub last_time: u64,
    pub report: Recovery,
}

/// Recovers every segment of the topic directory `dir`.
pub fn recover(dir: &Path, id: &Identity, topic: &str) -> Result<Recovered, StoreError> {
    let listing = list_segments(dir)?;
    for base in listing.orphan_indexes {
        let path = idx_path(dir, base);
        log::info!(
            "store: topic {topic}: removing {}, which has no log",
            path.display()
        );
        std::fs::remove_file(&path).at(&path)?;
    }
    let mut report = Recovery::default();
    let mut sealed = VecDeque::new();
    let mut last = None;
    let mut last_time = 0;
    for (i, &base) in listing.logs.iter().enumerate() {
        // A segment before the last must hold every offset up to the next one's base.
        let expected = listing.logs.get(i + 1).map(|next| next - base);
        let (log_len, count, time) =
            recover_segment(dir, base, expected, id, topic, last_time, &mut report)?;
        last_time = time;
        match expected {
            Some(_) => sealed.push_back(Sealed { base, log_len }),
            None => last = Some((base, log_len, count)),
        }
    }
    report.segments = listing.logs.len();
    Ok(Recovered {
        sealed,
        last,
        last_time,
        report,
    })
}

/// Recovers one segment and returns its log length, its record count and the time of its last
/// record (`prev_time`, the time of the segment before, when it has none).
///
/// The index is trusted up to its last entry that points at an intact record of the right
/// offset (the check reads one record); the log after that record is scanned. A sealed segment
/// (`expected` records) that ends early keeps its missing offsets, reported as corrupt.
fn recover_segment(
    dir: &Path,
    base: u64,
    expected: Option<u64>,
    id: &Identity,
    topic: &str,
    prev_time: u64,
    report: &mut Recovery,
) -> Result<(u64, u64, u64), StoreError> {
    let log_p = log_path(dir, base);
    let idx_p = idx_path(dir, base);
    let log = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log_p)
        .at(&log_p)?;
    let log_len = log.metadata().at(&log_p)?.len();
    let idx = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&idx_p)
        .at(&idx_p)?;
    let idx_len = idx.metadata().at(&idx_p)?.len();
    let mut entries = idx_len / IDX_ENTRY;
    if let Some(e) = expected {
        entries = entries.min(e);
    }

    let win = Window::new(&log, log_len);
    let (trusted, mut pos, last_good) =
        trusted_prefix(&idx, &win, log_len, base, entries, id).at(&log_p)?;
    let last_good_time = last_good.map(|l| l.time);
    let mut k = trusted;
    // New entries overwrite the untrusted ones; the file is cut to length afterwards.
    let mut out = AppendFile::new(
        idx.try_clone().at(&idx_p)?,
        idx_p.clone(),
        trusted * IDX_ENTRY,
        64 << 10,
    );
    // Offsets whose record is damaged or missing get the time of the last good record before
    // them, so that the times of an index never go back.
    let mut time = last_good_time.unwrap_or(prev_time);
    let push = |out: &mut AppendFile<File>, pos: u64, time: u64| -> Result<(), StoreError> {
        if !out.fits(IDX_ENTRY as usize) {
            out.flush().at(&idx_p)?;
        }
        out.push(&entry(pos, time));
        Ok(())
    };
    // The last trusted entry may be one of a record's first offsets only (the index was cut
    // inside the entries of a batch): the rest of that record's offsets get theirs.
    if let Some(last) = last_good {
        let end = expected.map_or(last.end, |e| last.end.min(base + e));
        while base + k < end {
            push(&mut out, last.at, last.time)?;
            k += 1;
        }
    }
    while expected != Some(k) && pos < log_len {
        let offset = base + k;
        let fits = |count: u64| expected.is_none_or(|e| k + count <= e);
        let good = check_at(&win, pos, log_len, id, Expect::Offset(offset)).at(&log_p)?;
        if let Some(good) = good.filter(|g| fits(g.count)) {
            time = good.time;
            for _ in 0..good.count {
                push(&mut out, pos, time)?;
            }
            pos += good.len;
            k += good.count;
            continue;
        }
        // A record found after the damage cannot hold an offset beyond what the bytes in
        // between could hold, however its frame was crafted: each offset skipped costs an entry,
        // and a message at least 4 bytes.
        let room = offset + 1 + (log_len - pos) / MIN_MESSAGE;
        let hi = expected.map_or(room, |e| (base + e).min(room));
        let Some((next_pos, found)) = resync(&win, pos, log_len, id, offset + 1, hi).at(&log_p)?
        else {
            break;
        };
        // The offsets in between keep entries pointing at the damaged bytes, where a read finds
        // no intact record of their offset and reports them.
        for _ in offset..found {
            push(&mut out, pos, time)?;
        }
        log::warn!(
            "store: topic {topic}: offsets {offset}..{found} are corrupt in {}",
            log_p.display()
        );
        report.corrupt.push(offset..found);
        k = found - base;
        pos = next_pos;
    }
    if let Some(e) = expected.filter(|&e| k < e) {
        log::warn!(
            "store: topic {topic}: offsets {}..{} are missing from {}",
            base + k,
            base + e,
            log_p.display()
        );
        report.corrupt.push(base + k..base + e);
        for _ in k..e {
            push(&mut out, pos, time)?;
        }
        k = e;
    }
    // The newest segment's index was written after its log, so it lists more records than the
    // log holds only if the log lost some (it was cut, or the disk lost writes). Those offsets
    // were handed out, perhaps seen: they stay, as lost, and the topic goes on after them.
    let indexed = idx_len / IDX_ENTRY;
    if expected.is_none() && indexed > k {
        log::error!(
            "store: topic {topic}: offsets {}..{} are lost: {} no longer holds them; the topic goes \
             on after them",
            base + k,
            base + indexed,
            log_p.display()
        );
        report.lost.push(base + k..base + indexed);
        report.corrupt.push(base + k..base + indexed);
        for _ in k..indexed {
            push(&mut out, pos, time)?;
        }
        k = indexed;
    }
    out.flush().at(&idx_p)?;

    let mut changed = false;
    if k != trusted || idx_len != k * IDX_ENTRY {
        idx.set_len(k * IDX_ENTRY).at(&idx_p)?;
        report.reindexed += k - trusted;
        changed = true;
    }
    if pos < log_len {
        log::warn!(
            "store: topic {topic}: cutting {} bytes from offset {} on in {}",
            log_len - pos,
            base + k,
            log_p.display()
        );
        log.set_len(pos).at(&log_p)?;
        report.truncated_bytes += log_len - pos;
        changed = true;
    }
    if changed {
        // A repair that a crash could undo would let the next appends land after garbage.
        log.sync_data().at(&log_p)?;
        idx.sync_data().at(&idx_p)?;
    }
    Ok((pos, k, time))
}

/// The record the last trusted index entry points at.
#[derive(Debug, Clone, Copy)]
struct LastTrusted {
    /// Its time.
    time: u64,
    /// Its position in the log.
    at: u64,
    /// The offset after its last message.
    end: u64,
}

/// How many of the first `entries` index entries to trust, the position after the record the
/// last trusted one points at, and that record's time, position and end offset. An entry is
/// trusted when the record it points at is intact, holds its offset and the time it gives. Only the last entries are checked: earlier ones were written
/// long before and a read checks each record it serves anyway.
fn trusted_prefix(
    idx: &File,
    log: &impl ReadAt,
    log_len: u64,
    base: u64,
    entries: u64,
    id: &Identity,
) -> io::Result<(u64, u64, Option<LastTrusted>)> {
    let mut n = entries;
    for _ in 0..MAX_BACKTRACK {
        if n == 0 {
            break;
        }
        let (pos, time) = entry_at(idx, n - 1)?;
        if let Some(good) = check_at(log, pos, log_len, id, Expect::Holds(base + n - 1))? {
            if good.time == time {
                let last = LastTrusted {
                    time,
                    at: pos,
                    end: good.offset + good.count,
                };
                return Ok((n, pos + good.len, Some(last)));
            }
        }
        n -= 1;
    }
    Ok((0, 0, None))
}

/// Finds the intact record that follows the damaged one at `pos`, with an offset in `lo..hi`,
/// and returns its position and offset; the offset it holds says how many offsets the damage
/// took.
///
/// Two places are tried: where the damaged record's own length says the next one starts, and
/// the first place after `pos` that holds an intact record of this topic, found by searching for
/// the bytes all its frames start with. The one with the lower offset wins: an intact length
/// leads to `lo` itself, which nothing can beat (not even a record-like payload inside the
/// damaged record), while a damaged length may lead past intact records that the search finds.
fn resync(
    log: &impl ReadAt,
    pos: u64,
    end: u64,
    id: &Identity,
    lo: u64,
    hi: u64,
) -> io::Result<Option<(u64, u64)>> {
    if lo >= hi {
        return Ok(None);
    }
    let mut chained = None;
    if end - pos >= RECORD_HEADER as u64 {
        let mut header = [0; RECORD_HEADER];
        log.read_exact_at(&mut header, pos)?;
        let next = pos + RECORD_HEADER as u64 + u64::from(parse_header(&header).1);
        if let Some(good) = check_at(log, next, end, id, Expect::Within(lo, hi))? {
            if good.offset == lo {
                return Ok(Some((next, lo)));
            }
            chained = Some((next, good.offset));
        }
    }
    let searched = search(log, pos, end, id, lo, hi)?;
    Ok(match (chained, searched) {
        (Some(c), Some(s)) => Some(if s.1 < c.1 { s } else { c }),
        (c, s) => c.or(s),
    })
}

/// The first intact record after `pos` with an offset in `lo..hi`, by searching for the bytes
/// every frame body of this topic starts with; its position and offset.
fn search(
    log: &impl ReadAt,
    pos: u64,
    end: u64,
    id: &Identity,
    lo: u64,
    hi: u64,
) -> io::Result<Option<(u64, u64)>> {
    const CHUNK: u64 = 64 << 10;
    let pat = id.prefix();
    let plen = pat.len() as u64;
    // A record after `pos` has its body at `pos + 1 + RECORD_HEADER` or later.
    let mut from = pos + 1 + RECORD_HEADER as u64;
    let mut buf = Vec::new();
    while from + plen <= end {
        let n = CHUNK.min(end - from);
        buf.resize(n as usize, 0);
        log.read_exact_at(&mut buf, from)?;
        for (i, w) in buf.windows(pat.len()).enumerate() {
            if w != pat {
                continue;
            }
            let q = from + i as u64 - RECORD_HEADER as u64;
            if let Some(good) = check_at(log, q, end, id, Expect::Within(lo, hi))? {
                return Ok(Some((q, good.offset)));
            }
        }
        if from + n == end {
            break;
        }
        // Chunks overlap so that a pattern across their boundary is seen.
        from += n - (plen - 1);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::format::frame_crc;
    use mbus_proto::Frame;

    /// A log in memory, so that a test can lay out records at exact positions.
    struct Mem(Vec<u8>);

    impl ReadAt for Mem {
        fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
            let pos = pos as usize;
            let src = self
                .0
                .get(pos..pos + buf.len())
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    fn record(offset: u64, data: &[u8]) -> Vec<u8> {
        let frame = Frame::Deliver {
            topic: "t",
            offset,
            time: offset,
            batch: mbus_proto::Batch::one(data),
        }
        .to_bytes();
        let mut rec = frame_crc(&frame).to_le_bytes().to_vec();
        rec.extend_from_slice(&frame);
        rec
    }

    #[test]
    fn search_finds_a_record_across_its_chunk_boundaries() {
        let id = Identity::new("t");
        // The search reads 64 KiB chunks from position 9; put the next record's body start on
        // every position around the first boundary, and well past it.
        for q in (65_520..65_560).chain([200_000]) {
            let mut log = vec![0xee; q as usize];
            log.extend(record(7, b"found me"));
            let log = Mem(log);
            let end = log.0.len() as u64;
            assert_eq!(
                search(&log, 0, end, &id, 1, 100).unwrap(),
                Some((q, 7)),
                "{q}"
            );
            assert_eq!(search(&log, 0, end, &id, 8, 100).unwrap(), None, "{q}");
            assert_eq!(
                resync(&log, 0, end, &id, 1, 100).unwrap(),
                Some((q, 7)),
                "{q}"
            );
        }
    }

    #[test]
    fn resync_prefers_the_lowest_offset() {
        let id = Identity::new("t");
        let good = record(5, b"inside");
        // A damaged record whose intact length leads to offset 4, with a record-like payload
        // (offset 5) inside it: the length wins, as its offset is lower.
        let mut damaged = record(3, &good);
        damaged[0] ^= 1;
        let mut log = damaged.clone();
        log.extend(record(4, b"next"));
        let end = log.len() as u64;
        let mem = Mem(log);
        assert_eq!(
            resync(&mem, 0, end, &id, 4, 100).unwrap(),
            Some((damaged.len() as u64, 4))
        );
        // With the length damaged instead, the first intact record found wins.
        let mut log = record(3, b"aaaa");
        log[6] ^= 0x40;
        let after = log.len() as u64;
        log.extend(record(4, b"bbbb"));
        log.extend(record(5, b"cccc"));
        let end = log.len() as u64;
        assert_eq!(
            resync(&Mem(log), 0, end, &id, 4, 100).unwrap(),
            Some((after, 4))
        );
    }
}
