//! Durable topics: each topic's log backed by its files on disk, group commit of what a loop
//! iteration brought in, and consumers behind the memory cache served from disk.
//!
//! Per iteration the event loop reads everything it can and the core appends it to the topics'
//! logs and stores; then [`Core::commit`] makes it durable once for all of them, as the fsync
//! policy says, and only then do consumers see those messages and producers get their confirms.

use mbus_proto::{ErrorCode, Frame};

use super::budget::Mark;
use super::conn::Sub;
use super::memlog::Cursor;
use super::storage::StoreError;
use super::{ConnId, Core, TopicId};

/// Most bytes read from disk for one consumer at a time; they wait in its control buffer.
pub const DISK_CHUNK: usize = 256 << 10;
/// Most damaged runs looked past in one read, so that a long stretch of damage costs a consumer
/// a few gaps, not a read per offset, and no read stalls the loop.
const MAX_DAMAGE_PROBES: usize = 1024;

/// Progress of the group commit, kept by the core.
#[derive(Debug, Default)]
pub(super) struct Commit {
    /// Topics appended to since the last commit.
    pub topics: Vec<TopicId>,
    /// Producers with publishes not yet confirmed.
    pub producers: Vec<ConnId>,
    /// Topics committed but not synced, when the storage syncs on a timer.
    pub unsynced: Vec<TopicId>,
    /// Topics whose consumer groups changed since the last commit.
    pub groups: Vec<TopicId>,
}

impl Core {
    /// Opens every topic the storage holds, recovering it. Without storage there is nothing to
    /// do.
    pub(super) fn recover(&mut self) -> Result<(), StoreError> {
        let Some(storage) = self.topics.storage() else {
            return Ok(());
        };
        let names = storage.topics()?;
        let sync_interval = storage.sync_interval();
        for name in &names {
            let tid = match self.topics.get_or_create(name, true) {
                Ok(tid) => tid,
                // One topic's damage is its own: it is reported and served as unavailable, and
                // recovery goes on with the others.
                Err(e) => {
                    log::error!("topic {name} is unavailable: its files cannot be opened: {e}");
                    let reason = format!("its files could not be opened at start: {e}");
                    self.topics.add_unavailable(name, reason);
                    continue;
                }
            };
            self.restore_groups(tid);
            self.restore_producers(tid);
            // A crash may have left committed messages unsynced, past the time their sync was
            // due: the first turn after recovery syncs them.
            if sync_interval.is_some() && !self.topics[tid].unsynced {
                self.topics[tid].unsynced = true;
                self.commit.unsynced.push(tid);
            }
        }
        if sync_interval.is_some() && !names.is_empty() {
            self.timers.sync = Some(self.now);
        }
        Ok(())
    }

    /// How many topics the next [`Core::commit`] has to make durable.
    pub fn commit_pending(&self) -> usize {
        self.commit.topics.len()
    }

    /// Makes what the producers sent since the last commit as durable as a confirm promises,
    /// then lets consumers see it and queues the producers' confirms. Called once per turn of
    /// the event loop, after everything readable was read.
    pub fn commit(&mut self) {
        if !self.topics.is_durable() {
            return;
        }
        let sync_interval = self.topics.storage().and_then(|s| s.sync_interval());
        for tid in std::mem::take(&mut self.commit.topics) {
            let topic = &mut self.topics[tid];
            topic.uncommitted = false;
            let publishers = std::mem::take(&mut topic.publishers);
            let store = topic.store.as_mut().expect("durable topics have a store");
            match store.commit() {
                Ok(()) => {
                    topic.producers.commit();
                    if store.producers_oversized() {
                        let live = topic
                            .producers
                            .entries(self.wall_clock, &self.config.producers);
                        if let Err(e) = store.rewrite_producers(&live) {
                            log::error!(
                                "topic {}: cannot rewrite its producers' file: {e}",
                                topic.name
                            );
                        }
                    }
                    topic.log.reveal();
                    if !topic.dirty {
                        topic.dirty = true;
                        self.dirty.push(tid);
                    }
                    if sync_interval.is_some() && !topic.unsynced {
                        topic.unsynced = true;
                        self.commit.unsynced.push(tid);
                    }
                }
                Err(e) => {
                    self.topics[tid].publishers = publishers;
                    self.fail_uncommitted(tid, &e);
                }
            }
        }
        self.save_groups();
        if let Some(interval) = sync_interval {
            if !self.commit.unsynced.is_empty() && self.timers.sync.is_none() {
                self.timers.sync = Some(self.now + interval);
            }
        }
        for id in std::mem::take(&mut self.commit.producers) {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            conn.uncommitted = false;
            match conn.commit_failed.take() {
                Some(reason) => self.reject(id, ErrorCode::Internal, &reason),
                None => {
                    conn.durable = conn.published;
                    self.mark(id);
                }
            }
        }
    }

    /// After topic `tid`'s storage failed with `e` to take what was published since its last
    /// commit: the topic goes back to that commit, and what its producers sent since is neither
    /// confirmed nor shown to consumers: they are refused at the commit.
    pub(super) fn fail_uncommitted(&mut self, tid: TopicId, e: &StoreError) {
        self.roll_back(tid, e);
        let reason = format!("the broker could not store messages: {e}");
        for id in std::mem::take(&mut self.topics[tid].publishers) {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.commit_failed = Some(reason.clone());
            }
        }
    }

    /// After topic `tid`'s commit failed with `e`: its storage and its log go back to the last
    /// commit, so that the topic takes the next publish as if the failed ones had never come
    /// (a full disk affects only what it could not write). If even that fails, the topic stops
    /// until a restart.
    fn roll_back(&mut self, tid: TopicId, e: &StoreError) {
        let topic = &mut self.topics[tid];
        topic.producers.roll_back();
        let store = topic.store.as_mut().expect("durable topics have a store");
        match store.rollback() {
            Ok(()) => {
                log::error!(
                    "topic {}: messages from offset {} on could not be stored and are dropped; \
                     their producers are told, and the topic goes on: {e}",
                    topic.name,
                    store.next()
                );
                let next = store.next();
                let mark = Mark::of(&topic.log);
                topic.log.retract_to(next);
                self.account(tid, mark);
            }
            Err(again) => {
                log::error!(
                    "topic {}: cannot go back to its last commit: {again}",
                    topic.name
                );
                topic.fail(e);
            }
        }
    }

    /// The batch sync: makes every topic committed since the last one survive power loss.
    pub(super) fn sync_committed(&mut self) {
        log::debug!("batch sync of {} topics", self.commit.unsynced.len());
        for tid in std::mem::take(&mut self.commit.unsynced) {
            let topic = &mut self.topics[tid];
            topic.unsynced = false;
            if let Err(e) = topic.store.as_mut().map_or(Ok(()), |s| s.sync()) {
                topic.fail(&e);
            }
        }
    }

    /// Deletes what storage retention no longer keeps, by size and by age.
    pub(super) fn enforce_retention(&mut self) {
        for topic in self.topics.iter_mut() {
            if let Some(store) = topic.store.as_mut() {
                if let Err(e) = store.enforce_retention() {
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
        let start = conn.control.len();
        let next = match store.read(offset, DISK_CHUNK, &mut conn.control) {
            // The store also holds what the next commit has yet to make durable; a consumer
            // reading from disk gets no further than consumers reading from memory.
            Ok(frames) if frames.next > topic.log.visible() => {
                let visible = topic.log.visible();
                let keep = frames_before(&conn.control[start..], visible);
                conn.control.truncate(start + keep);
                visible
            }
            Ok(frames) => frames.next,
            Err(StoreError::Corrupt { offset, until, .. }) => {
                // A run of damaged records is one gap, and the first reader of it logs it.
                let mut end = until;
                let mut probe = Vec::new();
                for _ in 0..MAX_DAMAGE_PROBES {
                    match store.read(end, 0, &mut probe) {
                        Err(StoreError::Corrupt { until, .. }) => end = until,
                        _ => break,
                    }
                }
                let end = end.min(topic.log.visible()).max(offset + 1);
                if topic.note_damage(offset..end) {
                    log::error!(
                        "topic {} offsets {offset}..{end} are damaged or missing on disk; \
                         consumers are told they are missing",
                        topic.name
                    );
                }
                Frame::Gap {
                    topic: &topic.name,
                    from: offset,
                    to: end,
                }
                .encode(&mut conn.control);
                self.counters.gaps += 1;
                end
            }
            Err(StoreError::Deleted { .. }) => return false,
            Err(e) => {
                let reason = format!("cannot read topic {} from disk: {e}", topic.name);
                self.reject(id, ErrorCode::Internal, &reason);
                return true;
            }
        };
        // What was read are deliveries, not replies; the buffer was empty before (see write).
        let conn = &mut self.conns[id];
        self.counters.delivered += next.saturating_sub(offset);
        self.counters.delivered_bytes += (conn.control.len() - start) as u64;
        conn.control_data = conn.control.len();
        conn.subs[i].cursor = Cursor {
            offset: next,
            partial: 0,
        };
        true
    }
}

/// The length of the `Deliver` frames at the start of `bytes`, which holds whole ones, whose
/// offsets are all below `end`: a frame holds offsets below `end` or none (frames end where
/// commits do, and `end` is where one ended).
fn frames_before(bytes: &[u8], end: u64) -> usize {
    let mut at = 0;
    while let Some(prefix) = bytes.get(at..at + 4) {
        let len = 4 + u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
        let head = mbus_proto::delivery_head(&bytes[at + 4..at + len]);
        match head {
            Some((_, offset, _)) if offset < end => at += len,
            _ => break,
        }
    }
    at
}
