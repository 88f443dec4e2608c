//! Durable topics: each topic's log backed by its files on disk, group commit of what a loop
//! iteration brought in, and consumers behind the memory cache served from disk.
//!
//! Per iteration the event loop reads everything it can and the core appends it to the topics'
//! logs and stores; then [`Core::commit`] makes it durable once for all of them, as the fsync
//! policy says, and only then do consumers see those messages and producers get their confirms.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use mbus_proto::{ErrorCode, Frame};

use super::TopicId;
use super::conn::Sub;
use super::memlog::Cursor;
use super::{ConnId, Core};
use crate::store::{StoreConfig, StoreError};

/// Most bytes read from disk for one consumer at a time; they wait in its control buffer.
const DISK_CHUNK: usize = 256 << 10;
/// How often `--fsync batch` makes appended messages durable.
const BATCH_INTERVAL: Duration = Duration::from_millis(200);

/// When appended messages are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    /// fdatasync before every confirm: a confirmed message survives power loss.
    Always,
    /// Confirm once the message is written to the OS (it survives the broker's crash) and
    /// fdatasync every 200 ms.
    Batch,
    /// Confirm once written to the OS; leave syncing to the OS.
    Never,
}

/// Where and how topics are kept on disk.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The fsync policy.
    pub fsync: Fsync,
    /// Segment size, retention and buffering of each topic's files.
    pub store: StoreConfig,
}

/// Progress of the group commit, kept by the core.
#[derive(Debug, Default)]
pub(super) struct Commit {
    /// Topics appended to since the last commit.
    pub topics: Vec<TopicId>,
    /// Producers with publishes not yet confirmed.
    pub producers: Vec<ConnId>,
    /// Topics written to the OS but not synced, under `--fsync batch`.
    pub unsynced: Vec<TopicId>,
    /// When `--fsync batch` last synced.
    pub last_sync: Option<Instant>,
}

impl Core {
    /// Opens every topic found in the data directory, recovering its files. Without a data
    /// directory there is nothing to do.
    pub fn recover(&mut self) -> Result<(), StoreError> {
        let Some(storage) = self.config.storage.clone() else {
            return Ok(());
        };
        let dir = storage.data_dir.join("topics");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let started = Instant::now();
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
            if let Some(name) = entry.file_name().to_str() {
                if mbus_proto::validate_topic(name).is_ok() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        for name in &names {
            self.topics.get_or_create(name)?;
        }
        log::info!(
            "recovered {} topics from {} in {:.1?}",
            names.len(),
            storage.data_dir.display(),
            started.elapsed()
        );
        Ok(())
    }

    /// Makes what the producers sent since the last commit durable as the fsync policy says,
    /// then lets consumers see it and queues the producers' confirms.
    pub fn commit(&mut self) {
        let Some(fsync) = self.config.storage.as_ref().map(|s| s.fsync) else {
            return;
        };
        let mut failure = None;
        for tid in std::mem::take(&mut self.commit.topics) {
            let topic = &mut self.topics[tid];
            topic.uncommitted = false;
            let store = topic.store.as_mut().expect("durable topics have a store");
            let result = match fsync {
                Fsync::Always => store.sync(),
                Fsync::Batch | Fsync::Never => store.flush(),
            };
            match result {
                Ok(()) => {
                    topic.log.reveal();
                    if !topic.dirty {
                        topic.dirty = true;
                        self.dirty.push(tid);
                    }
                    if fsync == Fsync::Batch && !self.commit.unsynced.contains(&tid) {
                        self.commit.unsynced.push(tid);
                    }
                }
                Err(e) => {
                    topic.fail(&e);
                    failure = Some(e);
                }
            }
        }
        if fsync == Fsync::Batch
            && self
                .commit
                .last_sync
                .is_none_or(|t| self.now.saturating_duration_since(t) >= BATCH_INTERVAL)
        {
            self.commit.last_sync = Some(self.now);
            for tid in std::mem::take(&mut self.commit.unsynced) {
                let topic = &mut self.topics[tid];
                if let Err(e) = topic.store.as_mut().map_or(Ok(()), |s| s.sync()) {
                    topic.fail(&e);
                }
            }
        }
        let producers = std::mem::take(&mut self.commit.producers);
        if let Some(e) = failure {
            // Nothing of this iteration is known to be stored: its publishers are told so, and
            // what they sent to the failed topic is neither confirmed nor shown to consumers.
            let reason = format!("the broker could not store messages: {e}");
            for id in producers {
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.uncommitted = false;
                }
                self.reject(id, ErrorCode::Internal, &reason);
            }
            return;
        }
        for id in producers {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.uncommitted = false;
                conn.durable = conn.published;
                self.mark(id);
            }
        }
    }

    /// Deletes whole segments that retention no longer keeps, by size and by age.
    pub fn enforce_retention(&mut self, wall: SystemTime) {
        for topic in self.topics.iter_mut() {
            if let Some(store) = topic.store.as_mut() {
                if let Err(e) = store.enforce_retention(wall) {
                    log::error!("retention of topic {}: {e}", topic.name);
                }
            }
        }
    }

    /// Reads the next run of a subscription's frames from disk into the connection's control
    /// buffer, when the subscription is behind what memory holds. Returns false when it has
    /// nothing to read there.
    pub(super) fn read_disk(&mut self, id: ConnId, i: usize) -> bool {
        let conn = &mut self.conns[id];
        let Sub { topic: tid, cursor } = conn.subs[i];
        let topic = &mut self.topics[tid];
        let Some(store) = topic.store.as_mut() else {
            return false;
        };
        let offset = cursor.offset;
        if cursor.partial > 0
            || offset >= topic.log.first()
            || offset >= topic.log.visible()
            || offset < store.first()
        {
            return false;
        }
        let next = match store.read(offset, DISK_CHUNK, &mut conn.control) {
            Ok(frames) => frames.next,
            Err(StoreError::Corrupt { offset, .. }) => {
                log::error!(
                    "topic {} offset {offset} is damaged on disk; consumers are told it is missing",
                    topic.name
                );
                Frame::Gap {
                    topic: &topic.name,
                    from: offset,
                    to: offset + 1,
                }
                .encode(&mut conn.control);
                offset + 1
            }
            Err(StoreError::Deleted { .. }) => return false,
            Err(e) => {
                let reason = format!("cannot read topic {} from disk: {e}", topic.name);
                self.reject(id, ErrorCode::Internal, &reason);
                return true;
            }
        };
        conn.subs[i].cursor = Cursor {
            offset: next,
            partial: 0,
        };
        true
    }
}
