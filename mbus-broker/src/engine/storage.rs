//! What the engine asks of durable storage. The engine decides what must be durable and when;
//! an implementation of these traits does the I/O: the file store (`store::FileStorage`) in the
//! broker, an in-memory store with fault injection (`store::MemoryStorage`) in tests.

use std::fmt;
use std::time::Duration;

pub use crate::store::{Frames, StoreError};

/// Where topics are kept: the topics found at start, and one [`TopicStorage`] per topic.
pub trait Storage: fmt::Debug + Send {
    /// The names of the topics stored already, each a valid topic name, to be recovered at
    /// start. Entries that are not topics are the implementation's to report and skip.
    fn topics(&mut self) -> Result<Vec<String>, StoreError>;

    /// Opens the storage of `topic`, creating it if it does not exist and recovering it if it
    /// does.
    fn open(&mut self, topic: &str) -> Result<Box<dyn TopicStorage>, StoreError>;

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

    /// Appends the encoded `Deliver` frame of `offset`, which must be `next()`. On error
    /// nothing was appended.
    fn append(&mut self, offset: u64, frame: &[u8]) -> Result<(), StoreError>;

    /// Makes everything appended so far as durable as a confirm promises. On error what is
    /// stored beyond the last good commit is unknown.
    fn commit(&mut self) -> Result<(), StoreError>;

    /// Makes everything committed survive power loss.
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Appends to `out` whole frames from `offset` on, as many as fit in `max_bytes` and at
    /// least one if `offset < next()`. A damaged record at `offset` is
    /// [`StoreError::Corrupt`]; an offset below `first()` is [`StoreError::Deleted`]. On error
    /// `out` is unchanged.
    fn read(
        &mut self,
        offset: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Frames, StoreError>;

    /// Deletes what retention no longer keeps; the oldest offsets go first.
    fn enforce_retention(&mut self) -> Result<(), StoreError>;
}
