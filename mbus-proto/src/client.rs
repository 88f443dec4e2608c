//! The client side of a connection, without I/O: the handshake, the inbound frame buffer, and
//! the reactions to `Ping`, `Pong` and `Error`, for any transport.
//!
//! A [`ClientProtocol`] queues the bytes to send in [`ClientProtocol::outbound`] and is handed
//! the bytes that arrive through [`ClientProtocol::read_space`] and
//! [`ClientProtocol::filled`]; [`ClientProtocol::poll`] then yields what the application must
//! see. A blocking client over `TcpStream` and an async one over any runtime drive it alike.
//!
//! ```
//! use mbus_proto::client::{ClientProtocol, Incoming};
//! use mbus_proto::{Frame, Role, PROTOCOL_VERSION};
//!
//! let mut client = ClientProtocol::new(Role::Consumer, None);
//! let hello = client.outbound().to_vec(); // the transport writes these bytes
//! client.sent(hello.len());
//! let welcome = Frame::Welcome { version: PROTOCOL_VERSION, max_frame: 1 << 20, idle_timeout: 60_000 }
//!     .to_bytes();
//! client.read_space()[..welcome.len()].copy_from_slice(&welcome);
//! client.filled(welcome.len());
//! assert_eq!(client.poll().unwrap(), None);
//! assert!(client.is_open());
//! ```

mod inbound;

use crate::{
    Batch, DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame, GroupStats, PROTOCOL_VERSION, Role,
};
use inbound::Inbound;
pub use inbound::Span;

/// What a delivery may carry beyond the publish it repeats (its offset and time), so that the
/// largest message the broker accepts is also one it can deliver.
const DELIVER_OVERHEAD: u32 = 64;

/// Where a batch of a delivery lies in the inbound buffer; [`ClientProtocol::batch`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    count: usize,
    span: Span,
    one: bool,
}

impl BatchSpan {
    /// How many messages the batch holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a batch holds at least one message.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A frame the application must see, its strings and payloads as [`Span`]s of the inbound
/// buffer, read with [`ClientProtocol::text`] and [`ClientProtocol::bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// The broker has stored the producer's first `count` messages.
    Confirm {
        /// Messages stored so far, cumulative.
        count: u64,
    },
    /// The broker's answer to `Identify`: the number of the connection's first publish.
    Identified {
        /// The number, at least 1.
        sequence: u64,
    },
    /// The broker took a subscription; delivery starts at `offset`.
    Subscribed {
        /// The topic.
        topic: Span,
        /// Where delivery starts.
        offset: u64,
        /// The topic's oldest offset at that moment.
        first: u64,
        /// The offset of the topic's next message at that moment.
        next: u64,
    },
    /// A run of messages of a subscribed topic.
    Deliver {
        /// The topic.
        topic: Span,
        /// The offset of the batch's first message.
        offset: u64,
        /// The time of the batch's first message, in milliseconds since the Unix epoch.
        time: u64,
        /// The messages.
        batch: BatchSpan,
    },
    /// Offsets `from..to` of a topic are lost to this consumer; delivery goes on at `to`.
    Gap {
        /// The topic.
        topic: Span,
        /// The first missed offset.
        from: u64,
        /// The next offset delivered.
        to: u64,
    },
    /// The broker took this connection into a consumer group.
    Joined {
        /// The topic.
        topic: Span,
        /// The group.
        group: Span,
        /// Every offset below it is done.
        floor: u64,
        /// The first offset the group has not given out.
        next: u64,
        /// The topic's next offset when the member joined.
        end: u64,
        /// The group's settings: ack wait in milliseconds, max deliveries, max unacknowledged.
        ack_wait: u64,
        /// Deliveries before a message is dead-lettered.
        max_deliver: u32,
        /// Messages the group may hold unacknowledged.
        max_ack_pending: u32,
        /// The group's dead-letter topic.
        dead_letter: Span,
    },
    /// The next `Deliver` is this member's for offsets `first..first + count`, for the
    /// `attempt`th time.
    Assign {
        /// The topic.
        topic: Span,
        /// The group.
        group: Span,
        /// 1 for a first delivery.
        attempt: u32,
        /// The first offset given.
        first: u64,
        /// How many offsets.
        count: u32,
    },
    /// The answer to a `GroupInfo`.
    GroupState {
        /// The topic.
        topic: Span,
        /// The group.
        group: Span,
        /// Its figures.
        state: GroupStats,
    },
}

/// Why the broker's side of the conversation cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The broker sent bytes that are not a valid frame.
    #[error("undecodable frame from the broker")]
    Decode(#[from] DecodeError),
    /// The broker sent an `Error` frame and is closing the connection.
    #[error("the broker reported {code:?}: {reason}")]
    Refused {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        reason: String,
    },
    /// The broker sent a frame that has no place on this connection now.
    #[error("unexpected {0} frame from the broker")]
    UnexpectedFrame(&'static str),
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct ClientProtocol {
    role: Role,
    /// The broker's frame limit and idle timeout, once its `Welcome` has arrived.
    welcome: Option<(u32, u64)>,
    inbound: Inbound,
    outbound: Vec<u8>,
}

impl ClientProtocol {
    /// A connection of `role` that has yet to be welcomed; its `Hello`, with `token` if the
    /// broker wants one, is the first thing in [`ClientProtocol::outbound`].
    pub fn new(role: Role, token: Option<&str>) -> Self {
        let mut outbound = Vec::new();
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role,
            token,
        }
        .encode(&mut outbound);
        // A consumer reads bulk deliveries; a producer reads a few confirms.
        let read_size = match role {
            Role::Consumer => 256 << 10,
            Role::Producer => 4 << 10,
        };
        ClientProtocol {
            role,
            welcome: None,
            inbound: Inbound::new(read_size),
            outbound,
        }
    }

    /// True once the broker's `Welcome` has arrived.
    pub fn is_open(&self) -> bool {
        self.welcome.is_some()
    }

    /// The largest frame body the broker accepts, from its `Welcome`; the protocol's default
    /// before it.
    pub fn max_frame(&self) -> u32 {
        self.welcome.map_or(DEFAULT_MAX_FRAME, |(max, _)| max)
    }

    /// The broker's idle timeout in milliseconds, from its `Welcome`: it pings a connection
    /// silent for that long, and closes one silent for twice that.
    pub fn idle_timeout(&self) -> Option<u64> {
        self.welcome.map(|(_, idle)| idle)
    }

    /// Queues `frame` to be sent.
    pub fn send(&mut self, frame: Frame<'_>) {
        frame.encode(&mut self.outbound);
    }

    /// The bytes to send, whole frames, oldest first.
    pub fn outbound(&self) -> &[u8] {
        &self.outbound
    }

    /// The buffer of bytes to send, for a client that encodes frames into it itself.
    pub fn outbound_mut(&mut self) -> &mut Vec<u8> {
        &mut self.outbound
    }

    /// Tells the protocol that the transport took the first `n` bytes of
    /// [`ClientProtocol::outbound`].
    pub fn sent(&mut self, n: usize) {
        self.outbound.drain(..n);
    }

    /// Room for the transport to read into, at least enough for the rest of the frame that has
    /// begun to arrive. Ask for it only after [`ClientProtocol::poll`] returned `None`; spans
    /// handed out before are invalid after this call.
    pub fn read_space(&mut self) -> &mut [u8] {
        self.inbound.space()
    }

    /// Tells the protocol that the transport read `n` bytes into [`ClientProtocol::read_space`].
    pub fn filled(&mut self, n: usize) {
        self.inbound.filled(n);
    }

    /// The next frame the application must see, if a whole one has arrived. A `Welcome`
    /// opens the connection (and this call returns `None` right after it, so that the
    /// handshake ends before anything that followed it is taken), a `Ping` queues a `Pong`, a
    /// `Pong` is dropped, and an `Error` is [`ProtocolError::Refused`]; none of these is handed
    /// out.
    pub fn poll(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        loop {
            // A delivery may be as large as the largest publish plus its offset; the default
            // stays the floor, for a broker that allows clients less.
            let limit = self
                .max_frame()
                .max(DEFAULT_MAX_FRAME)
                .saturating_add(DELIVER_OVERHEAD);
            let Some(len) = self.inbound.frame_len(limit)? else {
                return Ok(None);
            };
            let body = self.inbound.body(len);
            let incoming = match (self.welcome, self.role, Frame::parse(body)?) {
                (_, _, Frame::Error { code, reason }) => {
                    return Err(ProtocolError::Refused {
                        code,
                        reason: reason.to_owned(),
                    });
                }
                (
                    None,
                    _,
                    Frame::Welcome {
                        version,
                        max_frame,
                        idle_timeout,
                    },
                ) => {
                    if version != PROTOCOL_VERSION {
                        return Err(DecodeError::UnsupportedVersion(version).into());
                    }
                    self.welcome = Some((max_frame, idle_timeout));
                    // The handshake is over: what follows is the application's, from the next
                    // call on.
                    self.inbound.consume(len);
                    return Ok(None);
                }
                (None, _, other) => return Err(ProtocolError::UnexpectedFrame(other.name())),
                (Some(_), _, Frame::Ping) => {
                    Frame::Pong.encode(&mut self.outbound);
                    None
                }
                (Some(_), _, Frame::Pong) => None,
                (Some(_), Role::Producer, Frame::Confirm { count }) => {
                    Some(Incoming::Confirm { count })
                }
                (Some(_), Role::Producer, Frame::Identified { sequence, .. }) => {
                    Some(Incoming::Identified { sequence })
                }
                (
                    Some(_),
                    Role::Consumer,
                    Frame::Deliver {
                        topic,
                        offset,
                        time,
                        batch,
                    },
                ) => Some(Incoming::Deliver {
                    topic: self.inbound.span(topic.as_bytes()),
                    offset,
                    time,
                    batch: self.batch_span(batch),
                }),
                (
                    Some(_),
                    Role::Consumer,
                    Frame::Subscribed {
                        topic,
                        offset,
                        first,
                        next,
                    },
                ) => Some(Incoming::Subscribed {
                    topic: self.inbound.span(topic.as_bytes()),
                    offset,
                    first,
                    next,
                }),
                (Some(_), Role::Consumer, Frame::Gap { topic, from, to }) => Some(Incoming::Gap {
                    topic: self.inbound.span(topic.as_bytes()),
                    from,
                    to,
                }),
                (
                    Some(_),
                    Role::Consumer,
                    Frame::Joined {
                        topic,
                        group,
                        floor,
                        next,
                        end,
                        options,
                    },
                ) => Some(Incoming::Joined {
                    topic: self.inbound.span(topic.as_bytes()),
                    group: self.inbound.span(group.as_bytes()),
                    floor,
                    next,
                    end,
                    ack_wait: options.ack_wait,
                    max_deliver: options.max_deliver,
                    max_ack_pending: options.max_ack_pending,
                    // A broker always names it; an empty span (within the frame) if not.
                    dead_letter: self
                        .inbound
                        .span(options.dead_letter.unwrap_or(&topic[..0]).as_bytes()),
                }),
                (
                    Some(_),
                    Role::Consumer,
                    Frame::Assign {
                        topic,
                        group,
                        attempt,
                        first,
                        count,
                    },
                ) => Some(Incoming::Assign {
                    topic: self.inbound.span(topic.as_bytes()),
                    group: self.inbound.span(group.as_bytes()),
                    attempt,
                    first,
                    count,
                }),
                (
                    Some(_),
                    Role::Consumer,
                    Frame::GroupState {
                        topic,
                        group,
                        state,
                    },
                ) => Some(Incoming::GroupState {
                    topic: self.inbound.span(topic.as_bytes()),
                    group: self.inbound.span(group.as_bytes()),
                    state,
                }),
                (Some(_), _, other) => return Err(ProtocolError::UnexpectedFrame(other.name())),
            };
            self.inbound.consume(len);
            if incoming.is_some() {
                return Ok(incoming);
            }
        }
    }

    /// The text at `span`, a topic name from the last frames [`ClientProtocol::poll`] handed
    /// out.
    pub fn text(&self, span: Span) -> &str {
        self.inbound.text(span)
    }

    /// The bytes at `span`, a payload from the last frames [`ClientProtocol::poll`] handed out.
    pub fn bytes(&self, span: Span) -> &[u8] {
        self.inbound.bytes(span)
    }

    /// The batch at `span`, from the last frames [`ClientProtocol::poll`] handed out.
    pub fn batch(&self, span: BatchSpan) -> Batch<'_> {
        Batch::from_parts(span.count, self.inbound.bytes(span.span), span.one)
    }

    /// Where `batch`, a part of the last frames [`ClientProtocol::poll`] handed out or of what
    /// [`ClientProtocol::batch`] lent, lies in the inbound buffer.
    pub fn batch_span(&self, batch: Batch<'_>) -> BatchSpan {
        let (count, bytes, one) = batch.parts();
        BatchSpan {
            count,
            span: self.inbound.span(bytes),
            one,
        }
    }
}
