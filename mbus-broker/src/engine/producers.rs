//! Idempotent producers in a topic: the last publish number each identity stored there, so
//! that a resend is confirmed without being stored twice (`PROTOCOL.md` section 13).

use std::collections::HashMap;
use std::time::Duration;

use mbus_proto::{ErrorCode, Frame};

use super::conn::Identity;
use super::storage::ProducerEntry;
use super::{ConnId, Core, TopicId};

/// What the broker remembers of idempotent producers, the same for every topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerLimits {
    /// Identities remembered per topic; the one whose last publish is the oldest goes first.
    pub max_per_topic: usize,
    /// How long after its last publish to a topic an identity is remembered there.
    pub ttl: Duration,
}

impl Default for ProducerLimits {
    fn default() -> Self {
        ProducerLimits {
            max_per_topic: 1000,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// An identity's last publish stored in the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Last {
    sequence: u64,
    /// The offset after its messages.
    end: u64,
    /// When it was stored, milliseconds since the Unix epoch.
    time: u64,
}

/// One topic's identities. With a data directory the changes since the last commit can be
/// taken back, as the topic's messages are after a failed commit.
#[derive(Debug, Default)]
pub struct Producers {
    last: HashMap<Box<str>, Last>,
    /// What each change since the last commit replaced, oldest first.
    undo: Vec<(Box<str>, Option<Last>)>,
}

impl Producers {
    /// Whether publish `sequence` of `id` is stored already: at or below the last one the topic
    /// remembers of `id`, which it has not forgotten by `now_ms`.
    pub fn stored(&self, id: &str, sequence: u64, now_ms: u64, limits: &ProducerLimits) -> bool {
        self.last
            .get(id)
            .is_some_and(|l| sequence <= l.sequence && !expired(l, now_ms, limits))
    }

    /// The number of the last publish of `id` the topic remembers, if it has not forgotten it by
    /// `now_ms`.
    pub fn last(&self, id: &str, now_ms: u64, limits: &ProducerLimits) -> Option<u64> {
        self.last
            .get(id)
            .filter(|l| !expired(l, now_ms, limits))
            .map(|l| l.sequence)
    }

    /// Remembers `entry` as its identity's last publish. A new identity in a full table takes the
    /// place of the one whose last publish is the oldest.
    pub fn record(&mut self, entry: &ProducerEntry, undoable: bool, limits: &ProducerLimits) {
        let last = Last {
            sequence: entry.sequence,
            end: entry.end,
            time: entry.time,
        };
        if !self.last.contains_key(entry.producer.as_str()) {
            while self.last.len() >= limits.max_per_topic.max(1) {
                let oldest = self
                    .last
                    .iter()
                    .min_by_key(|(_, l)| l.time)
                    .map(|(id, _)| id.clone())
                    .expect("a full table has an entry");
                let gone = self.last.remove(&oldest);
                if undoable {
                    self.undo.push((oldest, gone));
                }
            }
        }
        let id: Box<str> = entry.producer.as_str().into();
        let before = self.last.insert(id.clone(), last);
        if undoable {
            self.undo.push((id, before));
        }
    }

    /// The last commit succeeded: what changed since stays.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The last commit failed: everything changed since the one before is taken back.
    pub fn roll_back(&mut self) {
        while let Some((id, before)) = self.undo.pop() {
            match before {
                Some(last) => self.last.insert(id, last),
                None => self.last.remove(&id),
            };
        }
    }

    /// Every identity remembered and not yet forgotten by `now_ms`, in the order of their last
    /// publishes in the topic, as a rewritten producer file holds them.
    pub fn entries(&self, now_ms: u64, limits: &ProducerLimits) -> Vec<ProducerEntry> {
        let mut out: Vec<ProducerEntry> = self
            .last
            .iter()
            .filter(|(_, l)| !expired(l, now_ms, limits))
            .map(|(id, l)| ProducerEntry {
                producer: id.to_string(),
                sequence: l.sequence,
                end: l.end,
                time: l.time,
            })
            .collect();
        out.sort_by_key(|e| e.end);
        out
    }

    /// How many identities the topic remembers.
    pub fn remembered(&self) -> usize {
        self.last.len()
    }
}

impl Core {
    /// A producer names itself before its first publish: its publishes are numbered from
    /// `sequence` on, and a topic takes one it already stored as a resend.
    pub(super) fn identify(&mut self, id: ConnId, producer: &str, sequence: u64) {
        let conn = &self.conns[id];
        if conn.identity.is_some() || conn.published > 0 {
            let reason = "Identify comes once, before the first Publish";
            return self.reject(id, ErrorCode::UnexpectedFrame, reason);
        }
        if let Err(e) = mbus_proto::validate_producer_id(producer) {
            let reason = format!("invalid producer identity: {e}");
            return self.reject(id, ErrorCode::Malformed, &reason);
        }
        // A new session goes on after the highest number any topic remembers.
        let first = match sequence {
            0 => {
                let limits = &self.config.producers;
                let now = self.wall_clock;
                let last = self
                    .topics
                    .iter()
                    .filter_map(|t| t.producers.last(producer, now, limits))
                    .max();
                match last.unwrap_or(0).checked_add(1) {
                    Some(first) => first,
                    None => {
                        let reason = "the producer's publish numbers went past 2^64 - 1";
                        return self.reject(id, ErrorCode::LimitReached, reason);
                    }
                }
            }
            resumed => resumed,
        };
        log::debug!(
            "{} is producer {producer}, from publish {first} on",
            conn.peer
        );
        self.conns[id].identity = Some(Identity {
            producer: producer.into(),
            first,
        });
        self.send(
            id,
            Frame::Identified {
                producer,
                sequence: first,
            },
        );
    }

    /// A publish of producer `id` that topic `tid` stored already: it is taken, and confirmed
    /// no earlier than the publish that stored it (which, if this turn's commit of the topic
    /// fails, is refused with it).
    pub(super) fn publish_again(&mut self, id: ConnId, tid: TopicId) {
        self.counters.deduplicated += 1;
        let t = &mut self.topics[tid];
        if t.uncommitted && t.publishers.last() != Some(&id) {
            t.publishers.push(id);
        }
        self.taken(id);
    }

    /// Gives topic `tid` back the producers saved with it, at start.
    pub(super) fn restore_producers(&mut self, tid: TopicId) {
        let topic = &mut self.topics[tid];
        let Some(store) = topic.store.as_mut() else {
            return;
        };
        match store.producers() {
            Ok(entries) => {
                for entry in &entries {
                    topic.producers.record(entry, false, &self.config.producers);
                }
            }
            Err(e) => log::error!(
                "topic {}: its producers' entries cannot be read, so resends of what they \
                 published before the restart are stored again: {e}",
                topic.name
            ),
        }
    }
}

fn expired(last: &Last, now_ms: u64, limits: &ProducerLimits) -> bool {
    now_ms.saturating_sub(last.time) > limits.ttl.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, sequence: u64, time: u64) -> ProducerEntry {
        ProducerEntry {
            producer: id.to_owned(),
            sequence,
            end: sequence * 10,
            time,
        }
    }

    #[test]
    fn a_resend_is_stored_once_and_a_full_table_forgets_the_oldest() {
        let limits = ProducerLimits {
            max_per_topic: 2,
            ttl: Duration::from_secs(60),
        };
        let mut p = Producers::default();
        p.record(&entry("a", 3, 1000), false, &limits);
        assert!(p.stored("a", 3, 1000, &limits) && p.stored("a", 1, 1000, &limits));
        assert!(!p.stored("a", 4, 1000, &limits) && !p.stored("b", 1, 1000, &limits));
        p.record(&entry("b", 1, 2000), false, &limits);
        p.record(&entry("c", 1, 3000), false, &limits);
        assert_eq!(p.remembered(), 2);
        assert!(!p.stored("a", 3, 3000, &limits), "the oldest goes first");
        assert!(p.stored("b", 1, 3000, &limits));
        // A minute after its last publish, an identity is forgotten.
        assert!(p.stored("c", 1, 63_000, &limits));
        assert!(!p.stored("c", 1, 63_001, &limits));
        assert_eq!(p.entries(62_500, &limits).len(), 1);
    }

    #[test]
    fn a_failed_commit_takes_back_what_changed_since_the_last() {
        let limits = ProducerLimits {
            max_per_topic: 1,
            ttl: Duration::from_secs(60),
        };
        let mut p = Producers::default();
        p.record(&entry("a", 1, 0), true, &limits);
        p.commit();
        p.record(&entry("a", 2, 0), true, &limits);
        p.record(&entry("b", 7, 0), true, &limits);
        assert!(!p.stored("a", 1, 0, &limits));
        p.roll_back();
        assert!(p.stored("a", 1, 0, &limits) && !p.stored("a", 2, 0, &limits));
        assert!(!p.stored("b", 7, 0, &limits));
        assert_eq!(p.entries(0, &limits), vec![entry("a", 1, 0)]);
    }
}
