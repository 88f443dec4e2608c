//! The frames that move messages: a producer's publish appended to its topic, and a consumer's
//! subscriptions placed in, moved within and taken off a topic's log.

use mbus_proto::{Batch, ErrorCode, Frame, Start, validate_topic};

use super::TopicId;
use super::budget::Mark;
use super::conn::Sub;
use super::memlog::{Cursor, Segment};
use super::storage::ProducerEntry;
use super::{ConnId, Core};

/// Why a batch could not be appended to a topic.
#[derive(Debug)]
pub(super) enum AppendError {
    /// The topic's storage failed earlier; it takes nothing until a restart.
    Failed(String),
    /// The store refused this batch; the topic goes on.
    Store(super::storage::StoreError),
}

impl Core {
    /// Appends a publish's batch to its topic as one frame stamped with the broker's time, its
    /// messages at consecutive offsets; with a data directory it is one record, stored whole or
    /// not at all.
    pub(super) fn publish(&mut self, id: ConnId, topic: &str, batch: Batch<'_>) {
        let tid = match self.conns[id].last_topic {
            Some(tid) if *self.topics[tid].name == *topic => tid,
            _ => {
                let Some(tid) = self.topic_for(id, topic, true) else {
                    return;
                };
                self.conns[id].last_topic = Some(tid);
                tid
            }
        };
        let producer = match self.conns[id].identity.as_ref() {
            None => None,
            Some(identity) => {
                let Some(sequence) = identity.next(self.conns[id].published) else {
                    let reason = "the producer's publish numbers went past 2^64 - 1";
                    return self.reject(id, ErrorCode::LimitReached, reason);
                };
                if self.topics[tid].producers.stored(
                    &identity.producer,
                    sequence,
                    self.wall_clock,
                    &self.config.producers,
                ) {
                    return self.publish_again(id, tid);
                }
                Some((identity.producer.to_string(), sequence))
            }
        };
        if let Err(e) = self.append_batch(tid, &batch, producer) {
            return match e {
                AppendError::Failed(failure) => {
                    let reason = format!(
                        "topic {topic} takes no messages since its storage failed ({failure}); \
                         the broker must be restarted"
                    );
                    self.reject(id, ErrorCode::Internal, &reason)
                }
                AppendError::Store(e) => self.storage_failed(id, topic, &e),
            };
        }
        let t = &mut self.topics[tid];
        if t.store.is_some() && t.publishers.last() != Some(&id) {
            t.publishers.push(id);
        }
        self.taken(id);
    }

    /// Counts a publish taken from producer `id`: confirmed at once without a data directory,
    /// at the next commit with one.
    pub(super) fn taken(&mut self, id: ConnId) {
        let conn = &mut self.conns[id];
        conn.published += 1;
        if !self.topics.is_durable() {
            conn.durable = conn.published;
            self.mark(id);
        } else if !conn.uncommitted {
            conn.uncommitted = true;
            self.commit.producers.push(id);
        }
    }

    /// Appends `batch` to topic `tid` as one frame stamped with the broker's time, and to its
    /// store as one record, whole or not at all; the next commit makes it durable. A durable
    /// topic that has no files yet gets them now. `producer` is the identity and number of the
    /// idempotent producer's publish it is, which the topic remembers with it.
    pub(super) fn append_batch(
        &mut self,
        tid: TopicId,
        batch: &Batch<'_>,
        producer: Option<(String, u64)>,
    ) -> Result<u64, AppendError> {
        let t = &mut self.topics[tid];
        if let Some(failure) = &t.failure {
            return Err(AppendError::Failed(failure.clone()));
        }
        if t.store.is_none() && t.unavailable.is_none() && self.topics.is_durable() {
            // Subscribed to before anyone published: its files come with its first message.
            self.topics.open_files(tid).map_err(AppendError::Store)?;
        }
        let t = &mut self.topics[tid];
        let before = t.log.bytes();
        let mark = Mark::of(&t.log);
        let offset = t.log.append(
            &t.name,
            self.wall_clock,
            batch,
            self.messages,
            &mut self.pool,
        );
        let entry = producer.map(|(producer, sequence)| ProducerEntry {
            producer,
            sequence,
            end: offset + batch.len() as u64,
            time: self.wall_clock,
        });
        if let Some(store) = t.store.as_mut() {
            let frame = t.log.frame(offset).expect("just appended");
            if let Err(e) = store.append(offset, frame, entry.as_ref()) {
                // The store took nothing of the batch; neither may memory, where the next
                // commit of the topic would show it to consumers. What the log's buffers hold
                // may still have changed (a segment started and given back): the budget is told.
                t.log.retract(offset);
                self.account(tid, mark);
                return Err(AppendError::Store(e));
            }
        }
        let bytes: u64 = batch.iter().map(|m| m.data.len() as u64).sum();
        let t = &mut self.topics[tid];
        if let Some(entry) = &entry {
            t.producers
                .record(entry, t.store.is_some(), &self.config.producers);
        }
        if t.store.is_some() && !t.uncommitted {
            t.uncommitted = true;
            self.commit.topics.push(tid);
        }
        self.appended += t.log.bytes() - before;
        while let Some(seg) = self.topics[tid].log.pop_expired() {
            self.release(tid, &seg);
            self.pool.give(seg);
        }
        self.account(tid, mark);
        let t = &mut self.topics[tid];
        if !t.dirty {
            t.dirty = true;
            self.dirty.push(tid);
        }
        self.messages += batch.len() as u64;
        self.counters.published_bytes += bytes;
        Ok(offset)
    }

    /// Lets go of `seg`, which topic `tid`'s log no longer holds: a subscriber half-way through
    /// one of its frames gets the rest of it through its control buffer.
    pub(super) fn release(&mut self, tid: TopicId, seg: &Segment) {
        let end = seg.base + seg.starts.len() as u64;
        if self.topics[tid].store.is_none() {
            // Without a disk behind it, what leaves memory is gone.
            self.counters.dropped += seg.starts.len() as u64;
        }
        for &cid in &self.topics[tid].subscribers {
            let conn = &mut self.conns[cid];
            let i = conn
                .sub_index(tid)
                .expect("subscriber lists match subscriptions");
            let cursor = conn.subs[i].cursor;
            if cursor.partial > 0 && (seg.base..end).contains(&cursor.offset) {
                conn.spill(i, seg);
            }
        }
    }

    /// The topic a publish or subscription names, created if it is new. A name that breaks the
    /// rules, a new topic beyond `max_topics`, or storage that fails gets the connection
    /// refused, and `None`.
    pub(super) fn topic_for(&mut self, id: ConnId, topic: &str, files: bool) -> Option<TopicId> {
        if let Some(tid) = self.topics.find(topic) {
            if let Some(why) = &self.topics[tid].unavailable {
                let reason = format!("topic {topic} is unavailable: {why}");
                self.reject(id, ErrorCode::Internal, &reason);
                return None;
            }
            return Some(tid);
        }
        if let Err(e) = validate_topic(topic) {
            self.reject(id, ErrorCode::InvalidTopic, &e.to_string());
            return None;
        }
        if self.topics.len() >= self.config.max_topics {
            let reason = format!(
                "the broker is at its limit of {} topics",
                self.config.max_topics
            );
            self.reject(id, ErrorCode::LimitReached, &reason);
            return None;
        }
        match self.topics.get_or_create(topic, files) {
            Ok(tid) => Some(tid),
            Err(e) => {
                self.storage_failed(id, topic, &e);
                None
            }
        }
    }

    /// Refuses a publish or subscription the topic's storage could not take. The store took
    /// nothing, so the topic goes on; the next publish tries again.
    pub(super) fn storage_failed(
        &mut self,
        id: ConnId,
        topic: &str,
        e: &super::storage::StoreError,
    ) {
        log::error!("topic {topic}: {e}");
        // Running out of descriptors is a limit the broker reached, not a fault of the store.
        let (code, reason) = if e.is_out_of_descriptors() {
            let reason = format!("the broker has no file descriptor left for topic {topic}: {e}");
            (ErrorCode::LimitReached, reason)
        } else {
            (
                ErrorCode::Internal,
                format!("cannot store topic {topic}: {e}"),
            )
        };
        self.reject(id, code, &reason);
    }

    pub(super) fn subscribe(&mut self, id: ConnId, topic: &str, start: Start) {
        let conn = &self.conns[id];
        let subscribed = self
            .topics
            .find(topic)
            .is_some_and(|tid| conn.sub_index(tid).is_some());
        if !subscribed && conn.subs.len() >= self.config.max_subscriptions {
            let reason = format!(
                "at the limit of {} subscriptions per connection",
                self.config.max_subscriptions
            );
            return self.reject(id, ErrorCode::LimitReached, &reason);
        }
        // A subscription alone creates no files: a typo must not become a directory for good.
        let Some(tid) = self.topic_for(id, topic, false) else {
            return;
        };
        if self.conns[id].groups.iter().any(|m| m.topic == tid) {
            let reason = format!(
                "this connection reads topic {topic} through a group: it cannot also subscribe to it"
            );
            return self.reject(id, ErrorCode::InvalidGroup, &reason);
        }
        let first = self.topics[tid].first();
        let next = self.topics[tid].log.visible();
        let offset = match self.resolve_start(tid, start) {
            Ok(offset) => offset,
            Err(reason) => return self.reject(id, ErrorCode::Internal, &reason),
        };
        let log = &self.topics[tid].log;
        let conn = &mut self.conns[id];
        match conn.sub_index(tid) {
            Some(i) => {
                // Subscribing again moves the subscription; a half-sent frame is finished first.
                conn.finish_partial(i, log);
                conn.subs[i].cursor = Cursor { offset, partial: 0 };
            }
            None => {
                conn.subs.push(Sub {
                    topic: tid,
                    cursor: Cursor { offset, partial: 0 },
                });
                self.topics[tid].subscribers.push(id);
            }
        }
        self.send(
            id,
            Frame::Subscribed {
                topic,
                offset,
                first,
                next,
            },
        );
    }

    /// The offset a subscription or a new group of topic `tid` starts at; the error says why a
    /// time could not be found.
    pub(super) fn resolve_start(&mut self, tid: TopicId, start: Start) -> Result<u64, String> {
        let first = self.topics[tid].first();
        let next = self.topics[tid].log.visible();
        Ok(match start {
            Start::Earliest => first,
            Start::Latest => next,
            Start::Offset(o) => o,
            Start::Last(n) => next.saturating_sub(n).max(first),
            Start::Time(ms) => match self.offset_at_time(tid, ms) {
                Ok(offset) => offset.min(next),
                Err(e) => {
                    let topic = &self.topics[tid].name;
                    log::error!("topic {topic}: finding time {ms}: {e}");
                    return Err(format!("cannot find time {ms} in topic {topic}: {e}"));
                }
            },
        })
    }

    /// The first offset of topic `tid` stored at or after `ms`, or the next offset when none
    /// is: from memory when the log can tell, else from the time index of its storage, which
    /// reads no segment before the one that holds the answer.
    fn offset_at_time(&mut self, tid: TopicId, ms: u64) -> Result<u64, super::storage::StoreError> {
        let t = &mut self.topics[tid];
        if let Some(offset) = t.log.offset_at_time(ms) {
            return Ok(offset);
        }
        match t.store.as_mut() {
            Some(store) => store.offset_at_time(ms),
            None => Ok(t.log.first()),
        }
    }

    /// Ends a subscription. Unsubscribing from a topic the connection is not subscribed to is
    /// not an error (it may have just been refused, or the consumer does not keep track), but a
    /// name that breaks the rules is, as in every frame that names a topic.
    pub(super) fn unsubscribe(&mut self, id: ConnId, topic: &str) {
        if let Err(e) = validate_topic(topic) {
            return self.reject(id, ErrorCode::InvalidTopic, &e.to_string());
        }
        let Some(tid) = self.topics.find(topic) else {
            return;
        };
        let conn = &mut self.conns[id];
        let Some(i) = conn.sub_index(tid) else {
            return;
        };
        conn.finish_partial(i, &self.topics[tid].log);
        conn.subs.remove(i);
        conn.next_sub = 0;
        self.topics[tid].subscribers.retain(|&c| c != id);
        self.mark(id);
    }
}
