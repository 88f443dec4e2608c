//! The consumer: subscribes over one connection and hands out what the broker delivers.

use std::fmt;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};

use mbus_proto::{
    DEFAULT_MAX_FRAME, DecodeError, Frame, PROTOCOL_VERSION, Role, Start, validate_topic,
};

use crate::event::Pending;
use crate::net::{self, is_disconnect};
use crate::read_buf::ReadBuf;
use crate::{ConsumerError, ConsumerOptions, Event};

/// What a delivery may carry beyond the publish it repeats (its offset), so that the largest
/// message the broker accepts is also one it can deliver.
const DELIVER_OVERHEAD: u32 = 64;

/// A connection to the broker's consumer port.
pub struct Consumer {
    stream: TcpStream,
    inbound: ReadBuf,
    /// The largest frame body accepted from the broker.
    max_frame: u32,
    /// Scratch space for encoding the few frames a consumer sends.
    out: Vec<u8>,
}

impl Consumer {
    /// Connects, says `Hello` and waits for the broker's `Welcome`.
    pub fn connect(
        addr: impl ToSocketAddrs,
        options: &ConsumerOptions,
    ) -> Result<Consumer, ConsumerError> {
        let stream = net::connect(addr, options.connect_timeout)?;
        stream.set_read_timeout(Some(options.connect_timeout))?;
        stream.set_write_timeout(Some(options.connect_timeout))?;
        let mut consumer = Consumer {
            stream,
            inbound: ReadBuf::new(),
            max_frame: DEFAULT_MAX_FRAME,
            out: Vec::new(),
        };
        consumer.send(Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Consumer,
            token: options.auth_token.as_deref(),
        })?;
        // The Welcome states what the broker accepts; what it delivers is as large, plus the
        // offset. The default stays the floor, for a broker that allows consumers less.
        let broker_limit = consumer.welcome()?;
        consumer.max_frame = broker_limit
            .max(DEFAULT_MAX_FRAME)
            .saturating_add(DELIVER_OVERHEAD);
        consumer.stream.set_read_timeout(options.read_timeout)?;
        consumer.stream.set_write_timeout(None)?;
        Ok(consumer)
    }

    /// Returns the broker's frame limit from the `Welcome`.
    fn welcome(&mut self) -> Result<u32, ConsumerError> {
        let len = self.whole_frame(true)?.ok_or(ConsumerError::Timeout)?;
        let welcome = match Frame::parse(self.inbound.body(len))? {
            Frame::Welcome { version, max_frame } if version == PROTOCOL_VERSION => Ok(max_frame),
            Frame::Welcome { version, .. } => Err(DecodeError::UnsupportedVersion(version).into()),
            Frame::Error { code, reason } => Err(ConsumerError::Refused {
                code,
                reason: reason.to_owned(),
            }),
            other => Err(ConsumerError::UnexpectedFrame(other.name())),
        };
        self.inbound.consume(len);
        welcome
    }

    /// Asks the broker to deliver `topic` from `start` on. Its answer, [`Event::Subscribed`] or
    /// an error, comes from [`Consumer::next_event`].
    pub fn subscribe(&mut self, topic: &str, start: Start) -> Result<(), ConsumerError> {
        validate_topic(topic)?;
        self.send(Frame::Subscribe { topic, start })
    }

    /// Asks the broker to stop delivering `topic`. Messages it sent before it read this still
    /// arrive.
    pub fn unsubscribe(&mut self, topic: &str) -> Result<(), ConsumerError> {
        validate_topic(topic)?;
        self.send(Frame::Unsubscribe { topic })
    }

    /// Blocks until the broker sends a message, a gap or a subscription answer, and lends it
    /// out. Gives up with [`ConsumerError::Timeout`] after the read timeout of the options.
    pub fn next_event(&mut self) -> Result<Event<'_>, ConsumerError> {
        self.event(true)?.ok_or(ConsumerError::Timeout)
    }

    /// Like [`Consumer::next_event`] but never waits: `None` when no whole event has arrived.
    ///
    /// A program that buffers its output can flush when this returns `None`, before it blocks
    /// in `next_event`.
    pub fn try_next_event(&mut self) -> Result<Option<Event<'_>>, ConsumerError> {
        self.event(false)
    }

    /// The next event, or `None` when none arrived in the time allowed: none without `wait`,
    /// the read timeout with it.
    fn event(&mut self, wait: bool) -> Result<Option<Event<'_>>, ConsumerError> {
        // The loop yields positions in the buffer, not the event: a borrow returned from inside
        // a loop that goes on to read the buffer is more than today's borrow checker accepts,
        // and parsing the frame again after the loop would double the cost of a delivery.
        let pending = loop {
            let Some(len) = self.whole_frame(wait)? else {
                return Ok(None);
            };
            let pending = match Frame::parse(self.inbound.body(len))? {
                Frame::Deliver {
                    topic,
                    offset,
                    data,
                } => Some(Pending::Message {
                    topic: self.inbound.span(topic.as_bytes()),
                    offset,
                    data: self.inbound.span(data),
                }),
                Frame::Gap { topic, from, to } => Some(Pending::Gap {
                    topic: self.inbound.span(topic.as_bytes()),
                    from,
                    to,
                }),
                Frame::Subscribed { topic, offset } => Some(Pending::Subscribed {
                    topic: self.inbound.span(topic.as_bytes()),
                    offset,
                }),
                Frame::Ping => {
                    self.send(Frame::Pong)?;
                    None
                }
                Frame::Pong => None,
                Frame::Error { code, reason } => {
                    return Err(ConsumerError::Refused {
                        code,
                        reason: reason.to_owned(),
                    });
                }
                other => return Err(ConsumerError::UnexpectedFrame(other.name())),
            };
            self.inbound.consume(len);
            if let Some(pending) = pending {
                break pending;
            }
        };
        Ok(Some(pending.resolve(&self.inbound)))
    }

    /// Reads until a whole frame starts the unread bytes and returns its length, or `None` when
    /// the time allowed ran out first.
    fn whole_frame(&mut self, wait: bool) -> Result<Option<usize>, ConsumerError> {
        loop {
            if let Some(len) = self.inbound.frame_len(self.max_frame)? {
                return Ok(Some(len));
            }
            if !self.read_more(wait)? {
                return Ok(None);
            }
        }
    }

    /// Reads once; `false` when nothing arrived in the time allowed.
    fn read_more(&mut self, wait: bool) -> Result<bool, ConsumerError> {
        if !wait {
            self.stream.set_nonblocking(true)?;
        }
        let read = loop {
            match self.inbound.read_from(&mut self.stream) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                read => break read,
            }
        };
        if !wait {
            self.stream.set_nonblocking(false)?;
        }
        match read {
            Ok(0) => Err(ConsumerError::Closed),
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(io_error(e)),
        }
    }

    fn send(&mut self, frame: Frame<'_>) -> Result<(), ConsumerError> {
        self.out.clear();
        frame.encode(&mut self.out);
        self.stream.write_all(&self.out).map_err(io_error)
    }
}

fn io_error(e: io::Error) -> ConsumerError {
    if is_disconnect(&e) {
        ConsumerError::Closed
    } else {
        ConsumerError::Io(e)
    }
}

// By hand: the buffers are noise in a log.
impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("peer", &self.stream.peer_addr().ok())
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}
