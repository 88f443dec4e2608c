//! The read path: whole frames from an offset on, copied out of the segment files in bounded
//! chunks with their crc headers removed, every record checked on the way.

use mbus_proto::HEADER_LEN;

use super::error::{IoContext, StoreError};
use super::file::ReadAt;
use super::format::{CRC_LEN, Identity, RECORD_HEADER, frame_crc, parse_header};
use super::layout::log_path;
use super::record::{Expect, check_at};
use super::segment::{SealedFiles, position, same_position_run};
use super::{Frames, TopicStore};

/// Smallest and largest read of a segment file in one system call. A read asks for about the
/// bytes its caller still wants, so that small reads stay small and large ones take few calls.
const MIN_CHUNK: usize = 4 << 10;
const MAX_CHUNK: usize = 1 << 20;

impl TopicStore {
    /// Appends to `out` whole frames (length prefix included, crc headers removed) from
    /// `offset` on, as many as fit in `max_bytes`, and at least one if `offset < next()`
    /// however large. Records still in the write buffer are served from it, so a read sees every
    /// append without forcing a flush. Reading at or after `next()` appends nothing.
    ///
    /// Every record is checked (crc, topic and offset). If the record at `offset` itself is
    /// damaged the result is [`StoreError::Corrupt`] and `out` is unchanged: the caller reports
    /// it and reads on from `offset + 1`. A damaged record after `offset` ends the read before
    /// it, so the next read starts there and reports it; any other error after some frames were
    /// read does the same. An offset below `first()` is [`StoreError::Deleted`]. On error `out`
    /// is unchanged.
    pub fn read(
        &mut self,
        offset: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Frames, StoreError> {
        if offset < self.first() {
            return Err(StoreError::Deleted {
                topic: self.topic.clone(),
                offset,
                first: self.first(),
            });
        }
        let start = out.len();
        let mut budget = max_bytes;
        let mut at = offset;
        while at < self.next() {
            let first = at == offset;
            let before = out.len();
            let result = if at >= self.active.base {
                let view = View {
                    log: &self.active.log,
                    idx: &self.active.idx,
                    base: self.active.base,
                    end: self.active.end(),
                    log_len: self.active.log.len(),
                    id: &self.id,
                    topic: &self.topic,
                    path: self.active.log.path(),
                };
                read_segment(&view, at, &mut budget, out, first)
            } else {
                let i = self.sealed.partition_point(|s| s.base <= at) - 1;
                let seg = self.sealed[i];
                let end = self.sealed.get(i + 1).map_or(self.active.base, |s| s.base);
                if self.reader.as_ref().is_none_or(|r| r.base != seg.base) {
                    self.reader = None;
                    match SealedFiles::open(&self.files, &self.dir, seg.base) {
                        Ok(files) => self.reader = Some(files),
                        Err(e) if first => return Err(e),
                        Err(_) => break,
                    }
                }
                let files = self.reader.as_ref().expect("just opened");
                let path = log_path(&self.dir, seg.base);
                let view = View {
                    log: &files.log,
                    idx: &files.idx,
                    base: seg.base,
                    end,
                    log_len: seg.log_len,
                    id: &self.id,
                    topic: &self.topic,
                    path: &path,
                };
                read_segment(&view, at, &mut budget, out, first)
            };
            match result {
                Ok(stop) => {
                    at = stop.next;
                    if !stop.more {
                        break;
                    }
                }
                // An error after some frames were read ends the read with those frames; the
                // next read starts where this one failed and reports it. Either way `out` holds
                // only whole, checked frames.
                Err(e) => {
                    out.truncate(before);
                    if first {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        Ok(Frames {
            first: offset,
            next: at.max(offset),
            bytes: out.len() - start,
        })
    }
}

/// One segment as the read path sees it.
pub struct View<'a, R> {
    pub log: &'a R,
    pub idx: &'a R,
    /// Offset of its first record.
    pub base: u64,
    /// Offset after its last record.
    pub end: u64,
    /// Bytes of its log.
    pub log_len: u64,
    pub id: &'a Identity,
    pub topic: &'a str,
    pub path: &'a std::path::Path,
}

/// Where a read of one segment stopped.
pub struct Stop {
    /// The offset after the last frame appended.
    pub next: u64,
    /// Whether the caller may go on with the next segment: false once `budget` is spent or a
    /// damaged record ended the run.
    pub more: bool,
}

/// Appends to `out` the frames of `view` from offset `at` on, while they fit in `budget` bytes.
///
/// `first` says no frame was appended yet by this read: then the frame at `at` is appended even
/// if it exceeds the budget, and if it is damaged the result is [`StoreError::Corrupt`]. A later
/// damaged record just ends the run before it, so that the caller's next read starts there and
/// gets the error.
pub fn read_segment<R: ReadAt>(
    view: &View<'_, R>,
    at: u64,
    budget: &mut usize,
    out: &mut Vec<u8>,
    first: bool,
) -> Result<Stop, StoreError> {
    let io = |e: std::io::Error| StoreError::Io {
        path: view.path.to_owned(),
        source: e,
    };
    let pos = position(view.idx, at - view.base).map_err(io)?;
    match read_segment_at(view, at, pos, budget, out, first) {
        // The index entry of `at` may be what is damaged: where the log itself says the record
        // starts, right after the one before it, is tried before the record is given up, so
        // that every start position sees the same records.
        Err(StoreError::Corrupt { .. }) if first => {
            match position_from_log(view, at).map_err(io)? {
                Some(alt) if alt != pos => match read_segment_at(view, at, alt, budget, out, first)
                {
                    Ok(stop) => {
                        log::warn!(
                            "store: topic {}: the index entry of offset {at} in {} is damaged; \
                         the record was found after the one before it",
                            view.topic,
                            view.path.display()
                        );
                        Ok(stop)
                    }
                    Err(_) => read_segment_at(view, at, pos, budget, out, first),
                },
                _ => read_segment_at(view, at, pos, budget, out, first),
            }
        }
        result => result,
    }
}

/// Where the record of `at` starts by the log alone: 0 for a segment's first record, else
/// where the intact record of `at - 1` is, found through its own index entry, if it holds `at`
/// too, or right after it.
fn position_from_log<R: ReadAt>(view: &View<'_, R>, at: u64) -> std::io::Result<Option<u64>> {
    if at == view.base {
        return Ok(Some(0));
    }
    let prev = position(view.idx, at - 1 - view.base)?;
    let good = check_at(view.log, prev, view.log_len, view.id, Expect::Holds(at - 1))?;
    Ok(good.map(|g| {
        if at < g.offset + g.count {
            prev
        } else {
            prev + g.len
        }
    }))
}

/// [`read_segment`] from log position `pos`, where the record of `at` is expected.
fn read_segment_at<R: ReadAt>(
    view: &View<'_, R>,
    mut at: u64,
    mut pos: u64,
    budget: &mut usize,
    out: &mut Vec<u8>,
    mut first: bool,
) -> Result<Stop, StoreError> {
    let io = |e: std::io::Error| StoreError::Io {
        path: view.path.to_owned(),
        source: e,
    };
    let corrupt = |offset, until| StoreError::Corrupt {
        topic: view.topic.to_owned(),
        offset,
        until,
    };
    let stop = |next| Ok(Stop { next, more: false });
    while at < view.end {
        if !first && *budget == 0 {
            return stop(at);
        }
        let start = out.len();
        let want = budget
            .saturating_add(*budget / 8 + RECORD_HEADER)
            .clamp(MIN_CHUNK, MAX_CHUNK)
            .min(view.log_len.saturating_sub(pos) as usize);
        out.resize(start + want, 0);
        view.log.read_exact_at(&mut out[start..], pos).map_err(io)?;
        // Walk the chunk record by record, moving each frame down over the crc headers before it.
        let (mut p, mut w) = (0, start);
        let mut ended = false;
        while at < view.end && p + RECORD_HEADER <= want {
            let header = out[start + p..start + p + RECORD_HEADER]
                .try_into()
                .expect("header length");
            let (crc, len) = parse_header(header);
            let rec = RECORD_HEADER + len as usize;
            if p + rec > want {
                break;
            }
            let frame = start + p + CRC_LEN..start + p + rec;
            if !first && frame.len() > *budget {
                ended = true;
                break;
            }
            // The first record may start before `at` (a read from inside a batch); every later
            // one starts where the one before ended.
            let claim = (len > 0 && frame_crc(&out[frame.clone()]) == crc)
                .then(|| view.id.claim(&out[frame.start + HEADER_LEN..frame.end]))
                .flatten()
                .filter(|&(base, count)| {
                    if first {
                        base <= at && at - base < count
                    } else {
                        base == at
                    }
                });
            let Some((base, count)) = claim else {
                out.truncate(w);
                if !first {
                    return stop(at);
                }
                return Err(corrupt(at, damage_end(view, at, pos + p as u64)?));
            };
            *budget = budget.saturating_sub(frame.len());
            out.copy_within(frame.clone(), w);
            w += frame.len();
            p += rec;
            at = base + count;
            first = false;
        }
        out.truncate(w);
        if ended {
            return stop(at);
        }
        pos += p as u64;
        if p == 0 && at < view.end {
            // The record at `pos` does not fit in the chunk: it is large, or its length is
            // damaged. Check it in place before giving it room in `out`.
            let expect = if first {
                Expect::Holds(at)
            } else {
                Expect::Offset(at)
            };
            let good = check_at(view.log, pos, view.log_len, view.id, expect).at(view.path)?;
            let Some(good) = good else {
                if !first {
                    return stop(at);
                }
                return Err(corrupt(at, damage_end(view, at, pos)?));
            };
            let frame_len = (good.len - CRC_LEN as u64) as usize;
            if !first && frame_len > *budget {
                return stop(at);
            }
            out.resize(w + frame_len, 0);
            view.log
                .read_exact_at(&mut out[w..], pos + CRC_LEN as u64)
                .map_err(io)?;
            *budget = budget.saturating_sub(frame_len);
            pos += good.len;
            at = good.offset + good.count;
            first = false;
        }
    }
    Ok(Stop {
        next: at,
        more: true,
    })
}

/// Where the damage that the record of `at`, at log position `pos`, starts ends: recovery points
/// the index entries of records it found missing at the damage they are lost in, so the run
/// goes on while the entries point at `pos`, and stops early at a record there that holds a
/// later offset (one appended after recovery kept the missing offsets).
fn damage_end<R: ReadAt>(view: &View<'_, R>, at: u64, pos: u64) -> Result<u64, StoreError> {
    let io = |e: std::io::Error| StoreError::Io {
        path: view.path.to_owned(),
        source: e,
    };
    let run = view.base
        + same_position_run(view.idx, at - view.base, view.end - view.base, pos).map_err(io)?;
    if run <= at + 1 {
        return Ok(at + 1);
    }
    let found = check_at(
        view.log,
        pos,
        view.log_len,
        view.id,
        Expect::Within(at + 1, run),
    )
    .map_err(io)?;
    Ok(found.map_or(run, |good| good.offset))
}
