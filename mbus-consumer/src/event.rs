//! What a consumer hands out: messages, gaps and subscription answers.

use mbus_proto::Headers;

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
    /// One message of a subscribed topic. Each topic's messages come in offset order.
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
