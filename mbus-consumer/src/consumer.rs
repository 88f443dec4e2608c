//! The consumer: subscribes over one connection and hands out what the broker delivers.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use mbus_client::Connection;
use mbus_proto::client::Incoming;
use mbus_proto::{Frame, Role, Start, validate_topic};

use crate::{ConsumerError, ConsumerOptions, Event};

/// A connection to the broker's consumer port.
#[derive(Debug)]
pub struct Consumer {
    conn: Connection,
    read_timeout: Option<Duration>,
}

/// How long a call may wait for the broker.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all.
    No,
    /// Until then, or for ever.
    Until(Option<Instant>),
}

impl Consumer {
    /// Connects, says `Hello` and waits for the broker's `Welcome`.
    pub fn connect(
        addr: impl ToSocketAddrs,
        options: &ConsumerOptions,
    ) -> Result<Consumer, ConsumerError> {
        Ok(Consumer {
            conn: Connection::open(addr, Role::Consumer, &options.connect)?,
            read_timeout: options.read_timeout,
        })
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
        let deadline = self
            .read_timeout
            .and_then(|t| Instant::now().checked_add(t));
        self.event(Wait::Until(deadline))?
            .ok_or(ConsumerError::Timeout)
    }

    /// As [`Consumer::next_event`], waiting at most `timeout` whatever the options say.
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Result<Event<'_>, ConsumerError> {
        let deadline = Instant::now().checked_add(timeout);
        self.event(Wait::Until(deadline))?
            .ok_or(ConsumerError::Timeout)
    }

    /// Like [`Consumer::next_event`] but never waits: `None` when no whole event has arrived.
    ///
    /// A program that buffers its output can flush when this returns `None`, before it blocks
    /// in `next_event`.
    pub fn try_next_event(&mut self) -> Result<Option<Event<'_>>, ConsumerError> {
        self.event(Wait::No)
    }

    /// The next event, or `None` when none arrived in the time allowed.
    fn event(&mut self, wait: Wait) -> Result<Option<Event<'_>>, ConsumerError> {
        let incoming = loop {
            let polled = self.conn.poll()?;
            // Pongs the protocol queued for the broker's Pings go out before anything waits.
            self.conn.write_all()?;
            if let Some(incoming) = polled {
                break incoming;
            }
            let read = match wait {
                Wait::No => self.conn.try_read()?,
                Wait::Until(deadline) => self.conn.read_until(deadline)?,
            };
            if !read {
                return Ok(None);
            }
        };
        let protocol = self.conn.protocol();
        Ok(Some(match incoming {
            Incoming::Deliver {
                topic,
                offset,
                data,
            } => Event::Message {
                topic: protocol.text(topic),
                offset,
                data: protocol.bytes(data),
            },
            Incoming::Gap { topic, from, to } => Event::Gap {
                topic: protocol.text(topic),
                from,
                to,
            },
            Incoming::Subscribed { topic, offset } => Event::Subscribed {
                topic: protocol.text(topic),
                offset,
            },
            _ => return Err(ConsumerError::UnexpectedFrame("Confirm")),
        }))
    }

    fn send(&mut self, frame: Frame<'_>) -> Result<(), ConsumerError> {
        self.conn.protocol().send(frame);
        self.conn.write_all()
    }
}
