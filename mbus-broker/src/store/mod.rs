//! The on-disk topic store: each topic's `Deliver` frames in segment files, with an index of
//! positions and times per segment, recovered after a crash, trimmed by retention. Format
//! version 2 is specified in `STORAGE.md` at the repository root.
//!
//! A [`TopicStore`] owns one topic directory. Appends collect in a bounded write buffer;
//! [`TopicStore::flush`] hands them to the OS (they then survive the process being killed) and
//! [`TopicStore::sync`] makes them durable (they then survive power loss). Reads check every
//! record's crc and the topic and offset its frame holds, and report a damaged record by offset
//! so that the caller can skip it. Memory per topic is a few words per segment, whatever the
//! amount of data, plus the write buffer between a flush and the next.

mod checked;
mod error;
mod file;
mod files;
mod format;
mod groups;
mod layout;
pub mod memory;
mod pool;
mod producers;
mod read;
mod record;
mod recovery;
mod retention;
mod rollback;
mod segment;
mod time_index;
mod upgrade;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mbus_proto::{Frame, HEADER_LEN};

pub use crate::engine::storage::Frames;
pub use error::StoreError;
pub use files::{BATCH_INTERVAL, FileStorage, Fsync};
pub use format::FORMAT_VERSION;
pub use memory::MemoryStorage;
pub use pool::{FilePool, MIN_OPEN_FILES, PoolStats, STANDALONE_OPEN_FILES};
pub use recovery::Recovery;
pub use upgrade::{Upgraded, upgrade};

use format::{CRC_LEN, Identity, TOPICS_DIR};
use segment::{Active, Sealed, SealedFiles};

/// How a topic is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Size at which a segment is sealed and a new one started. A record larger than this gets
    /// a segment of its own.
    pub segment_bytes: u64,
    /// Most bytes of segment files to keep; whole oldest segments go first, never the active one.
    pub retention_bytes: u64,
    /// Oldest a sealed segment's newest record may be, by its file's modification time.
    pub retention_age: Option<Duration>,
    /// Size of the write buffer of the active segment's log; its index gets a quarter of that.
    /// A topic holds up to this much memory between an append and the next flush.
    pub write_buffer: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            segment_bytes: 64 << 20,
            retention_bytes: 1 << 30,
            retention_age: None,
            write_buffer: 256 << 10,
        }
    }
}

/// One topic's segments on disk.
#[derive(Debug)]
pub struct TopicStore {
    topic: String,
    data_dir: PathBuf,
    dir: PathBuf,
    config: StoreConfig,
    id: Identity,
    /// Where its files are opened, shared with the broker's other topics.
    files: FilePool,
    /// The segments before the active one, oldest first.
    sealed: VecDeque<Sealed>,
    active: Active,
    /// Where the last commit left the active segment, for [`TopicStore::rollback`].
    committed: rollback::CommitPoint,
    /// Bytes of all segment files, logs and indexes, buffered ones included.
    bytes: u64,
    /// The time of the newest record, 0 without one.
    last_time: u64,
    /// The last sealed segment a read opened, kept for the reads that follow it.
    reader: Option<SealedFiles>,
    /// A segment file was created or deleted since the last sync (or the store was opened): the
    /// directory needs a sync too.
    dir_dirty: bool,
    /// The topic directory was created by `open` and its own entry is not durable yet.
    parents_dirty: bool,
}

impl TopicStore {
    /// Opens `topic` under `data_dir`, creating it if it does not exist, and recovers its files
    /// from whatever state a crash left them in (see `STORAGE.md`, "Recovery"). Its files are
    /// kept in a pool of its own of [`STANDALONE_OPEN_FILES`].
    pub fn open(
        data_dir: &Path,
        topic: &str,
        config: StoreConfig,
    ) -> Result<(TopicStore, Recovery), StoreError> {
        Self::open_in(
            data_dir,
            topic,
            config,
            &FilePool::new(STANDALONE_OPEN_FILES),
        )
    }

    /// [`TopicStore::open`], keeping the topic's open files in `files`, shared with others.
    pub fn open_in(
        data_dir: &Path,
        topic: &str,
        config: StoreConfig,
        files: &FilePool,
    ) -> Result<(TopicStore, Recovery), StoreError> {
        let started = Instant::now();
        let dir = layout::topic_dir(data_dir, topic)?;
        layout::check_version(data_dir)?;
        let created = layout::create_topic_dir(&dir)?;
        let id = Identity::new(topic);
        let recovery::Recovered {
            sealed,
            last,
            last_time,
            mut report,
        } = recovery::recover(&dir, &id, topic)?;
        let active = match last {
            Some((base, log_len, count)) => {
                Active::open(files, &dir, base, log_len, count, config.write_buffer)?
            }
            None => Active::create(files, &dir, 0, config.write_buffer)?,
        };
        report.segments = report.segments.max(1);
        let bytes = disk_bytes(&sealed, &active);
        let store = TopicStore {
            topic: topic.to_owned(),
            data_dir: data_dir.to_owned(),
            dir,
            config,
            id,
            files: files.clone(),
            sealed,
            committed: rollback::CommitPoint::of(&active, last_time),
            active,
            bytes,
            last_time,
            reader: None,
            // Recovery may have created or removed files, and a new topic has a new segment:
            // the first sync makes the directory durable once rather than tracking which.
            dir_dirty: true,
            parents_dirty: created,
        };
        report.first = store.first();
        report.next = store.next();
        report.elapsed = started.elapsed();
        log::info!(
            "store: topic {topic}: offsets {}..{} in {} segments, {} bytes cut, {} index entries \
             rebuilt, {} corrupt ranges, opened in {:?}",
            report.first,
            report.next,
            report.segments,
            report.truncated_bytes,
            report.reindexed,
            report.corrupt.len(),
            report.elapsed
        );
        Ok((store, report))
    }

    /// The topic's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The oldest offset the store holds.
    pub fn first(&self) -> u64 {
        self.sealed.front().map_or(self.active.base, |s| s.base)
    }

    /// The offset the next append must have; the store holds `first()..next()`.
    pub fn next(&self) -> u64 {
        self.active.end()
    }

    /// Bytes of all segment files, logs and indexes, buffered appends included: what retention
    /// bounds. An index takes 16 bytes an offset, which for tiny messages is more than their
    /// records, so it counts too.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The time of the newest record, in milliseconds since the Unix epoch; 0 without one.
    pub fn last_time(&self) -> u64 {
        self.last_time
    }

    /// Appends the encoded `Deliver` frame of a batch from `offset` on, which must be `next()`;
    /// its messages take the offsets after.
    ///
    /// The frame must be exactly what the broker sends: length prefix included, encoded as
    /// `Frame::encode` does, of this topic and this offset. The record goes to the write buffer
    /// and reaches the OS when the buffer fills or at [`TopicStore::flush`]. When the active
    /// segment cannot take it within `segment_bytes`, that segment is sealed (written and
    /// fdatasynced) and a new one is created. On error nothing was appended.
    pub fn append(&mut self, offset: u64, frame: &[u8]) -> Result<(), StoreError> {
        if offset != self.next() {
            return Err(StoreError::OffsetMismatch {
                topic: self.topic.clone(),
                expected: self.next(),
                got: offset,
            });
        }
        let Some((time, count)) = self.own_frame(offset, frame) else {
            return Err(StoreError::InvalidFrame {
                topic: self.topic.clone(),
                offset,
            });
        };
        let rec = (CRC_LEN + frame.len()) as u64;
        let len = self.active.log.len();
        if len > 0 && len + rec > self.config.segment_bytes {
            self.roll()?;
        }
        self.active.append(frame, time, count)?;
        self.bytes += rec + count * format::IDX_ENTRY;
        self.last_time = time;
        Ok(())
    }

    /// The time and the message count of `frame` if it is a whole, canonical `Deliver` of this
    /// topic from `offset` on, every message at delta 0, stored no earlier than the newest
    /// record: so that every stored record can later prove which offsets it holds, and the
    /// index's times, one per offset, never go back.
    fn own_frame(&self, offset: u64, frame: &[u8]) -> Option<(u64, u64)> {
        let (prefix, body) = frame.split_first_chunk::<HEADER_LEN>()?;
        if u32::from_be_bytes(*prefix) as usize != body.len() || !self.id.matches(body, offset) {
            return None;
        }
        let Ok(Frame::Deliver { time, batch, .. }) = Frame::parse(body) else {
            return None;
        };
        (time >= self.last_time && batch.all_at_base()).then_some((time, batch.len() as u64))
    }

    /// Seals the active segment and starts the next one. If creating it fails, the old segment
    /// stays active and the next append tries again.
    fn roll(&mut self) -> Result<(), StoreError> {
        let sealed = self.active.seal()?;
        let next = Active::create(
            &self.files,
            &self.dir,
            self.next(),
            self.config.write_buffer,
        )?;
        self.active = next;
        self.sealed.push_back(sealed);
        self.dir_dirty = true;
        Ok(())
    }

    /// Hands every buffered record to the OS. Afterwards, killing the process loses nothing
    /// appended; a power loss still may. The write buffers' memory is given back, so that a
    /// topic between bursts holds none: many topics cost memory only while they are written.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.active.flush()?;
        self.active.release();
        Ok(())
    }

    /// Flushes, then makes durable what was written since the last sync: the active segment's
    /// log and index data, and the directory entries of segments created or deleted (and of the
    /// topic directory itself after it was created). Afterwards, a power loss loses nothing
    /// appended. Sealed segments were made durable when they were sealed.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.active.sync()?;
        self.active.release();
        if self.dir_dirty {
            layout::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        if self.parents_dirty {
            let topics = self.data_dir.join(TOPICS_DIR);
            layout::sync_dir(&topics)?;
            layout::sync_dir(&self.data_dir)?;
            self.parents_dirty = false;
        }
        Ok(())
    }
}

/// The bytes of `sealed` and `active`'s files: each log, and each index's entries, one an offset.
fn disk_bytes(sealed: &VecDeque<Sealed>, active: &Active) -> u64 {
    let ends = sealed.iter().skip(1).map(|s| s.base).chain([active.base]);
    let sealed_bytes: u64 = sealed
        .iter()
        .zip(ends)
        .map(|(s, end)| s.log_len + (end - s.base) * format::IDX_ENTRY)
        .sum();
    sealed_bytes + active.log.len() + active.count * format::IDX_ENTRY
}

impl Drop for TopicStore {
    /// Hands buffered records to the OS, as `BufWriter` does, so that closing a store without a
    /// last `flush` does not lose them. A failure can only be logged here.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::warn!("store: topic {}: flush on close failed: {e}", self.topic);
        }
    }
}
