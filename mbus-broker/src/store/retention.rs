//! Retention: deleting whole oldest segments once the topic is over its byte or age bound.

use std::io;
use std::time::SystemTime;

use super::TopicStore;
use super::error::{IoContext, StoreError};
use super::layout::{idx_path, log_path};

impl TopicStore {
    /// Deletes the oldest sealed segments while the topic holds more than `retention_bytes`, or
    /// while the oldest one's log was last written more than `retention_age` before `now`. The
    /// active segment is never deleted, so a topic keeps at least its newest records. Returns
    /// the new `first()`.
    ///
    /// The log goes before the index, so that a crash in between leaves an index without a log,
    /// which the next open removes, rather than a log whose index must be rebuilt.
    pub fn enforce_retention(&mut self, now: SystemTime) -> Result<u64, StoreError> {
        while let Some(&oldest) = self.sealed.front() {
            let log = log_path(&self.dir, oldest.base);
            let over_bytes = self.bytes > self.config.retention_bytes;
            let too_old = match self.config.retention_age {
                None => false,
                Some(age) => match std::fs::metadata(&log).and_then(|m| m.modified()) {
                    Ok(modified) => now.duration_since(modified).is_ok_and(|d| d > age),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                    Err(e) => {
                        return Err(StoreError::Io {
                            path: log,
                            source: e,
                        });
                    }
                },
            };
            if !over_bytes && !too_old {
                break;
            }
            if self.reader.as_ref().is_some_and(|r| r.base == oldest.base) {
                self.reader = None;
            }
            remove(&log)?;
            remove(&idx_path(&self.dir, oldest.base))?;
            let end = self.sealed.get(1).map_or(self.active.base, |s| s.base);
            let freed = oldest.log_len + (end - oldest.base) * super::format::IDX_ENTRY;
            log::info!(
                "store: topic {}: deleted offsets {}..{end} ({freed} bytes) by retention",
                self.topic,
                oldest.base,
            );
            self.sealed.pop_front();
            self.bytes -= freed;
            self.dir_dirty = true;
        }
        Ok(self.first())
    }
}

/// Removes a file that may already be gone.
fn remove(path: &std::path::Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.at(path),
    }
}
