//! The broker's storage on disk: a data directory of topic stores behind the engine's
//! [`Storage`] trait, with the fsync policy that decides what a commit does.

use super::producers::ProducerFile;
use crate::engine::storage::ProducerEntry;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::format::TOPICS_DIR;
use super::layout;
use super::{FilePool, Frames, StoreConfig, StoreError, TopicStore};
use crate::engine::storage::{Storage, TopicStorage};

/// How often `--fsync batch` makes committed messages survive power loss.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(200);

/// When appended messages are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Fsync {
    /// fdatasync before every confirm: a confirmed message survives power loss.
    Always,
    /// Confirm once the message is written to the OS (it survives the broker's crash) and
    /// fdatasync every 200 ms.
    Batch,
    /// Confirm once written to the OS; leave syncing to the OS.
    Never,
}

/// A data directory of topics, each a [`TopicStore`].
#[derive(Debug, Clone)]
pub struct FileStorage {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The fsync policy.
    pub fsync: Fsync,
    /// Segment size, retention and buffering of each topic's files.
    pub store: StoreConfig,
    /// The segment files open at any time, for all topics together.
    pub files: FilePool,
}

impl FileStorage {
    /// Topics in `data_dir`, with at most `max_open_files` segment files open at once.
    pub fn new(data_dir: PathBuf, fsync: Fsync, store: StoreConfig, max_open_files: usize) -> Self {
        FileStorage {
            data_dir,
            fsync,
            store,
            files: FilePool::new(max_open_files),
        }
    }
}

impl Storage for FileStorage {
    fn topics(&mut self) -> Result<Vec<String>, StoreError> {
        super::upgrade::upgrade(&self.data_dir)?;
        layout::prepare(&self.data_dir)?;
        let dir = self.data_dir.join(TOPICS_DIR);
        let entries = std::fs::read_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io {
                path: dir.clone(),
                source,
            })?;
            match entry.file_name().to_str() {
                Some(name) if mbus_proto::validate_topic(name).is_ok() => {
                    names.push(name.to_owned())
                }
                // Garbage is reported and left alone; it is no topic.
                _ => log::warn!(
                    "ignoring {} in {}: not a topic name",
                    entry.file_name().to_string_lossy(),
                    dir.display()
                ),
            }
        }
        names.sort();
        Ok(names)
    }

    fn open(&mut self, topic: &str) -> Result<Box<dyn TopicStorage>, StoreError> {
        let (store, _) = TopicStore::open_in(&self.data_dir, topic, self.store, &self.files)?;
        Ok(Box::new(FileTopic {
            producers: ProducerFile::new(store.dir()),
            store,
            fsync: self.fsync,
            unsynced_groups: Vec::new(),
        }))
    }

    fn delete(&mut self, topic: &str) -> Result<(), StoreError> {
        let dir = layout::topic_dir(&self.data_dir, topic)?;
        // A symlink or a plain file where the directory should be (an unavailable topic) is
        // removed as itself, never followed.
        let removed = match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&dir),
            Ok(_) => std::fs::remove_file(&dir),
        };
        removed.map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        layout::sync_dir(&self.data_dir.join(TOPICS_DIR))
    }

    fn sync_interval(&self) -> Option<Duration> {
        (self.fsync == Fsync::Batch).then_some(BATCH_INTERVAL)
    }
}

/// One topic's files and the policy its commits follow.
#[derive(Debug)]
struct FileTopic {
    store: TopicStore,
    fsync: Fsync,
    /// Groups saved since the last sync, under `--fsync batch`.
    unsynced_groups: Vec<String>,
    /// Its idempotent producers' entries.
    producers: ProducerFile,
}

impl TopicStorage for FileTopic {
    fn first(&self) -> u64 {
        self.store.first()
    }

    fn next(&self) -> u64 {
        self.store.next()
    }

    fn append(
        &mut self,
        offset: u64,
        frame: &[u8],
        producer: Option<&ProducerEntry>,
    ) -> Result<(), StoreError> {
        let before = self.producers.len();
        if let Some(entry) = producer {
            self.producers.append(entry)?;
        }
        let appended = self.store.append(offset, frame);
        if appended.is_err() && producer.is_some() {
            if let Err(e) = self.producers.truncate(before) {
                log::error!(
                    "store: topic {}: cannot take back the producer entry of a publish it \
                     refused: {e}",
                    self.store.topic()
                );
            }
        }
        appended
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let sync = self.fsync == Fsync::Always;
        // The entries first: a publish on disk without its entry would be stored again when
        // resent.
        self.producers.commit(sync)?;
        self.store.commit(sync)
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        self.producers.rollback()?;
        self.store.rollback()
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.producers.sync()?;
        self.store.sync()?;
        for name in std::mem::take(&mut self.unsynced_groups) {
            super::groups::sync(self.store.dir(), &name)?;
        }
        Ok(())
    }

    fn read(
        &mut self,
        offset: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Frames, StoreError> {
        self.store.read(offset, max_bytes, out)
    }

    fn enforce_retention(&mut self) -> Result<(), StoreError> {
        self.store.enforce_retention(SystemTime::now()).map(drop)
    }

    fn bytes(&self) -> u64 {
        self.store.bytes()
    }

    fn last_time(&self) -> u64 {
        self.store.last_time()
    }

    fn offset_at_time(&mut self, ms: u64) -> Result<u64, StoreError> {
        self.store.offset_at_time(ms)
    }

    fn groups(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        super::groups::load(self.store.dir())
    }

    fn producers(&mut self) -> Result<Vec<ProducerEntry>, StoreError> {
        self.producers.load(self.store.next())
    }

    fn producers_oversized(&self) -> bool {
        self.producers.oversized()
    }

    fn rewrite_producers(&mut self, live: &[ProducerEntry]) -> Result<(), StoreError> {
        self.producers.rewrite(live, self.fsync == Fsync::Always)
    }

    fn save_group(&mut self, name: &str, state: &[u8]) -> Result<(), StoreError> {
        let sync = self.fsync == Fsync::Always;
        super::groups::save(self.store.dir(), name, state, sync)?;
        if self.fsync == Fsync::Batch && !self.unsynced_groups.iter().any(|g| g == name) {
            self.unsynced_groups.push(name.to_owned());
        }
        Ok(())
    }
}
