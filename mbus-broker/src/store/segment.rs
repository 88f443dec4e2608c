//! Segments: the active one that appends go to, the sealed ones before it, and the files a read
//! of a sealed segment opens.

use std::fs::OpenOptions;
use std::path::Path;

use super::error::{IoContext, StoreError};
use super::file::{AppendFile, ReadAt};
use super::format::{CRC_LEN, IDX_ENTRY, frame_crc};
use super::layout::{idx_path, log_path};
use super::pool::{FilePool, PooledFile};

/// The segment appends go to: its log and index files, open, with their write buffers.
#[derive(Debug)]
pub struct Active {
    /// Offset of its first record.
    pub base: u64,
    /// The records.
    pub log: AppendFile,
    /// One position and time per record.
    pub idx: AppendFile,
    /// Records it holds.
    pub count: u64,
    /// Whether anything was written since the last sync.
    dirty: bool,
}

impl Active {
    /// Creates the files of a new, empty segment. Neither may exist: a name is never reused.
    pub fn create(
        files: &FilePool,
        dir: &Path,
        base: u64,
        buffer: usize,
    ) -> Result<Active, StoreError> {
        let log_p = log_path(dir, base);
        let idx_p = idx_path(dir, base);
        let new = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(p)
                .at(p)
        };
        let log = new(&log_p)?;
        let idx = match new(&idx_p) {
            Ok(f) => f,
            Err(e) => {
                // Without its index the log would be rebuilt at the next open; better not leave it.
                let _ = std::fs::remove_file(&log_p);
                return Err(e);
            }
        };
        Ok(Active {
            base,
            log: AppendFile::new(files.adopt(log, log_p.clone(), true), log_p, 0, buffer),
            idx: AppendFile::new(
                files.adopt(idx, idx_p.clone(), true),
                idx_p,
                0,
                idx_buffer(buffer),
            ),
            count: 0,
            dirty: false,
        })
    }

    /// Opens the files of a segment that recovery left with `count` records in `log_len` bytes.
    pub fn open(
        files: &FilePool,
        dir: &Path,
        base: u64,
        log_len: u64,
        count: u64,
        buffer: usize,
    ) -> Result<Active, StoreError> {
        let open = |p: &Path| files.open(p.to_owned(), true).at(p);
        let log_p = log_path(dir, base);
        let idx_p = idx_path(dir, base);
        Ok(Active {
            base,
            log: AppendFile::new(open(&log_p)?, log_p, log_len, buffer),
            idx: AppendFile::new(open(&idx_p)?, idx_p, count * IDX_ENTRY, idx_buffer(buffer)),
            count,
            dirty: false,
        })
    }

    /// The offset after its last record.
    pub fn end(&self) -> u64 {
        self.base + self.count
    }

    /// Keeps only its first `count` records, `log_len` bytes, in memory and in both files.
    pub fn truncate(&mut self, log_len: u64, count: u64) -> Result<(), StoreError> {
        self.log.truncate(log_len).at(self.log.path())?;
        self.idx.truncate(count * IDX_ENTRY).at(self.idx.path())?;
        self.count = count;
        self.dirty = true;
        Ok(())
    }

    /// Appends one record of `count` offsets, stored at `time`: an index entry for each. On
    /// error nothing was appended and the segment is unchanged.
    pub fn append(&mut self, frame: &[u8], time: u64, count: u64) -> Result<(), StoreError> {
        let crc = frame_crc(frame).to_le_bytes();
        let rec = CRC_LEN + frame.len();
        let pos = self.log.len();
        let entries = (count * IDX_ENTRY) as usize;
        if !self.log.fits(rec) || !self.idx.fits(entries) {
            self.flush()?;
        }
        if self.log.fits(rec) {
            self.log.push(&crc);
            self.log.push(frame);
        } else {
            // A record larger than the whole buffer goes straight to the file rather than being
            // copied into a buffer grown for it.
            self.log.write_direct(&[&crc, frame]).at(self.log.path())?;
        }
        let entry = entry(pos, time);
        if self.idx.fits(entries) {
            for _ in 0..count {
                self.idx.push(&entry);
            }
        } else {
            // More entries than the index's buffer holds: the record goes to the file first, so
            // that no entry ever reaches it before the record it points at.
            self.log.flush().at(self.log.path())?;
            let all: Vec<u8> = entry.repeat(count as usize);
            self.idx.write_direct(&[&all]).at(self.idx.path())?;
        }
        self.count += count;
        self.dirty = true;
        Ok(())
    }

    /// Appends the index entry of an offset whose record is lost (a damaged record of format 1,
    /// which the upgrade keeps corrupt): it points at the end of the log, where no record of
    /// its offset is, and has the time of the records before it.
    pub fn append_missing(&mut self, time: u64) -> Result<(), StoreError> {
        if !self.idx.fits(IDX_ENTRY as usize) {
            self.flush()?;
        }
        self.idx.push(&entry(self.log.len(), time));
        self.count += 1;
        self.dirty = true;
        Ok(())
    }

    /// Hands buffered bytes to the OS: the log first, so that an index entry never reaches the
    /// file before the record it points at.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.log.flush().at(self.log.path())?;
        self.idx.flush().at(self.idx.path())
    }

    /// Gives the memory of both write buffers back, once they are flushed.
    pub fn release(&mut self) {
        self.log.release();
        self.idx.release();
    }

    /// Flushes, then makes the log's data durable if anything was written since the last sync:
    /// one fdatasync. The index is not synced here: recovery rebuilds whatever part of the
    /// newest segment's index a power loss took from its log (STORAGE.md, section 7).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        if self.dirty {
            self.log.sync_data().at(self.log.path())?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Makes the segment complete and durable, its index included, before a later one is
    /// created, so that only the newest segment can ever be found torn after a crash, and only
    /// the newest segment's index ever needs rebuilding. Costs two fdatasyncs per segment.
    pub fn seal(&mut self) -> Result<Sealed, StoreError> {
        self.log.trim().at(self.log.path())?;
        self.dirty = true;
        self.sync()?;
        self.idx.sync_data().at(self.idx.path())?;
        Ok(Sealed {
            base: self.base,
            log_len: self.log.len(),
        })
    }
}

/// What the store keeps in memory about a segment before the active one: a few bytes, whatever
/// its size; its record count is the next segment's base minus its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// Offset of its first record.
    pub base: u64,
    /// Bytes of its log file.
    pub log_len: u64,
}

/// The files of one sealed segment, opened for reading and kept until a read needs another.
#[derive(Debug)]
pub struct SealedFiles {
    /// The segment's base offset.
    pub base: u64,
    /// Its log file.
    pub log: PooledFile,
    /// Its index file.
    pub idx: PooledFile,
}

impl SealedFiles {
    /// Opens a sealed segment's files read-only.
    pub fn open(files: &FilePool, dir: &Path, base: u64) -> Result<SealedFiles, StoreError> {
        let log_p = log_path(dir, base);
        let idx_p = idx_path(dir, base);
        Ok(SealedFiles {
            base,
            log: files.open(log_p.clone(), false).at(&log_p)?,
            idx: files.open(idx_p.clone(), false).at(&idx_p)?,
        })
    }
}

/// The index entry of a record at `pos` stored at `time`.
pub fn entry(pos: u64, time: u64) -> [u8; IDX_ENTRY as usize] {
    let mut e = [0; IDX_ENTRY as usize];
    e[..8].copy_from_slice(&pos.to_le_bytes());
    e[8..].copy_from_slice(&time.to_le_bytes());
    e
}

/// The file position of record `i` of a segment, read from its index: one pread.
pub fn position(idx: &impl ReadAt, i: u64) -> std::io::Result<u64> {
    entry_at(idx, i).map(|(pos, _)| pos)
}

/// The file position and time of record `i` of a segment, read from its index: one pread.
pub fn entry_at(idx: &impl ReadAt, i: u64) -> std::io::Result<(u64, u64)> {
    let mut e = [0; IDX_ENTRY as usize];
    idx.read_exact_at(&mut e, i * IDX_ENTRY)?;
    let (pos, time) = e.split_at(8);
    Ok((
        u64::from_le_bytes(pos.try_into().expect("8 bytes")),
        u64::from_le_bytes(time.try_into().expect("8 bytes")),
    ))
}

/// The first of the records `i + 1 .. count` of a segment whose index entry points elsewhere
/// than `pos`, or `count`. Recovery points the entries of missing records at the damage they are
/// lost in, so this is where a run of them ends. Reads the index 8,192 entries at a time.
pub fn same_position_run(idx: &impl ReadAt, i: u64, count: u64, pos: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 8192;
    let mut buf = vec![0; (CHUNK * IDX_ENTRY) as usize];
    let mut at = i + 1;
    while at < count {
        let n = (count - at).min(CHUNK);
        let bytes = &mut buf[..(n * IDX_ENTRY) as usize];
        idx.read_exact_at(bytes, at * IDX_ENTRY)?;
        let differs = bytes
            .chunks_exact(IDX_ENTRY as usize)
            .position(|e| u64::from_le_bytes(e[..8].try_into().expect("8 bytes")) != pos);
        if let Some(k) = differs {
            return Ok(at + k as u64);
        }
        at += n;
    }
    Ok(count)
}

/// The index's buffer: a quarter of the log's, enough for one entry per 64 bytes of records.
fn idx_buffer(buffer: usize) -> usize {
    (buffer / 4).max(IDX_ENTRY as usize)
}
