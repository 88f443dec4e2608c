//! The broker's state machine: topics, subscriptions and dispatch, driven by plain method calls.
//!
//! The event loop hands the core decoded frames with the id of the connection they came from, and
//! asks it to write what a connection is owed into anything that implements `io::Write`. The core
//! never sees a socket, a token or a clock, so every behaviour is testable in memory.

pub mod admin;
mod budget;
mod conn;
mod dispatch;
pub mod durable;
pub mod group;
mod group_state;
pub mod groups;
mod ids;
pub mod inspect;
pub mod memlog;
mod output;
pub mod producers;
pub mod segpool;
pub mod storage;
mod timers;
mod topic;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mbus_proto::{DecodeError, ErrorCode, Frame, PROTOCOL_VERSION, Role};

use conn::{Conn, State};
use ids::Conns;
pub use ids::{ConnId, TopicId};
use memlog::Retention;
pub use output::Progress;
use storage::{Storage, StoreError};
use topic::Topics;

/// The largest frame body accepted before a connection's `Hello` is: a `Hello` with a token of
/// up to 4,000 bytes fits, and a peer that has not said who it is cannot make the broker hold
/// more for it.
pub const HELLO_FRAME_LIMIT: u32 = 4096;

/// What the core needs to know of the broker's configuration.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The largest frame body accepted from clients, announced in `Welcome`.
    pub max_frame: u32,
    /// How much each topic keeps.
    pub retention: Retention,
    /// The most control bytes (confirms, errors, pongs, gap notices) a connection may owe before
    /// it is closed as a slow consumer. Deliveries never count: they are read from the log.
    pub max_control_bytes: usize,
    /// The least one `write` call may send before it yields to other connections. A turn that
    /// brought in more raises it to that much, so that a consumer of a topic fed by several
    /// producers keeps pace with them.
    pub write_budget: usize,
    /// How long a new connection has to complete its `Hello`.
    pub handshake_timeout: Duration,
    /// Silence after which the broker pings a peer, and again after which it gives up on it.
    pub idle_timeout: Duration,
    /// The token clients must present in `Hello`, if any.
    pub auth_token: Option<String>,
    /// The most topics the broker creates; publishing or subscribing to a new one beyond it is
    /// refused.
    pub max_topics: usize,
    /// The most topics one consumer connection may subscribe to.
    pub max_subscriptions: usize,
    /// The most bytes all topics' logs may hold in memory together; past it the oldest buffers
    /// across topics are taken back (see `budget.rs`).
    pub max_memory: usize,
    /// The defaults, and caps, of consumer groups' settings.
    pub groups: groups::GroupLimits,
    /// What topics remember of idempotent producers.
    pub producers: producers::ProducerLimits,
}

/// Counters for the shutdown summary and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub connections: usize,
    /// Connections opened since start.
    pub connections_total: u64,
    /// Topics that exist.
    pub topics: usize,
    /// Messages published since start.
    pub messages: u64,
    /// Topics whose files could not be opened at start, served as unavailable.
    pub unavailable_topics: usize,
    /// Bytes all topics' logs hold in memory.
    pub memory_held: usize,
    /// Buffers taken back from logs to keep within the memory budget, since start.
    pub memory_evicted: u64,
    /// Bytes of the segment buffers pooled for reuse, on top of `memory_held`.
    pub memory_pooled: usize,
    /// Whole segments started with a pooled buffer, and with fresh memory, since start.
    pub segments_reused: u64,
    pub segments_allocated: u64,
}

/// The broker core.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    topics: Topics,
    conns: Conns,
    /// Connections that may have something to write.
    ready: Vec<ConnId>,
    /// Topics appended to since their subscribers were last woken.
    dirty: Vec<TopicId>,
    connections_total: u64,
    messages: u64,
    /// The time as last told by [`Core::handle_timeout`]; the core has no clock of its own.
    now: Instant,
    /// The time of day, in milliseconds since the Unix epoch, as last told.
    wall_clock: u64,
    /// When each timer is next due.
    timers: timers::Timers,
    /// Connections to drop without further ado, for [`Core::take_expired`].
    expired: Vec<ConnId>,
    /// What the next group commit has to make durable.
    commit: durable::Commit,
    /// Bytes appended to logs since the last [`Core::take_ready`].
    appended: usize,
    /// What each `write` may send until the next [`Core::take_ready`].
    write_budget: usize,
    /// The memory all logs hold, against `max_memory`.
    budget: budget::Budget,
    /// Segment buffers that logs gave back, for the next segment any topic starts.
    pool: segpool::SegmentPool,
    /// Totals for monitoring.
    counters: inspect::Counters,
    /// A frame read from disk for a group member, on its way to the member's buffer.
    scratch: Vec<u8>,
}

impl Core {
    /// A core with no topics and no connections whose topics live in memory only, its clock
    /// set to `now`.
    pub fn new(config: CoreConfig, now: Instant) -> Self {
        Core::build(config, None, now)
    }

    /// A core whose topics are kept in `storage` (in memory only without one), its clock set to
    /// `now`, with every topic the storage holds already opened and recovered.
    pub fn start(
        config: CoreConfig,
        storage: Option<Box<dyn Storage>>,
        now: Instant,
    ) -> Result<Self, StoreError> {
        let mut core = Core::build(config, storage, now);
        core.recover()?;
        Ok(core)
    }

    fn build(config: CoreConfig, storage: Option<Box<dyn Storage>>, now: Instant) -> Self {
        let durable = storage.is_some();
        Core {
            now,
            wall_clock: 0,
            timers: timers::Timers {
                retention: durable.then(|| now + timers::RETENTION_INTERVAL),
                ..timers::Timers::default()
            },
            expired: Vec::new(),
            commit: durable::Commit::default(),
            appended: 0,
            write_budget: config.write_budget,
            budget: budget::Budget::new(config.max_memory),
            pool: segpool::SegmentPool::new(
                config.retention.segment_bytes,
                segpool::pool_segments(config.max_memory, config.retention.segment_bytes),
            ),
            counters: inspect::Counters::default(),
            scratch: Vec::new(),
            topics: Topics::new(config.retention, storage),
            config,
            conns: Conns::default(),
            ready: Vec::new(),
            dirty: Vec::new(),
            connections_total: 0,
            messages: 0,
        }
    }

    /// Registers a connection accepted on the port of `role`.
    pub fn open(&mut self, role: Role, peer: SocketAddr) -> ConnId {
        self.connections_total += 1;
        self.schedule_conns(self.now + self.config.handshake_timeout);
        self.conns.insert(Conn::new(role, peer, self.now))
    }

    /// Forgets a connection and its subscriptions.
    pub fn close(&mut self, id: ConnId) {
        let Some(conn) = self.conns.try_remove(id) else {
            return;
        };
        for sub in conn.subs {
            self.topics[sub.topic].subscribers.retain(|&c| c != id);
        }
        // What a member held goes to the other members at once.
        for m in conn.groups {
            self.leave_group(id, m.topic, m.group);
        }
    }

    /// True once the connection has been told why it is being closed, or said it is closing; the
    /// event loop stops reading it and closes it when `write` reports it drained.
    pub fn is_closing(&self, id: ConnId) -> bool {
        self.conns.get(id).is_none_or(|c| c.state == State::Closing)
    }

    /// The largest frame body connection `id` may send now: [`HELLO_FRAME_LIMIT`] until its
    /// `Hello` is accepted, the configured `max_frame` after.
    pub fn frame_limit(&self, id: ConnId) -> u32 {
        match self.conns.get(id).map(|c| c.state) {
            Some(State::Handshake) | None => HELLO_FRAME_LIMIT.min(self.config.max_frame),
            Some(_) => self.config.max_frame,
        }
    }

    /// The port role of connection `id`, if it is open.
    pub fn role(&self, id: ConnId) -> Option<Role> {
        self.conns.get(id).map(|c| c.role)
    }

    /// Applies one frame received on connection `id`.
    pub fn receive(&mut self, id: ConnId, frame: Frame<'_>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.heard = self.now;
        conn.pinged = false;
        match (conn.state, conn.role, frame) {
            (State::Closing, _, _) => {}
            (
                State::Handshake,
                _,
                Frame::Hello {
                    version,
                    role,
                    token,
                },
            ) => {
                if !self.token_matches(token) {
                    let reason = "missing or wrong authentication token";
                    return self.reject(id, ErrorCode::Unauthorized, reason);
                }
                let conn = &mut self.conns[id];
                if role != conn.role {
                    let reason = format!(
                        "a {} must connect to the {} port, this is the {} port",
                        role.as_str(),
                        role.as_str(),
                        conn.role.as_str()
                    );
                    return self.reject(id, ErrorCode::UnexpectedFrame, &reason);
                }
                debug_assert_eq!(version, PROTOCOL_VERSION, "the decoder checks versions");
                conn.state = State::Open;
                self.schedule_conns(self.now + self.config.idle_timeout);
                self.send(
                    id,
                    Frame::Welcome {
                        version: PROTOCOL_VERSION,
                        max_frame: self.config.max_frame,
                        idle_timeout: u64::try_from(self.config.idle_timeout.as_millis())
                            .unwrap_or(u64::MAX),
                    },
                );
            }
            // A peer's Error says it is closing, before its Hello as after: it is logged, not
            // answered.
            (_, _, Frame::Error { code, reason }) => {
                log::info!(
                    "{} closed with error {}: {reason}",
                    conn.peer,
                    code.to_u16()
                );
                conn.state = State::Closing;
                self.schedule_conns(self.now + self.config.handshake_timeout);
                self.mark(id);
            }
            (State::Handshake, _, other) => {
                let reason = format!("expected Hello first, got {}", other.name());
                self.reject(id, ErrorCode::UnexpectedFrame, &reason)
            }
            (_, Role::Producer, Frame::Publish { topic, batch }) => self.publish(id, topic, batch),
            (_, Role::Producer, Frame::Identify { producer, sequence }) => {
                self.identify(id, producer, sequence)
            }
            (_, Role::Consumer, Frame::Subscribe { topic, start }) => {
                self.subscribe(id, topic, start)
            }
            (_, Role::Consumer, Frame::Unsubscribe { topic }) => self.unsubscribe(id, topic),
            (
                _,
                Role::Consumer,
                Frame::Join {
                    topic,
                    group,
                    start,
                    credit,
                    options,
                },
            ) => self.join(id, topic, group, start, credit, options),
            (_, Role::Consumer, Frame::Leave { topic, group }) => self.leave(id, topic, group),
            (
                _,
                Role::Consumer,
                Frame::Ack {
                    topic,
                    group,
                    action,
                    delay,
                    ranges,
                },
            ) => self.ack(id, topic, group, action, delay, ranges),
            (_, Role::Consumer, Frame::GroupInfo { topic, group }) => {
                self.group_info(id, topic, group)
            }
            (_, _, Frame::Ping) => self.send(id, Frame::Pong),
            (_, _, Frame::Pong) => {}
            (_, role, other) => {
                let reason = format!(
                    "{} is not accepted on the {} port",
                    other.name(),
                    role.as_str()
                );
                self.reject(id, ErrorCode::UnexpectedFrame, &reason)
            }
        }
    }

    /// Reports a frame that could not be decoded; the connection is closed after the error frame.
    pub fn decode_error(&mut self, id: ConnId, err: &DecodeError) {
        self.reject(id, err.code(), &err.to_string());
    }

    /// Queues a final confirm (for producers) and an `Error`, and marks the connection closing.
    pub fn reject(&mut self, id: ConnId, code: ErrorCode, reason: &str) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.state == State::Closing {
            return;
        }
        log::warn!("closing {} ({}): {reason}", conn.peer, conn.role.as_str());
        // A half-written delivery must be finished before the error frame can follow it.
        if let Some(i) = conn.partial_sub() {
            conn.finish_partial(i, &self.topics[conn.subs[i].topic].log);
        }
        output::queue_confirm(conn, &mut self.counters);
        Frame::Error { code, reason }.encode(&mut conn.control);
        self.counters.error(code);
        conn.state = State::Closing;
        conn.heard = self.now;
        self.schedule_conns(self.now + self.config.handshake_timeout);
        self.mark(id);
    }

    /// Compares a presented token with the configured one in constant time.
    fn token_matches(&self, token: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        match (&self.config.auth_token, token) {
            (None, _) => true,
            (Some(expected), Some(given)) => expected.as_bytes().ct_eq(given.as_bytes()).into(),
            (Some(_), None) => false,
        }
    }

    /// Queues a control frame, or closes the connection if it owes too much already.
    fn send(&mut self, id: ConnId, frame: Frame<'_>) {
        let conn = &mut self.conns[id];
        if conn.replies_pending() > self.config.max_control_bytes {
            let reason = format!(
                "more than {} bytes of replies unread",
                self.config.max_control_bytes
            );
            return self.reject(id, ErrorCode::SlowConsumer, &reason);
        }
        // A confirm owed goes first, so that a reply (a Pong, say) never overtakes the confirm
        // of publishes that arrived before the frame it answers.
        output::queue_confirm(conn, &mut self.counters);
        frame.encode(&mut conn.control);
        self.mark(id);
    }

    /// Puts a connection on the ready list unless it is there already or waits for the socket.
    fn mark(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            if !conn.queued && !conn.blocked {
                conn.queued = true;
                self.ready.push(id);
            }
        }
    }

    /// Tells the core that a connection's socket accepts bytes again.
    pub fn writable(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.blocked = false;
        }
        self.mark(id);
    }

    /// Appends the connections that may have output to `out`, waking the subscribers of every
    /// topic that grew since the last call. Those subscribers come first: a message's delivery
    /// should not wait behind the confirms of the same turn. Until the next call, each `write`
    /// may send as much as was appended since the last one, and at least `write_budget`.
    pub fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        self.write_budget = self
            .config
            .write_budget
            .max(std::mem::take(&mut self.appended));
        let start = out.len();
        for tid in std::mem::take(&mut self.dirty) {
            let topic = &mut self.topics[tid];
            topic.dirty = false;
            for &cid in &topic.subscribers {
                let conn = &mut self.conns[cid];
                if !conn.queued && !conn.blocked {
                    conn.queued = true;
                    out.push(cid);
                }
            }
            for g in &topic.groups {
                for (i, m) in g.members.iter().enumerate() {
                    let conn = &mut self.conns[m.conn];
                    if g.can_give(i) && !conn.queued && !conn.blocked {
                        conn.queued = true;
                        out.push(m.conn);
                    }
                }
            }
        }
        out.append(&mut self.ready);
        for &id in &out[start..] {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.queued = false;
            }
        }
    }

    /// True when some connection may have output; the event loop then polls without sleeping.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.dirty.is_empty()
    }

    /// Counters for logs and tests.
    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.conns.len(),
            connections_total: self.connections_total,
            topics: self.topics.len(),
            messages: self.messages,
            unavailable_topics: self.topics.unavailable(),
            memory_held: self.budget.held,
            memory_evicted: self.budget.evicted,
            memory_pooled: self.pool.held(),
            segments_reused: self.pool.reused,
            segments_allocated: self.pool.allocated,
        }
    }

    /// The offsets `first..next` that topic `name` holds, if it exists.
    pub fn topic_range(&self, name: &str) -> Option<std::ops::Range<u64>> {
        let log = &self.topics[self.topics.find(name)?].log;
        Some(log.first()..log.next())
    }

    /// The payload stored at `offset` of topic `name`, if the topic still holds it in memory.
    pub fn message(&self, name: &str, offset: u64) -> Option<&[u8]> {
        self.message_at(name, offset).map(|(_, m)| m.data)
    }

    /// The time and the message stored at `offset` of topic `name`, if the topic still holds
    /// it in memory.
    pub fn message_at(&self, name: &str, offset: u64) -> Option<(u64, mbus_proto::MessageRef<'_>)> {
        self.topics[self.topics.find(name)?].log.message_at(offset)
    }

    /// Tells the core the time of day, in milliseconds since the Unix epoch, which it stamps on
    /// the messages it stores from now on (never going back within a topic). The event loop
    /// tells it once per turn, with [`Core::handle_timeout`]; until told, it stamps 0.
    pub fn set_wall_clock(&mut self, unix_ms: u64) {
        self.wall_clock = unix_ms;
    }

    /// Bytes held by all topics' logs.
    pub fn stored_bytes(&self) -> usize {
        self.topics.iter().map(|t| t.log.bytes()).sum()
    }
}
