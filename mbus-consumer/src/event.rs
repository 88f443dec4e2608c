//! What a consumer hands out: messages, gaps and subscription answers.

use mbus_proto::{GroupStats, Headers};

/// One thing the broker told the consumer, borrowed from the consumer's read buffer.
///
/// The borrow ends at the next call on the consumer; copy what must live longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The broker took a subscription; its first message has `offset` (or a later one, after a
    /// [`Event::Gap`]).
    Subscribed {
        /// The topic subscribed to.
        topic: &'a str,
        /// Where delivery starts.
        offset: u64,
        /// The topic's oldest offset when it subscribed.
        first: u64,
        /// The offset the topic's next message was to get when it subscribed: a consumer that
        /// wants what the topic held then stops before it.
        next: u64,
    },
    /// One message of a subscribed topic, or given to this consumer by a group it joined. A
    /// subscription's messages come in offset order; a group's come in offset order too, except
    /// for redeliveries, which come first.
    Message {
        /// The topic it was published to.
        topic: &'a str,
        /// Its position in the topic: 0, 1, 2, ...
        offset: u64,
        /// When the broker stored it, in milliseconds since the Unix epoch.
        time: u64,
        /// The headers the producer gave it.
        headers: Headers<'a>,
        /// The payload.
        data: &'a [u8],
        /// The group that gave it to this consumer, which waits for its ack
        /// ([`crate::Consumer::ack`]); `None` for a subscription's message.
        group: Option<&'a str>,
        /// How many times the group delivered it, this time included; 1 for a subscription's.
        attempt: u32,
    },
    /// The broker took the consumer into a group ([`crate::Consumer::join`]).
    Joined {
        /// The topic.
        topic: &'a str,
        /// The group.
        group: &'a str,
        /// Every offset below it is done.
        floor: u64,
        /// The first offset the group has not given out yet.
        next: u64,
        /// The offset the topic's next message was to get when the consumer joined: a member
        /// that wants what the topic held then is done once the group gave out that much.
        end: u64,
        /// The group's ack wait, in milliseconds.
        ack_wait: u64,
        /// Deliveries of a message before it is dead-lettered.
        max_deliver: u32,
        /// Messages the group may hold unacknowledged.
        max_ack_pending: u32,
        /// Where the group's dead letters go.
        dead_letter: &'a str,
    },
    /// The answer to [`crate::Consumer::group_info`].
    GroupState {
        /// The topic.
        topic: &'a str,
        /// The group.
        group: &'a str,
        /// Its figures.
        state: GroupStats,
    },
    /// Messages `from..to` (end excluded) of `topic` were removed by retention before this
    /// consumer read them; delivery goes on at `to`.
    Gap {
        /// The topic that lost messages.
        topic: &'a str,
        /// The first missed offset.
        from: u64,
        /// The next offset that will be delivered.
        to: u64,
    },
}
