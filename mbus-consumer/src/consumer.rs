//! The consumer: subscribes over one connection and hands out what the broker delivers.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbus_client::Connection;
use mbus_proto::client::{BatchSpan, Incoming, Span};
use mbus_proto::{Frame, Role, Start, validate_topic};

use mbus_proto::ErrorCode;

use crate::{ConsumerError, ConsumerOptions, Event};

/// A connection to the broker's consumer port.
///
/// With [`ConsumerOptions::reconnect`] set, a lost connection is opened again and every topic
/// subscribed again from the offset after the last message handed out, so that a program sees
/// each message once across broker restarts (of a broker with a data directory: one without
/// starts its topics again at offset 0, and the consumer waits for the offset it left at).
#[derive(Debug)]
pub struct Consumer {
    conn: Connection,
    addrs: Vec<SocketAddr>,
    options: ConsumerOptions,
    /// Each subscription and where it goes on after a reconnect.
    subs: Vec<Subscription>,
    /// What is left to hand out of the delivery last read.
    pending: Option<Pending>,
}

/// A topic subscribed to, and where to subscribe it again.
#[derive(Debug)]
struct Subscription {
    topic: String,
    resume: Start,
    /// The offset of the next message to hand out, once the broker said where the subscription
    /// starts: messages of a delivery before it (a batch the start falls inside, or what was
    /// handed out before a reconnect) are dropped.
    next: Option<u64>,
}

/// The messages of a delivery not yet handed out, as spans of the read buffer.
#[derive(Debug, Clone, Copy)]
struct Pending {
    topic: Span,
    /// The offset of the first message of `rest`.
    offset: u64,
    /// The delivery's base time.
    time: u64,
    rest: BatchSpan,
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
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        Ok(Consumer {
            conn: Connection::open(&addrs[..], Role::Consumer, &options.connect)?,
            addrs,
            options: options.clone(),
            subs: Vec::new(),
            pending: None,
        })
    }

    /// Asks the broker to deliver `topic` from `start` on. Its answer, [`Event::Subscribed`] or
    /// an error, comes from [`Consumer::next_event`].
    pub fn subscribe(&mut self, topic: &str, start: Start) -> Result<(), ConsumerError> {
        validate_topic(topic)?;
        match self.subs.iter_mut().find(|s| s.topic == topic) {
            Some(sub) => sub.resume = start,
            None => self.subs.push(Subscription {
                topic: topic.to_owned(),
                resume: start,
                next: None,
            }),
        }
        self.send(Frame::Subscribe { topic, start })
    }

    /// Asks the broker to stop delivering `topic`. Messages it sent before it read this still
    /// arrive.
    pub fn unsubscribe(&mut self, topic: &str) -> Result<(), ConsumerError> {
        validate_topic(topic)?;
        self.subs.retain(|s| s.topic != topic);
        self.send(Frame::Unsubscribe { topic })
    }

    /// Blocks until the broker sends a message, a gap or a subscription answer, and lends it
    /// out. Gives up with [`ConsumerError::Timeout`] after the read timeout of the options.
    pub fn next_event(&mut self) -> Result<Event<'_>, ConsumerError> {
        let deadline = self
            .options
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
        loop {
            if let Some(pending) = self.pending.take() {
                if let Some(message) = self.next_message(pending) {
                    return Ok(Some(message_event(self.conn.protocol_ref(), message)));
                }
                continue;
            }
            let incoming = match self.poll(wait) {
                Ok(Some(incoming)) => incoming,
                Ok(None) => return Ok(None),
                Err(e) if self.options.reconnect.is_some() && is_lost(&e) => {
                    self.reconnect(e)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (topic, next) = match incoming {
                Incoming::Deliver {
                    topic,
                    offset,
                    time,
                    batch,
                } => {
                    self.pending = Some(Pending {
                        topic,
                        offset,
                        time,
                        rest: batch,
                    });
                    continue;
                }
                Incoming::Gap { topic, to, .. } => (topic, to),
                Incoming::Subscribed { topic, offset, .. } => (topic, offset),
                _ => return Err(ConsumerError::UnexpectedFrame("Confirm")),
            };
            // Where the topic goes on, after a reconnect too: past what is handed out now.
            let protocol = self.conn.protocol_ref();
            if let Some(sub) = self
                .subs
                .iter_mut()
                .find(|s| s.topic == protocol.text(topic))
            {
                sub.resume = Start::Offset(next);
                sub.next = Some(next);
            }
            return Ok(Some(match incoming {
                Incoming::Gap { topic, from, to } => Event::Gap {
                    topic: protocol.text(topic),
                    from,
                    to,
                },
                Incoming::Subscribed {
                    topic,
                    offset,
                    first,
                    next,
                } => Event::Subscribed {
                    topic: protocol.text(topic),
                    offset,
                    first,
                    next,
                },
                _ => unreachable!("only gaps and subscriptions are left"),
            }));
        }
    }

    /// Takes the first message of `pending`, keeping the rest for the next call; `None` when
    /// that message is one the subscription already passed (before its start, or handed out
    /// before a reconnect), which is dropped.
    fn next_message(&mut self, pending: Pending) -> Option<(Span, u64, u64, BatchSpan)> {
        let protocol = self.conn.protocol_ref();
        let batch = protocol.batch(pending.rest);
        let (_, rest) = batch.split_first();
        self.pending = rest.map(|rest| Pending {
            offset: pending.offset + 1,
            rest: protocol.batch_span(rest),
            ..pending
        });
        let topic = protocol.text(pending.topic);
        let offset = pending.offset;
        if let Some(sub) = self.subs.iter_mut().find(|s| s.topic == topic) {
            if sub.next.is_some_and(|next| offset < next) {
                return None;
            }
            sub.next = Some(offset + 1);
            sub.resume = Start::Offset(offset + 1);
        }
        Some((pending.topic, offset, pending.time, pending.rest))
    }

    /// The next incoming frame, reading as `wait` allows; `None` when none came in time.
    fn poll(&mut self, wait: Wait) -> Result<Option<Incoming>, ConsumerError> {
        loop {
            let polled = self.conn.poll()?;
            // Pongs the protocol queued for the broker's Pings go out before anything waits.
            self.conn.write_all()?;
            if polled.is_some() {
                return Ok(polled);
            }
            let read = match wait {
                Wait::No => self.conn.try_read()?,
                Wait::Until(deadline) => self.conn.read_until(deadline)?,
            };
            if !read {
                return Ok(None);
            }
        }
    }

    /// Opens the connection again after `lost`, as [`ConsumerOptions::reconnect`] says, and
    /// subscribes every topic again where it left off. Returns the last error once the attempts
    /// are used up, or at once an error that another attempt would not mend.
    fn reconnect(&mut self, lost: ConsumerError) -> Result<(), ConsumerError> {
        let policy = self.options.reconnect.expect("reconnect is on");
        let mut wait = policy.backoff;
        let mut last = lost;
        for attempt in 1..=policy.max_attempts {
            log::warn!(
                "lost the broker ({last}); connecting again in {wait:?}, attempt {attempt} of {}",
                policy.max_attempts
            );
            std::thread::sleep(wait);
            wait = (wait * 2).min(policy.max_backoff);
            match self.resubscribe() {
                Ok(()) => {
                    log::warn!("connected again; {} topics resumed", self.subs.len());
                    return Ok(());
                }
                Err(e) if is_lost(&e) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn resubscribe(&mut self) -> Result<(), ConsumerError> {
        self.conn = Connection::open(&self.addrs[..], Role::Consumer, &self.options.connect)?;
        for sub in &self.subs {
            self.conn.protocol().send(Frame::Subscribe {
                topic: &sub.topic,
                start: sub.resume,
            });
        }
        self.conn.write_all()
    }

    fn send(&mut self, frame: Frame<'_>) -> Result<(), ConsumerError> {
        self.conn.protocol().send(frame);
        self.conn.write_all()
    }
}

/// The event of the first message of `batch`, a message of `topic` at `offset` in a delivery
/// of base time `time`.
fn message_event(
    protocol: &mbus_proto::client::ClientProtocol,
    (topic, offset, time, batch): (Span, u64, u64, BatchSpan),
) -> Event<'_> {
    let (message, _) = protocol.batch(batch).split_first();
    Event::Message {
        topic: protocol.text(topic),
        offset,
        time: time + u64::from(message.delta),
        headers: message.headers,
        data: message.data,
    }
}

/// Whether `e` means the broker went away, or is going, so that connecting again may work:
/// the connection failed or closed, the broker is shutting down or full. A refusal of what the
/// consumer asked (a bad topic, a wrong token) is not: asking again gets the same answer.
fn is_lost(e: &ConsumerError) -> bool {
    match e {
        ConsumerError::Io(_) | ConsumerError::Closed => true,
        ConsumerError::Refused { code, .. } => {
            matches!(
                code,
                ErrorCode::ShuttingDown | ErrorCode::TooManyConnections
            )
        }
        _ => false,
    }
}
