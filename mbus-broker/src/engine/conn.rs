//! What the core knows of one connection: its role, handshake state, publish count, pending
//! control frames and subscriptions.

use std::net::SocketAddr;
use std::time::Instant;

use mbus_proto::Role;

use super::TopicId;
use super::memlog::{Cursor, Log, Segment};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected; the first frame must be `Hello`.
    Handshake,
    /// `Hello` accepted; the role's frames are served.
    Open,
    /// An `Error` was queued: the connection is read no more and closes once it is flushed.
    Closing,
}

/// One subscription of a consumer connection.
#[derive(Debug, Clone, Copy)]
pub struct Sub {
    /// The topic read.
    pub topic: TopicId,
    /// Where the next write to this consumer resumes in the topic's log.
    pub cursor: Cursor,
}

/// A connection's state in the core.
#[derive(Debug)]
pub struct Conn {
    /// The port the peer connected to, which fixes the role it may take.
    pub role: Role,
    /// The peer's address, for log lines.
    pub peer: SocketAddr,
    /// Handshake and closing state.
    pub state: State,
    /// Publishes taken on this connection: the publish numbered `published` is the latest.
    pub published: u64,
    /// Publishes known to be stored as the broker promises (durably, with a data directory):
    /// what the next `Confirm` may say.
    pub durable: u64,
    /// On the group commit's list of producers waiting for durability.
    pub uncommitted: bool,
    /// Why the commit of a topic it published to failed this turn, if one did: it is told so
    /// instead of being confirmed.
    pub commit_failed: Option<String>,
    /// The largest count sent in a `Confirm`.
    pub confirmed: u64,
    /// Encoded control frames (everything but deliveries) not yet written.
    pub control: Vec<u8>,
    /// Bytes at the front of `control` already written.
    pub control_sent: usize,
    /// Bytes at the front of `control` that are deliveries, not replies: the rest of a frame
    /// spilled there when retention dropped or a subscription moved away from it, or frames read
    /// from disk. They are only ever put into an empty buffer or in front of what it holds, and
    /// do not count against the limit on unread replies.
    pub control_data: usize,
    /// The consumer's subscriptions, at most one per topic.
    pub subs: Vec<Sub>,
    /// Where the next write starts its round over `subs`, so that no topic starves the others.
    pub next_sub: usize,
    /// The consumer groups it is a member of, at most one per topic, none of a topic in `subs`.
    pub groups: Vec<super::groups::Membership>,
    /// Where the next fill starts its round over `groups`.
    pub next_group: usize,
    /// In the core's ready list already.
    pub queued: bool,
    /// The last write hit `WouldBlock`; the event loop reports when the socket is writable.
    pub blocked: bool,
    /// When the connection was accepted.
    pub opened: Instant,
    /// Bytes written to the peer.
    pub bytes_out: u64,
    /// When the peer last sent a frame, the keepalive ping went out, or closing began.
    pub heard: Instant,
    /// A keepalive `Ping` is unanswered.
    pub pinged: bool,
    /// The topic of this producer's last publish, so that a run of publishes to one topic looks
    /// its name up and validates it once.
    pub last_topic: Option<TopicId>,
    /// The idempotent producer this connection speaks for, from its `Identify`.
    pub identity: Option<Identity>,
}

/// An idempotent producer's identity and the number of its connection's first publish.
#[derive(Debug)]
pub struct Identity {
    pub producer: Box<str>,
    pub first: u64,
}

impl Identity {
    /// The producer's number of the connection's next publish, if it has one.
    pub fn next(&self, published: u64) -> Option<u64> {
        self.first.checked_add(published)
    }
}

impl Conn {
    pub fn new(role: Role, peer: SocketAddr, now: Instant) -> Self {
        Conn {
            role,
            peer,
            state: State::Handshake,
            published: 0,
            durable: 0,
            uncommitted: false,
            commit_failed: None,
            confirmed: 0,
            control: Vec::new(),
            control_sent: 0,
            control_data: 0,
            subs: Vec::new(),
            next_sub: 0,
            groups: Vec::new(),
            next_group: 0,
            queued: false,
            blocked: false,
            opened: now,
            bytes_out: 0,
            heard: now,
            pinged: false,
            last_topic: None,
            identity: None,
        }
    }

    /// Control bytes not yet written.
    pub fn control_pending(&self) -> usize {
        self.control.len() - self.control_sent
    }

    /// Replies (confirms, errors, pongs, gap notices) not yet written: what the slow-consumer
    /// limit counts.
    pub fn replies_pending(&self) -> usize {
        self.control.len() - self.control_sent.max(self.control_data)
    }

    /// The subscription whose frame is half written, if any. At most one source of output is
    /// ever mid-frame, and it must be finished before anything else is written.
    pub fn partial_sub(&self) -> Option<usize> {
        self.subs.iter().position(|s| s.cursor.partial > 0)
    }

    /// Moves the unsent rest of the frame subscription `i` is half-way through, which `seg`
    /// holds, to the front of the control buffer, so that the segment can be dropped or the
    /// subscription moved. Nothing of the control buffer has been sent then: only one source is
    /// ever mid-frame.
    pub fn spill(&mut self, i: usize, seg: &Segment) {
        debug_assert_eq!(self.control_sent, 0, "two sources mid-frame at once");
        let cursor = &mut self.subs[i].cursor;
        let range = seg.frame_range(cursor.offset);
        let rest = &seg.buf[range.start + cursor.partial..range.end];
        self.control.splice(0..0, rest.iter().copied());
        self.control_data += rest.len();
        *cursor = Cursor {
            offset: seg.frame_end(cursor.offset),
            partial: 0,
        };
    }

    /// Finishes subscription `i`'s half-sent frame through the control buffer, if it has one;
    /// `log` is its topic's.
    pub fn finish_partial(&mut self, i: usize, log: &Log) {
        let cursor = self.subs[i].cursor;
        if cursor.partial > 0 {
            let seg = log
                .segment_of(cursor.offset)
                .expect("partial frames stay in memory");
            self.spill(i, seg);
        }
    }

    pub fn sub_index(&self, topic: TopicId) -> Option<usize> {
        self.subs.iter().position(|s| s.topic == topic)
    }
}
