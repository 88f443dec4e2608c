//! What the core shows of itself to monitoring: counters kept as plain integers as traffic
//! passes, and views of its topics and connections built when asked, so that a scrape sees the
//! figures of that moment and the hot path pays nothing but an addition.

use std::net::SocketAddr;
use std::time::Duration;

use mbus_proto::{ErrorCode, Role};

use super::Core;
use super::conn::State;

/// The most error codes counted one by one; higher codes share the last slot.
pub const ERROR_CODES: usize = 16;

/// Totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Payload bytes of the messages published.
    pub published_bytes: u64,
    /// Messages written to consumers, each consumer counted.
    pub delivered: u64,
    /// Bytes written to consumers: frames, deliveries and replies.
    pub delivered_bytes: u64,
    /// `Confirm` frames sent.
    pub confirms: u64,
    /// `Gap` frames sent.
    pub gaps: u64,
    /// `Error` frames sent, by code (index = code, the last slot for codes beyond).
    pub errors: [u64; ERROR_CODES],
    /// Messages memory-only topics dropped by retention or the memory budget.
    pub dropped: u64,
    /// Publishes of idempotent producers recognised as stored already: confirmed, not stored.
    pub deduplicated: u64,
}

impl Counters {
    pub(super) fn error(&mut self, code: ErrorCode) {
        let i = usize::from(code.to_u16()).min(ERROR_CODES - 1);
        self.errors[i] += 1;
    }
}

/// One topic as monitoring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Its name.
    pub name: String,
    /// The oldest offset it serves, from memory or disk.
    pub first: u64,
    /// The offset its next message gets.
    pub next: u64,
    /// Bytes of its messages held in memory.
    pub memory_bytes: usize,
    /// Bytes it takes in storage, when it is kept there.
    pub disk_bytes: Option<u64>,
    /// Why it cannot be used, if it cannot.
    pub unavailable: Option<String>,
    /// Its consumers and where each is.
    pub subscribers: Vec<SubscriberInfo>,
    /// Its consumer groups, by name.
    pub groups: Vec<GroupInfo>,
    /// When its oldest message was stored (milliseconds since the Unix epoch), when that
    /// message is in memory: always for a topic without files, for a durable one while its cache
    /// holds the oldest message.
    pub first_time: Option<u64>,
    /// When its newest message was stored, if it has one.
    pub last_time: Option<u64>,
}

/// One consumer group of a topic as monitoring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// Messages of the topic the group has not finished with: the topic's next offset less the
    /// group's ack floor.
    pub lag: u64,
    /// What `GroupState` says of it.
    pub stats: mbus_proto::GroupStats,
}

/// One consumer's place in a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// The consumer's address.
    pub peer: SocketAddr,
    /// The offset it reads next.
    pub position: u64,
    /// Messages the topic holds that it has not read: `next - position`.
    pub lag: u64,
}

/// One connection as monitoring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The core's id for it, which the event loop maps to its socket.
    pub id: super::ConnId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The port it came in on.
    pub role: Role,
    /// Whether its `Hello` was accepted.
    pub open: bool,
    /// How long ago it was accepted.
    pub age: Duration,
    /// Bytes written to it.
    pub bytes_out: u64,
    /// Publishes it made.
    pub published: u64,
    /// Its subscriptions: topic and the offset it reads next.
    pub subscriptions: Vec<(String, u64)>,
}

impl Core {
    /// Totals since start.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Every topic, in the order they were created.
    pub fn topic_infos(&self) -> Vec<TopicInfo> {
        self.topics
            .iter_ids()
            .map(|(id, topic)| {
                let next = topic.log.next();
                let subscribers = topic
                    .subscribers
                    .iter()
                    .filter_map(|&cid| {
                        let conn = self.conns.get(cid)?;
                        let sub = conn.subs[conn.sub_index(id)?];
                        let position = sub.cursor.offset;
                        Some(SubscriberInfo {
                            peer: conn.peer,
                            position,
                            lag: next.saturating_sub(position),
                        })
                    })
                    .collect();
                let mut groups: Vec<GroupInfo> = topic
                    .groups
                    .iter()
                    .map(|g| GroupInfo {
                        name: g.name.to_string(),
                        lag: next.saturating_sub(g.floor()),
                        stats: g.stats(),
                    })
                    .collect();
                groups.sort_by(|a, b| a.name.cmp(&b.name));
                let has_messages = next > topic.first();
                let first_time = topic.log.message_at(topic.first()).map(|(time, _)| time);
                TopicInfo {
                    name: topic.name.to_string(),
                    first: topic.first(),
                    next,
                    memory_bytes: topic.log.bytes(),
                    disk_bytes: topic.store.as_ref().map(|s| s.bytes()),
                    unavailable: topic.unavailable.clone(),
                    subscribers,
                    groups,
                    first_time: first_time.filter(|_| has_messages),
                    last_time: has_messages.then(|| topic.log.last_time()),
                }
            })
            .collect()
    }

    /// Every connection.
    pub fn conn_infos(&self) -> Vec<ConnInfo> {
        self.conns
            .iter()
            .map(|(id, conn)| ConnInfo {
                id,
                peer: conn.peer,
                role: conn.role,
                open: conn.state != State::Handshake,
                age: self.now.saturating_duration_since(conn.opened),
                bytes_out: conn.bytes_out,
                published: conn.published,
                subscriptions: conn
                    .subs
                    .iter()
                    .map(|s| (self.topics[s.topic].name.to_string(), s.cursor.offset))
                    .collect(),
            })
            .collect()
    }
}
