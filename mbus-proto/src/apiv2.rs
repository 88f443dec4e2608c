//! Protocol version 2: the message type and every frame a producer, a consumer and the broker
//! exchange.
//!
//! A frame body is a msgpack array `[kind, field, ...]`; the field list of each kind is fixed and
//! documented on its variant. Decoding borrows strings and payloads from the input buffer, so a
//! [`Frame`] lives no longer than the bytes it was decoded from.

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::group::{AckAction, AckRanges, GroupOptions};

/// The protocol version this crate speaks, carried in [`Frame::Hello`] and [`Frame::Welcome`].
pub const PROTOCOL_VERSION: u8 = 2;

/// A message as a producer publishes it and a consumer receives it: a topic and opaque bytes.
///
/// Encoded as the msgpack array `[topic, data]`, with `data` a msgpack *bin*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The topic the message belongs to; see [`crate::validate_topic`].
    pub topic: String,
    /// The payload; the bus never looks inside it.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Message {
    /// The frame that publishes this message, without headers.
    pub fn publish_frame(&self) -> Frame<'_> {
        Frame::publish(&self.topic, &self.data)
    }
}

/// Which side of the bus a client is; each role has its own port on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Publishes messages; connects to the producer port. Encoded as the string `"producer"`.
    Producer,
    /// Subscribes to topics; connects to the consumer port. Encoded as the string `"consumer"`.
    Consumer,
}

impl Role {
    /// The wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

/// Where a subscription starts reading its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Start {
    /// The oldest message the topic still holds. Encoded as the string `"earliest"`.
    #[default]
    Earliest,
    /// Only messages published after the subscription. Encoded as the string `"latest"`.
    Latest,
    /// The message with this offset. Encoded as a msgpack unsigned integer.
    Offset(u64),
    /// The last `n` messages the topic holds (all of them when it holds fewer). Encoded as the
    /// array `["last", n]`.
    Last(u64),
    /// The first message stored at or after this time, in milliseconds since the Unix epoch.
    /// Encoded as the array `["time", ms]`.
    Time(u64),
}

impl std::str::FromStr for Start {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected `earliest`, `latest`, an offset, `last:N` or `time:MS`";
        let number = |v: &str| v.parse().map_err(|_| format!("{expected}, found `{s}`"));
        match s {
            "earliest" => Ok(Start::Earliest),
            "latest" => Ok(Start::Latest),
            _ => match s.split_once(':') {
                Some(("last", n)) => number(n).map(Start::Last),
                Some(("time", ms)) => number(ms).map(Start::Time),
                _ => number(s).map(Start::Offset),
            },
        }
    }
}

impl std::fmt::Display for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Start::Earliest => f.write_str("earliest"),
            Start::Latest => f.write_str("latest"),
            Start::Offset(o) => write!(f, "{o}"),
            Start::Last(n) => write!(f, "last:{n}"),
            Start::Time(ms) => write!(f, "time:{ms}"),
        }
    }
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// The reason carried by an [`Frame::Error`], as a number that programs can act on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
            /// A code this version does not know; kept so that newer peers can be understood.
            Other(u16),
        }

        impl ErrorCode {
            /// The code's number on the wire.
            pub fn to_u16(self) -> u16 {
                match self {
                    $(ErrorCode::$name => $value,)*
                    ErrorCode::Other(n) => n,
                }
            }

            /// The code with this number; unknown numbers become [`ErrorCode::Other`].
            pub fn from_u16(n: u16) -> Self {
                match n {
                    $($value => ErrorCode::$name,)*
                    n => ErrorCode::Other(n),
                }
            }
        }
    };
}

error_codes! {
    /// The body is not a msgpack array of the shape its kind requires.
    Malformed = 1,
    /// The length prefix exceeds the receiver's frame limit.
    FrameTooLarge = 2,
    /// The frame kind is not defined by this protocol version.
    UnknownKind = 3,
    /// The `Hello` asked for a protocol version the broker does not speak.
    UnsupportedVersion = 4,
    /// A valid frame that is not allowed here: before `Hello`, on the other role's port, or a
    /// frame only the broker sends.
    UnexpectedFrame = 5,
    /// The topic name breaks the naming rules.
    InvalidTopic = 6,
    /// The authentication token is missing or wrong.
    Unauthorized = 7,
    /// The broker is at its connection limit.
    TooManyConnections = 8,
    /// The peer did not complete the handshake, or stayed silent, for too long.
    Timeout = 9,
    /// The peer did not read what the broker owed it and the outbound buffer limit was reached.
    SlowConsumer = 10,
    /// The broker is shutting down.
    ShuttingDown = 11,
    /// A broker-wide or per-connection limit other than the above was reached.
    LimitReached = 12,
    /// The broker failed in a way that is not the peer's fault.
    Internal = 13,
    /// The group name breaks the naming rules, or a group frame asks for what the group cannot
    /// do (a credit of 0, joining a topic the connection subscribes to plainly).
    InvalidGroup = 14,
}

/// One protocol frame, borrowing its strings and payloads from the buffer it was decoded from.
///
/// Each variant documents its msgpack array. `kind` numbers are stable within a protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `[1, version, role, token]`, client to broker, first frame of every connection.
    /// `token` is a string, or nil when the client has none.
    Hello {
        /// The protocol version the client speaks.
        version: u8,
        /// Whether the client produces or consumes; must match the port it connected to.
        role: Role,
        /// The shared secret, when the broker requires one.
        token: Option<&'a str>,
    },
    /// `[2, version, max_frame, idle_timeout]`, broker to client, the answer to an accepted
    /// `Hello`.
    Welcome {
        /// The protocol version the broker speaks on this connection.
        version: u8,
        /// The largest frame body, in bytes, the broker accepts from this client.
        max_frame: u32,
        /// Milliseconds of silence after which the broker pings this client; it closes the
        /// connection after as long again without a frame.
        idle_timeout: u64,
    },
    /// `[3, topic, messages]`, producer to broker: append a batch of messages to `topic`.
    ///
    /// The broker numbers the publishes of a connection 1, 2, 3, ... in the order it receives
    /// them; [`Frame::Confirm`] refers to those numbers. A batch is stored whole or not at all.
    Publish {
        /// The topic to append to; created if it does not exist.
        topic: &'a str,
        /// The messages, at least one, each with delta 0.
        batch: Batch<'a>,
    },
    /// `[4, count]`, broker to producer: publishes 1 to `count` of this connection are stored.
    ///
    /// Confirms are cumulative and may be coalesced: a producer sees `count` only grow.
    Confirm {
        /// How many publishes of this connection the broker has taken.
        count: u64,
    },
    /// `[5, topic, start]`, consumer to broker: deliver `topic` from `start` on.
    /// `start` is `"earliest"`, `"latest"` or an unsigned offset.
    Subscribe {
        /// The topic; it need not exist yet.
        topic: &'a str,
        /// Where to start reading.
        start: Start,
    },
    /// `[6, topic, offset, first, next]`, broker to consumer: the subscription is active and
    /// its first message will be `offset` (or a later one, after a [`Frame::Gap`]).
    Subscribed {
        /// The topic subscribed to.
        topic: &'a str,
        /// The resolved start position.
        offset: u64,
        /// The oldest offset the topic held at that moment.
        first: u64,
        /// The offset its next message was to get at that moment: the topic held
        /// `first..next`.
        next: u64,
    },
    /// `[7, topic]`, consumer to broker: stop delivering `topic`.
    Unsubscribe {
        /// The topic to leave.
        topic: &'a str,
    },
    /// `[8, topic, offset, time, messages]`, broker to consumer: a run of consecutive
    /// messages of a subscribed topic, as one publish stored them.
    Deliver {
        /// The topic the messages were published to.
        topic: &'a str,
        /// The offset of the first message; the others follow it one by one.
        offset: u64,
        /// When the broker stored the first message, in milliseconds since the Unix epoch; each
        /// message's time is this plus its delta.
        time: u64,
        /// The messages, at least one.
        batch: Batch<'a>,
    },
    /// `[9, topic, from, to]`, broker to consumer: messages `from..to` (end exclusive) of `topic`
    /// were removed by retention before this consumer read them; delivery goes on at `to`.
    Gap {
        /// The topic that lost messages for this consumer.
        topic: &'a str,
        /// The first missed offset.
        from: u64,
        /// The first offset that will still be delivered.
        to: u64,
    },
    /// `[10, code, reason]`, either direction: the sender is about to close the connection.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        reason: &'a str,
    },
    /// `[11]`, either direction: asks for a `Pong`.
    Ping,
    /// `[12]`, either direction: the answer to a `Ping`.
    Pong,
    /// `[13, topic, group, start, credit, ack_wait, max_deliver, max_ack_pending,
    /// dead_letter]`, consumer to broker: join consumer group `group` of `topic`, holding at
    /// most `credit` unacknowledged messages. The first member creates the group at `start` and
    /// with the settings asked for (0, or nil for `dead_letter`, for the broker's default); a
    /// later one gets the group's. Joining again changes the member's credit.
    Join {
        /// The topic whose messages the group shares.
        topic: &'a str,
        /// The group's name; see [`crate::validate_group`].
        group: &'a str,
        /// Where a new group starts; ignored when the group exists.
        start: Start,
        /// Messages this member may hold unacknowledged at once, at least 1.
        credit: u32,
        /// The settings asked for a new group.
        options: GroupOptions<'a>,
    },
    /// `[14, topic, group, floor, next, end, ack_wait, max_deliver, max_ack_pending,
    /// dead_letter]`, broker to consumer: the member joined. Every offset below `floor` is done;
    /// `next` is the first the group has not given out yet; `end` the offset the topic's next
    /// message was to get at that moment. The settings are the group's.
    Joined {
        /// The topic.
        topic: &'a str,
        /// The group.
        group: &'a str,
        /// The group's ack floor.
        floor: u64,
        /// The first offset the group has not given out.
        next: u64,
        /// The topic's next offset when the member joined.
        end: u64,
        /// The group's settings, every field given.
        options: GroupOptions<'a>,
    },
    /// `[15, topic, group]`, consumer to broker: leave the group. What the member held goes to
    /// the other members at once.
    Leave {
        /// The topic.
        topic: &'a str,
        /// The group.
        group: &'a str,
    },
    /// `[16, topic, group, action, delay, ranges]`, consumer to broker: what became of the
    /// messages `ranges` names (see [`AckRanges`]). `delay` is the milliseconds a `Nak`ed
    /// message waits before it is given out again, and 0 for the other actions.
    Ack {
        /// The topic.
        topic: &'a str,
        /// The group.
        group: &'a str,
        /// Ack, nak, progress or term.
        action: AckAction,
        /// For a nak, how long to wait before delivering again, in milliseconds.
        delay: u64,
        /// The offsets.
        ranges: AckRanges<'a>,
    },
    /// `[17, topic, group, attempt, first, count]`, broker to member: the `Deliver` that comes
    /// next is given to this member for offsets `first..first + count` only, delivered for the
    /// `attempt`th time. The member drops the run's other messages.
    Assign {
        /// The topic of the `Deliver` that follows.
        topic: &'a str,
        /// The group.
        group: &'a str,
        /// 1 for a first delivery, 2 for the first redelivery, and so on.
        attempt: u32,
        /// The first offset given to the member.
        first: u64,
        /// How many offsets from `first` on, at least 1.
        count: u32,
    },
    /// `[18, topic, group]`, consumer to broker: asks for a `GroupState`. Any consumer may ask.
    GroupInfo {
        /// The topic.
        topic: &'a str,
        /// The group.
        group: &'a str,
    },
    /// `[19, topic, group, exists, members, floor, next, in_flight, waiting, redelivered,
    /// dead_lettered, lost]`, broker to consumer: the answer to `GroupInfo`.
    GroupState {
        /// The topic.
        topic: &'a str,
        /// The group.
        group: &'a str,
        /// The group's figures; all zero when it does not exist.
        state: GroupStats,
    },
    /// `[20, producer, sequence]`, producer to broker, before any `Publish`: the connection's
    /// publishes come from the idempotent producer `producer`, and the first of them is its
    /// publish number `sequence` (the next ones `sequence + 1`, ...), or, with `sequence` 0, the
    /// number after the highest the broker remembers of `producer`. The broker remembers, per
    /// topic, the last number of each producer it stored, and confirms a publish it already
    /// stored without storing it again. It answers with [`Frame::Identified`].
    Identify {
        /// The producer's identity; see [`crate::validate_producer_id`].
        producer: &'a str,
        /// The producer's number of the connection's first publish; 0 starts a new session.
        sequence: u64,
    },
    /// `[21, producer, sequence]`, broker to producer: the answer to `Identify`, the number of
    /// the connection's first publish.
    Identified {
        /// The producer's identity.
        producer: &'a str,
        /// The number of the connection's first publish, at least 1.
        sequence: u64,
    },
}

/// A consumer group's figures, as `GroupState` carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupStats {
    /// The group exists (it is created by its first member and lasts as long as its topic).
    pub exists: bool,
    /// Members joined now.
    pub members: u32,
    /// Every offset below this one is done: acknowledged, dead-lettered or lost.
    pub floor: u64,
    /// The first offset the group has not given out yet.
    pub next: u64,
    /// Messages members hold unacknowledged.
    pub in_flight: u64,
    /// Messages waiting to be given out again (naked, expired, or left by a member).
    pub waiting: u64,
    /// Deliveries after the first, since the group was created.
    pub redelivered: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Messages retention removed before the group was done with them.
    pub lost: u64,
}

/// The `kind` numbers of [`Frame`] variants, the first element of every frame array.
pub mod kind {
    #![allow(missing_docs)]
    pub const HELLO: u8 = 1;
    pub const WELCOME: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const SUBSCRIBE: u8 = 5;
    pub const SUBSCRIBED: u8 = 6;
    pub const UNSUBSCRIBE: u8 = 7;
    pub const DELIVER: u8 = 8;
    pub const GAP: u8 = 9;
    pub const ERROR: u8 = 10;
    pub const PING: u8 = 11;
    pub const PONG: u8 = 12;
    pub const JOIN: u8 = 13;
    pub const JOINED: u8 = 14;
    pub const LEAVE: u8 = 15;
    pub const ACK: u8 = 16;
    pub const ASSIGN: u8 = 17;
    pub const GROUP_INFO: u8 = 18;
    pub const GROUP_STATE: u8 = 19;
    pub const IDENTIFY: u8 = 20;
    pub const IDENTIFIED: u8 = 21;
    /// The highest kind this version defines; higher ones are unknown.
    pub const LAST: u8 = IDENTIFIED;
}

impl<'a> Frame<'a> {
    /// A `Publish` of one message without headers.
    pub fn publish(topic: &'a str, data: &'a [u8]) -> Self {
        Frame::Publish {
            topic,
            batch: Batch::one(data),
        }
    }

    /// This frame's `kind` number.
    pub fn kind(&self) -> u8 {
        match self {
            Frame::Hello { .. } => kind::HELLO,
            Frame::Welcome { .. } => kind::WELCOME,
            Frame::Publish { .. } => kind::PUBLISH,
            Frame::Confirm { .. } => kind::CONFIRM,
            Frame::Subscribe { .. } => kind::SUBSCRIBE,
            Frame::Subscribed { .. } => kind::SUBSCRIBED,
            Frame::Unsubscribe { .. } => kind::UNSUBSCRIBE,
            Frame::Deliver { .. } => kind::DELIVER,
            Frame::Gap { .. } => kind::GAP,
            Frame::Error { .. } => kind::ERROR,
            Frame::Ping => kind::PING,
            Frame::Pong => kind::PONG,
            Frame::Join { .. } => kind::JOIN,
            Frame::Joined { .. } => kind::JOINED,
            Frame::Leave { .. } => kind::LEAVE,
            Frame::Ack { .. } => kind::ACK,
            Frame::Assign { .. } => kind::ASSIGN,
            Frame::GroupInfo { .. } => kind::GROUP_INFO,
            Frame::GroupState { .. } => kind::GROUP_STATE,
            Frame::Identify { .. } => kind::IDENTIFY,
            Frame::Identified { .. } => kind::IDENTIFIED,
        }
    }

    /// The frame's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Welcome { .. } => "Welcome",
            Frame::Publish { .. } => "Publish",
            Frame::Confirm { .. } => "Confirm",
            Frame::Subscribe { .. } => "Subscribe",
            Frame::Subscribed { .. } => "Subscribed",
            Frame::Unsubscribe { .. } => "Unsubscribe",
            Frame::Deliver { .. } => "Deliver",
            Frame::Gap { .. } => "Gap",
            Frame::Error { .. } => "Error",
            Frame::Ping => "Ping",
            Frame::Pong => "Pong",
            Frame::Join { .. } => "Join",
            Frame::Joined { .. } => "Joined",
            Frame::Leave { .. } => "Leave",
            Frame::Ack { .. } => "Ack",
            Frame::Assign { .. } => "Assign",
            Frame::GroupInfo { .. } => "GroupInfo",
            Frame::GroupState { .. } => "GroupState",
            Frame::Identify { .. } => "Identify",
            Frame::Identified { .. } => "Identified",
        }
    }
}
