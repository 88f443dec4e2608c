//! What a consumer hands out: messages, gaps and subscription answers.

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
    },
    /// One message of a subscribed topic. Each topic's messages come in offset order.
    Message {
        /// The topic it was published to.
        topic: &'a str,
        /// Its position in the topic: 0, 1, 2, ...
        offset: u64,
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
