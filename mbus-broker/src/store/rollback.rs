//! Going back to the last commit: after a commit failed (a full disk, a failing device), the
//! topic forgets what it appended since, in memory and in its files, and takes appends again
//! from the last committed offset, without a restart.

use super::TopicStore;
use super::error::{IoContext, StoreError};
use super::layout::{idx_path, log_path};
use super::segment::Active;

/// Where the last commit left the active segment: everything before it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPoint {
    /// The active segment's base offset then.
    pub base: u64,
    /// Its log's length then.
    pub log_len: u64,
    /// Its record count then.
    pub count: u64,
    /// The time of the newest record then.
    pub last_time: u64,
}

impl CommitPoint {
    /// The point `active` is at now, its newest record stored at `last_time`.
    pub fn of(active: &Active, last_time: u64) -> Self {
        CommitPoint {
            base: active.base,
            log_len: active.log.len(),
            count: active.count,
            last_time,
        }
    }
}

impl TopicStore {
    /// Makes everything appended so far committed: flushed, and synced too with `sync`. On
    /// error, [`TopicStore::rollback`] goes back to the previous commit.
    pub fn commit(&mut self, sync: bool) -> Result<(), StoreError> {
        if sync { self.sync() } else { self.flush() }?;
        self.committed = CommitPoint::of(&self.active, self.last_time);
        Ok(())
    }

    /// Forgets every record appended since the last successful [`TopicStore::commit`] (or since
    /// the store was opened): segments started since are deleted, the segment that was active
    /// then is active again, cut to its committed length, and `next()` is the first offset the
    /// failed commit held. Cutting a file and deleting one need no free space, so this works on
    /// a full disk. An error leaves the store in no known state: it must be opened again.
    pub fn rollback(&mut self) -> Result<(), StoreError> {
        let point = self.committed;
        self.last_time = point.last_time;
        if self.active.base != point.base {
            let Some(i) = self.sealed.iter().position(|s| s.base == point.base) else {
                return Err(StoreError::Io {
                    path: log_path(&self.dir, point.base),
                    source: std::io::Error::other(
                        "the segment of the last commit was deleted since",
                    ),
                });
            };
            // The segments after it were started by the failed batch: none holds anything
            // committed.
            let newer: Vec<u64> = self
                .sealed
                .drain(i..)
                .map(|s| s.base)
                .chain([self.active.base])
                .collect();
            self.reader = None;
            let base = newer[0];
            self.active = Active::open(
                &self.files,
                &self.dir,
                base,
                point.log_len,
                point.count,
                self.config.write_buffer,
            )?;
            for &gone in &newer[1..] {
                for path in [log_path(&self.dir, gone), idx_path(&self.dir, gone)] {
                    std::fs::remove_file(&path).at(&path)?;
                }
            }
            self.dir_dirty = true;
        }
        self.active.truncate(point.log_len, point.count)?;
        self.bytes = super::disk_bytes(&self.sealed, &self.active);
        log::warn!(
            "store: topic {}: went back to offset {} after a failed commit",
            self.topic,
            self.next()
        );
        Ok(())
    }
}
