//! The store's errors: one variant per thing a caller may want to tell apart.

use std::io;
use std::path::{Path, PathBuf};

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
    #[error("{path} says format version {found:?}, this store reads version 1")]
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

/// Attaches the path a failed system call was about, so that an error names its file.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })
    }
}
