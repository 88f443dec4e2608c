//! Storage in memory with fault injection, behind the same trait as the file store: for tests,
//! the fuzz target and the simulation. It models what survives a crash of the process (what
//! was committed) and a power loss (what was synced), and can fail any call on demand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::files::{BATCH_INTERVAL, Fsync};
use super::{Frames, StoreError};
use crate::engine::storage::{ProducerEntry, Storage, TopicStorage};

/// A call of the storage that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// [`Storage::open`].
    Open,
    /// [`TopicStorage::append`].
    Append,
    /// [`TopicStorage::commit`].
    Commit,
    /// [`TopicStorage::sync`].
    Sync,
    /// [`TopicStorage::read`].
    Read,
}

/// What a crash keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The process died: what was committed is kept, as the OS still had it.
    Process,
    /// The machine lost power: only what was synced is kept.
    PowerLoss,
    /// The process died in the middle of writing: what was committed is kept, and the first
    /// half of the record after it, which the next `open` finds torn and cuts.
    Torn,
}

/// Topics in memory, shared by every clone: a test keeps one to inject faults and crash it,
/// and hands another to the engine.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug)]
struct Disk {
    fsync: Fsync,
    retention_bytes: u64,
    topics: BTreeMap<String, Topic>,
    /// How many of the next calls of each kind fail.
    faults: BTreeMap<Op, u32>,
    /// The system error they fail with, if not a generic one.
    errno: Option<i32>,
}

/// One offset of a topic: the record that holds it, shared by the offsets of a batch.
#[derive(Debug, Clone)]
struct Slot {
    /// The record's first offset.
    start: u64,
    frame: Arc<[u8]>,
}

#[derive(Debug, Default)]
struct Topic {
    /// The offset of `records[0]`.
    first: u64,
    /// One slot per offset.
    records: VecDeque<Slot>,
    bytes: u64,
    /// Offsets below this were committed: what a rollback goes back to. A sync may write
    /// more (what was appended since), as the file store's does.
    committed: u64,
    /// Offsets below this survive a crash of the process.
    written: u64,
    /// Offsets below this survive a power loss.
    synced: u64,
    /// Offsets whose records read back as damaged.
    corrupt: BTreeSet<u64>,
    /// Torn records cut when the topic was last opened.
    torn_cut: u64,
    /// The time of each record, its time index.
    times: VecDeque<u64>,
    /// The offset each read started at, oldest first, so that a test can see what was read.
    reads: Vec<u64>,
    /// Each consumer group's saved state: the last saved, which a crash of the process keeps,
    /// and the last synced, which a power loss keeps.
    groups: BTreeMap<String, (Vec<u8>, Option<Vec<u8>>)>,
    /// The idempotent producers' entries, written with their publishes: a crash of the process
    /// keeps them all, a power loss the first `producers_synced`, a rollback the first
    /// `producers_committed`.
    producers: Vec<ProducerEntry>,
    producers_committed: usize,
    producers_synced: usize,
}

impl Topic {
    fn next(&self) -> u64 {
        self.first + self.records.len() as u64
    }

    /// Removes the slot of the last offset, counting its record's bytes off with its first.
    fn pop_back(&mut self) -> Option<Slot> {
        let offset = self.next().checked_sub(1)?;
        let slot = self.records.pop_back()?;
        if slot.start == offset {
            self.bytes -= slot.frame.len() as u64;
        }
        Some(slot)
    }

    /// Keeps only the records below `end`.
    fn truncate(&mut self, end: u64) {
        let keep = end.saturating_sub(self.first) as usize;
        while self.records.len() > keep {
            self.pop_back();
        }
        self.times.truncate(keep);
        self.committed = self.committed.min(end);
        self.written = self.written.min(end);
        self.synced = self.synced.min(end);
    }
}

impl MemoryStorage {
    /// Empty storage whose commits follow `fsync`, keeping at most `retention_bytes` per topic.
    pub fn new(fsync: Fsync, retention_bytes: u64) -> Self {
        MemoryStorage {
            disk: Arc::new(Mutex::new(Disk {
                fsync,
                retention_bytes,
                topics: BTreeMap::new(),
                faults: BTreeMap::new(),
                errno: None,
            })),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the next `count` calls of `op`, on any topic, fail.
    pub fn fail_next(&self, op: Op, count: u32) {
        *self.disk().faults.entry(op).or_default() += count;
    }

    /// Makes the next `count` calls of `op` fail as the system does with error number `errno`
    /// (24 for EMFILE, 28 for ENOSPC, ...).
    pub fn fail_next_with(&self, op: Op, count: u32, errno: i32) {
        let mut disk = self.disk();
        *disk.faults.entry(op).or_default() += count;
        disk.errno = Some(errno);
    }

    /// Makes the record of `offset` in `topic` read back as damaged.
    pub fn corrupt(&self, topic: &str, offset: u64) {
        if let Some(t) = self.disk().topics.get_mut(topic) {
            t.corrupt.insert(offset);
        }
    }

    /// Throws away what `crash` does not keep. The engine that used the storage must be dropped
    /// first; a new one recovers what is left.
    pub fn crash(&self, crash: Crash) {
        let mut disk = self.disk();
        disk.faults.clear();
        disk.errno = None;
        for topic in disk.topics.values_mut() {
            let end = match crash {
                Crash::Process | Crash::Torn => topic.written,
                Crash::PowerLoss => topic.synced,
            };
            let torn = (crash == Crash::Torn)
                .then(|| topic.records.get((end - topic.first) as usize).cloned())
                .flatten();
            topic.truncate(end);
            if crash == Crash::PowerLoss {
                let synced = topic.producers_synced;
                topic.producers.truncate(synced);
                topic.producers_committed = topic.producers_committed.min(synced);
                topic.groups.retain(|_, (saved, synced)| match synced {
                    Some(s) => {
                        *saved = s.clone();
                        true
                    }
                    None => false,
                });
            }
            if let Some(slot) = torn {
                let half: Arc<[u8]> = slot.frame[..slot.frame.len() / 2].into();
                topic.bytes += half.len() as u64;
                topic.records.push_back(Slot {
                    start: end,
                    frame: half,
                });
                topic.times.push_back(u64::MAX);
            }
        }
    }

    /// The frame of the record that holds `offset` of `topic`, if it is there.
    pub fn frame(&self, topic: &str, offset: u64) -> Option<Vec<u8>> {
        let disk = self.disk();
        let t = disk.topics.get(topic)?;
        let i = offset.checked_sub(t.first)?;
        t.records.get(i as usize).map(|slot| slot.frame.to_vec())
    }

    /// The offset the next append to `topic` gets.
    pub fn next(&self, topic: &str) -> u64 {
        self.disk().topics.get(topic).map_or(0, Topic::next)
    }

    /// The offset each read of `topic` started at, oldest first.
    pub fn reads(&self, topic: &str) -> Vec<u64> {
        self.disk()
            .topics
            .get(topic)
            .map_or(Vec::new(), |t| t.reads.clone())
    }

    /// How many torn records `open` cut from `topic` the last time it opened it.
    pub fn torn_cut(&self, topic: &str) -> u64 {
        self.disk().topics.get(topic).map_or(0, |t| t.torn_cut)
    }

    /// The offsets of `topic` that a crash of this kind would keep: `first..end`.
    pub fn survives(&self, topic: &str, crash: Crash) -> std::ops::Range<u64> {
        self.disk().topics.get(topic).map_or(0..0, |t| {
            t.first..match crash {
                Crash::Process | Crash::Torn => t.written,
                Crash::PowerLoss => t.synced,
            }
        })
    }
}

impl Disk {
    /// Uses up one injected fault of `op`, if there is one.
    fn fault(&mut self, op: Op, topic: &str) -> Result<(), StoreError> {
        match self.faults.get_mut(&op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                let source = match self.errno {
                    Some(errno) => io::Error::from_raw_os_error(errno),
                    None => io::Error::other(format!("injected {op:?} fault")),
                };
                Err(StoreError::Io {
                    path: PathBuf::from(format!("memory:{topic}")),
                    source,
                })
            }
            _ => Ok(()),
        }
    }
}

impl Storage for MemoryStorage {
    fn topics(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self.disk().topics.keys().cloned().collect())
    }

    fn open(&mut self, topic: &str) -> Result<Box<dyn TopicStorage>, StoreError> {
        let mut disk = self.disk();
        disk.fault(Op::Open, topic)?;
        let t = disk.topics.entry(topic.to_owned()).or_default();
        // Recovery, as the file store does it: a last record that is not a whole frame was
        // torn by a crash and is cut.
        t.torn_cut = 0;
        while let Some(last) = t.records.back() {
            let frame = &last.frame;
            let whole = mbus_proto::check(frame, u32::MAX).ok().flatten() == Some(frame.len());
            if whole {
                break;
            }
            t.pop_back();
            t.times.truncate(t.records.len());
            t.torn_cut += 1;
        }
        // Whatever a new engine finds stored is committed as far as it is concerned.
        t.committed = t.next();
        Ok(Box::new(MemoryTopic {
            disk: self.disk.clone(),
            name: topic.to_owned(),
        }))
    }

    fn delete(&mut self, topic: &str) -> Result<(), StoreError> {
        self.disk().topics.remove(topic);
        Ok(())
    }

    fn sync_interval(&self) -> Option<Duration> {
        (self.disk().fsync == Fsync::Batch).then_some(BATCH_INTERVAL)
    }
}

/// One topic of a [`MemoryStorage`].
#[derive(Debug)]
struct MemoryTopic {
    disk: Arc<Mutex<Disk>>,
    name: String,
}

impl MemoryTopic {
    /// The disk, its topic, and the first injected fault of `op` if one is due.
    fn with<T>(
        &self,
        op: Option<Op>,
        f: impl FnOnce(&mut Topic, &Disk) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(op) = op {
            disk.fault(op, &self.name)?;
        }
        let mut topic = disk.topics.remove(&self.name).unwrap_or_default();
        let result = f(&mut topic, &disk);
        disk.topics.insert(self.name.clone(), topic);
        result
    }
}

impl TopicStorage for MemoryTopic {
    fn first(&self) -> u64 {
        self.with(None, |t, _| Ok(t.first)).unwrap_or(0)
    }

    fn next(&self) -> u64 {
        self.with(None, |t, _| Ok(t.next())).unwrap_or(0)
    }

    fn append(
        &mut self,
        offset: u64,
        frame: &[u8],
        producer: Option<&ProducerEntry>,
    ) -> Result<(), StoreError> {
        let name = self.name.clone();
        self.with(Some(Op::Append), |t, _| {
            if offset != t.next() {
                return Err(StoreError::OffsetMismatch {
                    topic: name,
                    expected: t.next(),
                    got: offset,
                });
            }
            let (time, count) = frame_head(frame).ok_or_else(|| StoreError::InvalidFrame {
                topic: name.clone(),
                offset,
            })?;
            t.producers.extend(producer.cloned());
            let shared: Arc<[u8]> = frame.into();
            for _ in 0..count {
                t.records.push_back(Slot {
                    start: offset,
                    frame: shared.clone(),
                });
                t.times.push_back(time);
            }
            t.bytes += frame.len() as u64;
            Ok(())
        })
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.with(Some(Op::Commit), |t, disk| {
            t.committed = t.next();
            t.written = t.next();
            t.producers_committed = t.producers.len();
            if disk.fsync == Fsync::Always {
                t.synced = t.next();
                t.producers_synced = t.producers.len();
            }
            Ok(())
        })
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        self.with(None, |t, _| {
            t.truncate(t.committed);
            t.producers.truncate(t.producers_committed);
            t.producers_synced = t.producers_synced.min(t.producers_committed);
            Ok(())
        })
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.with(Some(Op::Sync), |t, _| {
            t.written = t.next();
            t.synced = t.next();
            t.producers_synced = t.producers.len();
            for (saved, synced) in t.groups.values_mut() {
                *synced = Some(saved.clone());
            }
            Ok(())
        })
    }

    fn read(
        &mut self,
        offset: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Frames, StoreError> {
        let name = self.name.clone();
        self.with(Some(Op::Read), |t, _| {
            t.reads.push(offset);
            if offset < t.first {
                return Err(StoreError::Deleted {
                    topic: name,
                    offset,
                    first: t.first,
                });
            }
            if t.corrupt.contains(&offset) {
                let until = (offset..)
                    .find(|o| !t.corrupt.contains(o))
                    .expect("finitely many");
                return Err(StoreError::Corrupt {
                    topic: name,
                    offset,
                    until,
                });
            }
            // From the record that holds `offset`, which may start before it, record by
            // record.
            let mut next = offset;
            let mut bytes = 0;
            while next < t.next() && !(next > offset && t.corrupt.contains(&next)) {
                let slot = &t.records[(next - t.first) as usize];
                if next > offset && bytes + slot.frame.len() > max_bytes {
                    break;
                }
                out.extend_from_slice(&slot.frame);
                bytes += slot.frame.len();
                let start = slot.start;
                next += 1;
                while next < t.next() && t.records[(next - t.first) as usize].start == start {
                    next += 1;
                }
            }
            Ok(Frames {
                first: offset,
                next,
                bytes,
            })
        })
    }

    fn bytes(&self) -> u64 {
        self.with(None, |t, _| Ok(t.bytes)).unwrap_or(0)
    }

    fn last_time(&self) -> u64 {
        self.with(None, |t, _| Ok(t.times.back().copied().unwrap_or(0)))
            .unwrap_or(0)
    }

    fn offset_at_time(&mut self, ms: u64) -> Result<u64, StoreError> {
        self.with(None, |t, _| {
            Ok(t.first + t.times.partition_point(|&time| time < ms) as u64)
        })
    }

    fn groups(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(None, |t, _| {
            Ok(t.groups
                .iter()
                .map(|(name, (saved, _))| (name.clone(), saved.clone()))
                .collect())
        })
    }

    fn producers(&mut self) -> Result<Vec<ProducerEntry>, StoreError> {
        self.with(None, |t, _| {
            let next = t.next();
            let kept = t.producers.iter().take_while(|e| e.end <= next).count();
            t.producers.truncate(kept);
            t.producers_committed = kept;
            t.producers_synced = t.producers_synced.min(kept);
            Ok(t.producers.clone())
        })
    }

    fn producers_oversized(&self) -> bool {
        self.with(None, |t, _| Ok(t.producers.len() > 4096))
            .unwrap_or(false)
    }

    fn rewrite_producers(&mut self, live: &[ProducerEntry]) -> Result<(), StoreError> {
        self.with(None, |t, disk| {
            t.producers = live.to_vec();
            t.producers_committed = live.len();
            if disk.fsync == Fsync::Always {
                t.producers_synced = live.len();
            }
            Ok(())
        })
    }

    // Saving a group is never made to fail, so that the simulation knows which acks are
    // durable; a failed save is tested on the file store.
    fn save_group(&mut self, name: &str, state: &[u8]) -> Result<(), StoreError> {
        self.with(None, |t, disk| {
            let entry = t.groups.entry(name.to_owned()).or_default();
            entry.0 = state.to_vec();
            if disk.fsync == Fsync::Always {
                entry.1 = Some(state.to_vec());
            }
            Ok(())
        })
    }

    fn enforce_retention(&mut self) -> Result<(), StoreError> {
        self.with(None, |t, disk| {
            while t.records.len() > 1 && t.bytes > disk.retention_bytes {
                let slot = t.records.pop_front().expect("more than one record");
                t.times.pop_front();
                if slot.start == t.first {
                    t.bytes -= slot.frame.len() as u64;
                }
                t.first += 1;
            }
            t.committed = t.committed.max(t.first);
            t.written = t.written.max(t.first);
            t.synced = t.synced.max(t.first);
            Ok(())
        })
    }
}

/// The time and the message count of a stored frame.
fn frame_head(frame: &[u8]) -> Option<(u64, u64)> {
    match mbus_proto::Frame::parse(frame.get(mbus_proto::HEADER_LEN..)?) {
        Ok(mbus_proto::Frame::Deliver { time, batch, .. }) => Some((time, batch.len() as u64)),
        _ => None,
    }
}
