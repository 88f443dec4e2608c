//! What the engine asks of durable storage. The engine decides what must be durable and when;
//! an implementation of these traits does the I/O: the file store (`store::FileStorage`) in the
//! broker, an in-memory store with fault injection (`store::MemoryStorage`) in tests.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Where topics are kept: the topics found at start, and one [`TopicStorage`] per topic.
pub trait Storage: fmt::Debug + Send {
    /// The names of the topics stored already, each a valid topic name, to be recovered at
    /// start. Entries that are not topics are the implementation's to report and skip. Called
    /// once, at start: storage that cannot take topics at all (a data directory that cannot be
    /// written) says so here, before anything is served.
    fn topics(&mut self) -> Result<Vec<String>, StoreError>;

    /// Opens the storage of `topic`, creating it if it does not exist and recovering it if it
    /// does.
    fn open(&mut self, topic: &str) -> Result<Box<dyn TopicStorage>, StoreError>;

    /// Deletes everything stored of `topic`, whose storage was dropped first. Deleting a
    /// topic that has nothing stored is not an error.
    fn delete(&mut self, topic: &str) -> Result<(), StoreError>;

    /// How long a commit may stay unsynced: with `Some(d)`, every topic committed since the
    /// last [`TopicStorage::sync`] is synced at most `d` after its first such commit. `None`
    /// when a commit already syncs, or when syncing is left to the system.
    fn sync_interval(&self) -> Option<Duration>;
}

/// One topic's stored frames, offsets `first()..next()`.
pub trait TopicStorage: fmt::Debug + Send {
    /// The oldest offset stored.
    fn first(&self) -> u64;

    /// The offset the next append must have.
    fn next(&self) -> u64;

    /// Appends the encoded `Deliver` frame of a batch from `offset` on, which must be `next()`;
    /// its messages take that offset and the ones after. On error nothing was appended.
    ///
    /// `producer` is the publish's entry when an idempotent producer sent it. It is saved
    /// before the frame can reach the disk, so that whatever a crash keeps of the frame, it
    /// keeps the entry too; [`TopicStorage::producers`] then keeps the entries whose frames
    /// were kept.
    fn append(
        &mut self,
        offset: u64,
        frame: &[u8],
        producer: Option<&ProducerEntry>,
    ) -> Result<(), StoreError>;

    /// Makes everything appended so far as durable as a confirm promises. On error what is
    /// stored beyond the last good commit is unknown.
    fn commit(&mut self) -> Result<(), StoreError>;

    /// After a failed commit: forgets everything appended since the last successful commit,
    /// so that the storage holds exactly what was committed and the next append takes the
    /// first offset the failed commit held. On error the storage's state is unknown until it is
    /// opened again.
    fn rollback(&mut self) -> Result<(), StoreError>;

    /// Makes everything committed survive power loss.
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Appends to `out` whole frames from the one that holds `offset` on, as many as fit in
    /// `max_bytes` and at least one if `offset < next()`. A damaged record at `offset` is
    /// [`StoreError::Corrupt`]; an offset below `first()` is [`StoreError::Deleted`]. On error
    /// `out` is unchanged.
    fn read(
        &mut self,
        offset: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Frames, StoreError>;

    /// The time of the newest message stored, in milliseconds since the Unix epoch; 0 when
    /// none is.
    fn last_time(&self) -> u64;
    /// The offset of the first message stored at or after `ms` (milliseconds since the Unix
    /// epoch), or `next()` when none is. Found through a time index: no segment before the
    /// one that holds the answer is read.
    fn offset_at_time(&mut self, ms: u64) -> Result<u64, StoreError>;
    /// Deletes what retention no longer keeps; the oldest offsets go first.
    fn enforce_retention(&mut self) -> Result<(), StoreError>;

    /// Bytes the topic takes in storage.
    fn bytes(&self) -> u64;

    /// The consumer groups saved with the topic: each one's name and the state it last saved,
    /// as [`TopicStorage::save_group`] was given it.
    fn groups(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Saves `state` as group `name`'s, as durable as a commit: it survives a crash of the
    /// process once this returns, and power loss under `--fsync always` or after the next
    /// [`TopicStorage::sync`]. On error the last state saved before stands.
    fn save_group(&mut self, name: &str, state: &[u8]) -> Result<(), StoreError>;

    /// The idempotent producers' entries saved with the topic, oldest first, each kept only if
    /// the topic still holds its publish (its `end` is at most `next()`). Called once, when the
    /// topic is opened at start: entries the topic does not hold are dropped for good, since
    /// their offsets will be taken by other publishes.
    fn producers(&mut self) -> Result<Vec<ProducerEntry>, StoreError>;

    /// Whether the saved entries take enough room that the engine should rewrite them as
    /// `live`, the entries it still remembers, with [`TopicStorage::rewrite_producers`].
    fn producers_oversized(&self) -> bool;

    /// Replaces the saved entries with `live`, in the order of their `end`s, as durable as a
    /// commit. Called right after a commit; on error the entries saved before stand.
    fn rewrite_producers(&mut self, live: &[ProducerEntry]) -> Result<(), StoreError>;
}

/// An idempotent producer's publish to a topic, as the topic remembers and saves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's identity.
    pub producer: String,
    /// The producer's number of the publish.
    pub sequence: u64,
    /// The offset after the publish's messages.
    pub end: u64,
    /// When the broker stored it, milliseconds since the Unix epoch.
    pub time: u64,
}

/// What a [`TopicStorage::read`] appended: the frames that hold offsets `first..next`, `bytes`
/// long. The first may be a batch that starts before `first`, whose earlier messages a reader
/// drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frames {
    /// The offset asked for.
    pub first: u64,
    /// The offset after the last frame appended; where the next read goes on.
    pub next: u64,
    /// Bytes appended to the caller's buffer.
    pub bytes: usize,
}

impl Frames {
    /// How many offsets, from the one asked for, the frames appended cover.
    pub fn count(&self) -> u64 {
        self.next - self.first
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The topic name is not one the store can use as a directory name.
    #[error("topic name {name:?} cannot be stored: {reason}")]
    InvalidTopic {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The data directory was written in a format this code does not read.
    #[error(
        "{path} says format version {found:?}, this store reads version 2 (and upgrades version 1)"
    )]
    UnsupportedVersion {
        /// The version marker file.
        path: PathBuf,
        /// Its contents, trimmed.
        found: String,
    },
    /// A system call on a store file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory it was about.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// `append` was given an offset other than `next()`.
    #[error("topic {topic}: append of offset {got}, the next offset is {expected}")]
    OffsetMismatch {
        /// The topic.
        topic: String,
        /// The offset the store expected.
        expected: u64,
        /// The offset it was given.
        got: u64,
    },
    /// `append` was given bytes that are not the canonical `Deliver` frame of this topic and offset.
    #[error(
        "topic {topic}: the frame for offset {offset} is not a Deliver frame of this topic and offset"
    )]
    InvalidFrame {
        /// The topic.
        topic: String,
        /// The offset it was appended at.
        offset: u64,
    },
    /// `read` asked for an offset that retention already deleted.
    #[error("topic {topic}: offset {offset} was deleted, the first offset kept is {first}")]
    Deleted {
        /// The topic.
        topic: String,
        /// The offset asked for.
        offset: u64,
        /// The oldest offset the store still holds.
        first: u64,
    },
    /// The record of this offset is damaged or missing on disk, and so, as far as the store
    /// can tell without reading them, are those up to `until`. The records after are not
    /// affected: a reader reports `offset..until` and goes on with `until`.
    #[error(
        "topic {topic}: the records of offsets {offset}..{until} are corrupt or missing on disk"
    )]
    Corrupt {
        /// The topic.
        topic: String,
        /// The damaged offset.
        offset: u64,
        /// The first offset not known to be damaged too; at least `offset + 1`.
        until: u64,
    },
}

impl StoreError {
    /// Whether the system refused for want of file descriptors (EMFILE, ENFILE): a limit of the
    /// broker's, not damage.
    pub fn is_out_of_descriptors(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if is_out_of_descriptors(source))
    }
}

/// Whether `e` is EMFILE (the process) or ENFILE (the system), as on Linux and the BSDs.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}
