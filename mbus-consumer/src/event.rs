//! What a consumer hands out: messages, gaps and subscription answers.

use std::ops::Range;

use crate::read_buf::ReadBuf;

/// One thing the broker told the consumer, borrowed from the consumer's read buffer.
///
/// The borrow ends at the next call on the consumer; copy what must live longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// An event as positions in the read buffer, so that it holds no borrow until it is handed out.
pub(crate) enum Pending {
    Subscribed {
        topic: Range<usize>,
        offset: u64,
    },
    Message {
        topic: Range<usize>,
        offset: u64,
        data: Range<usize>,
    },
    Gap {
        topic: Range<usize>,
        from: u64,
        to: u64,
    },
}

impl Pending {
    /// The event, borrowed from the buffer the positions were taken in.
    pub(crate) fn resolve(self, buf: &ReadBuf) -> Event<'_> {
        match self {
            Pending::Subscribed { topic, offset } => Event::Subscribed {
                topic: buf.text(topic),
                offset,
            },
            Pending::Message {
                topic,
                offset,
                data,
            } => Event::Message {
                topic: buf.text(topic),
                offset,
                data: buf.bytes(data),
            },
            Pending::Gap { topic, from, to } => Event::Gap {
                topic: buf.text(topic),
                from,
                to,
            },
        }
    }
}
