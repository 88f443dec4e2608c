//! The consumer: subscribes over one connection and hands out what the broker delivers.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbus_client::{Connection, is_lost};
use mbus_proto::client::{BatchSpan, Incoming, Span};
use mbus_proto::{
    AckAction, AckRanges, Frame, GroupOptions, Role, Start, validate_group, validate_topic,
};

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
    /// Each group joined, and its acks not yet sent.
    groups: Vec<Membership>,
    /// The group and offsets the next `Deliver` gives this consumer, from the `Assign` before it.
    assigned: Option<Assigned>,
}

/// A group joined, and how to join it again after a reconnect.
#[derive(Debug)]
struct Membership {
    topic: String,
    group: String,
    start: Start,
    credit: u32,
    ack_wait: u64,
    max_deliver: u32,
    max_ack_pending: u32,
    dead_letter: Option<String>,
    /// Offsets acknowledged and not yet sent, as `AckRanges` bytes.
    acks: Vec<u8>,
}

/// What an `Assign` gave: offsets `first..end` of the next run, for the `attempt`th time, by
/// group `groups[group]`.
#[derive(Debug, Clone, Copy)]
struct Assigned {
    group: usize,
    attempt: u32,
    first: u64,
    end: u64,
}

/// A message to hand out: its topic, offset, base time, and the batch it starts.
type MessageAt = (Span, u64, u64, BatchSpan);

/// Most acks held before they are sent whatever else happens: a consumer that never waits for
/// the broker still acks at least this often.
const ACK_BATCH: usize = 1024;

/// A topic subscribed to, and where to subscribe it again.
#[derive(Debug)]
struct Subscription {
    topic: String,
    resume: Start,
    /// The offset of the next message to hand out, once the broker said where the subscription
    /// starts: messages of a delivery before it (a batch the start falls inside, or what was
    /// handed out before a reconnect) are dropped.
    next: Option<u64>,
    /// Subscribed again after a reconnect, its `Subscribed` not yet read.
    resumed: bool,
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
    /// The group assignment the delivery answers, if it does.
    assigned: Option<Assigned>,
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
            groups: Vec::new(),
            assigned: None,
        })
    }

    /// Joins consumer group `group` of `topic`, holding at most `credit` unacknowledged
    /// messages; the first member creates the group at `start` with `options` (zeros ask for
    /// the broker's defaults). The answer, [`Event::Joined`] or an error, comes from
    /// [`Consumer::next_event`]; the group's messages then come as [`Event::Message`]s naming
    /// it, each to be settled with [`Consumer::ack`], [`Consumer::nak`],
    /// [`Consumer::in_progress`] or [`Consumer::term`]. With reconnect on, the consumer joins
    /// again after a lost connection, and what it had not acknowledged is delivered again.
    pub fn join(
        &mut self,
        topic: &str,
        group: &str,
        start: Start,
        credit: u32,
        options: GroupOptions<'_>,
    ) -> Result<(), ConsumerError> {
        validate_topic(topic)?;
        validate_group(group).map_err(ConsumerError::InvalidGroup)?;
        let membership = Membership {
            topic: topic.to_owned(),
            group: group.to_owned(),
            start,
            credit,
            ack_wait: options.ack_wait,
            max_deliver: options.max_deliver,
            max_ack_pending: options.max_ack_pending,
            dead_letter: options.dead_letter.map(str::to_owned),
            acks: Vec::new(),
        };
        match self.groups.iter_mut().find(|m| m.topic == topic) {
            Some(m) => m.credit = credit,
            None => self.groups.push(membership),
        }
        self.send(Frame::Join {
            topic,
            group,
            start,
            credit,
            options,
        })
    }

    /// Leaves group `group` of `topic`, sending the acks held for it first; what this consumer
    /// held unacknowledged goes to the group's other members.
    pub fn leave(&mut self, topic: &str, group: &str) -> Result<(), ConsumerError> {
        self.flush_acks()?;
        self.groups
            .retain(|m| !(m.topic == topic && m.group == group));
        self.send(Frame::Leave { topic, group })
    }

    /// Acknowledges the message at `offset` that group `group` of `topic` gave this consumer:
    /// it is done. Acks are held and sent many to a frame, before the consumer next waits for
    /// the broker (or [`Consumer::flush_acks`]), so acking each message costs no round trip.
    pub fn ack(&mut self, topic: &str, group: &str, offset: u64) -> Result<(), ConsumerError> {
        let Some(m) = self
            .groups
            .iter_mut()
            .find(|m| m.topic == topic && m.group == group)
        else {
            return Err(ConsumerError::NotMember(format!("{group} of {topic}")));
        };
        AckRanges::push(&mut m.acks, offset);
        if m.acks.len() >= ACK_BATCH * mbus_proto::group::ACK_RANGE_LEN {
            self.flush_acks()?;
        }
        Ok(())
    }

    /// Gives the message at `offset` back to the group, to be delivered again after `delay`.
    pub fn nak(
        &mut self,
        topic: &str,
        group: &str,
        offset: u64,
        delay: Duration,
    ) -> Result<(), ConsumerError> {
        let delay = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.settle(topic, group, AckAction::Nak, delay, offset)
    }

    /// Says the message at `offset` is still being worked on: its ack wait starts again.
    pub fn in_progress(
        &mut self,
        topic: &str,
        group: &str,
        offset: u64,
    ) -> Result<(), ConsumerError> {
        self.settle(topic, group, AckAction::Progress, 0, offset)
    }

    /// Says the message at `offset` must never be delivered again: the broker sends it to the
    /// group's dead-letter topic.
    pub fn term(&mut self, topic: &str, group: &str, offset: u64) -> Result<(), ConsumerError> {
        self.settle(topic, group, AckAction::Term, 0, offset)
    }

    /// Asks the broker for the figures of group `group` of `topic`; the answer comes as
    /// [`Event::GroupState`].
    pub fn group_info(&mut self, topic: &str, group: &str) -> Result<(), ConsumerError> {
        validate_topic(topic)?;
        validate_group(group).map_err(ConsumerError::InvalidGroup)?;
        self.send(Frame::GroupInfo { topic, group })
    }

    /// Sends the acks held, one frame per group.
    pub fn flush_acks(&mut self) -> Result<(), ConsumerError> {
        if self.queue_acks() {
            self.conn.write_all()?;
        }
        Ok(())
    }

    /// Queues an `Ack` frame for each group's held acks; true if there were any.
    fn queue_acks(&mut self) -> bool {
        let mut any = false;
        for m in &mut self.groups {
            if m.acks.is_empty() {
                continue;
            }
            let ranges = AckRanges::new(&m.acks).expect("acks pushed one by one are valid");
            self.conn.protocol().send(Frame::Ack {
                topic: &m.topic,
                group: &m.group,
                action: AckAction::Ack,
                delay: 0,
                ranges,
            });
            m.acks.clear();
            any = true;
        }
        any
    }

    /// Sends one action of a member on one message, after the acks held (in order).
    fn settle(
        &mut self,
        topic: &str,
        group: &str,
        action: AckAction,
        delay: u64,
        offset: u64,
    ) -> Result<(), ConsumerError> {
        if !self
            .groups
            .iter()
            .any(|m| m.topic == topic && m.group == group)
        {
            return Err(ConsumerError::NotMember(format!("{group} of {topic}")));
        }
        self.queue_acks();
        let mut ranges = Vec::new();
        AckRanges::push(&mut ranges, offset);
        self.send(Frame::Ack {
            topic,
            group,
            action,
            delay,
            ranges: AckRanges::new(&ranges).expect("one offset"),
        })
    }

    /// Asks the broker to deliver `topic` from `start` on. Its answer, [`Event::Subscribed`] or
    /// an error, comes from [`Consumer::next_event`].
    pub fn subscribe(&mut self, topic: &str, start: Start) -> Result<(), ConsumerError> {
        validate_topic(topic)?;
        match self.subs.iter_mut().find(|s| s.topic == topic) {
            Some(sub) => {
                sub.resume = start;
                sub.resumed = false;
            }
            None => self.subs.push(Subscription {
                topic: topic.to_owned(),
                resume: start,
                next: None,
                resumed: false,
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
                if let Some((message, group)) = self.next_message(pending) {
                    let group = group.map(|a| (self.groups[a.group].group.as_str(), a.attempt));
                    return Ok(Some(message_event(
                        self.conn.protocol_ref(),
                        message,
                        group,
                    )));
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
                        assigned: self.assigned.take(),
                    });
                    continue;
                }
                Incoming::Assign {
                    topic,
                    attempt,
                    first,
                    count,
                    ..
                } => {
                    let protocol = self.conn.protocol_ref();
                    let topic = protocol.text(topic);
                    let group = self.groups.iter().position(|m| m.topic == topic);
                    // A group this consumer left: its messages are dropped, and go to others.
                    self.assigned = group.map(|group| Assigned {
                        group,
                        attempt,
                        first,
                        end: first + u64::from(count),
                    });
                    continue;
                }
                Incoming::Joined {
                    topic,
                    group,
                    floor,
                    next,
                    end,
                    ack_wait,
                    max_deliver,
                    max_ack_pending,
                    dead_letter,
                } => {
                    let protocol = self.conn.protocol_ref();
                    return Ok(Some(Event::Joined {
                        topic: protocol.text(topic),
                        group: protocol.text(group),
                        floor,
                        next,
                        end,
                        ack_wait,
                        max_deliver,
                        max_ack_pending,
                        dead_letter: protocol.text(dead_letter),
                    }));
                }
                Incoming::GroupState {
                    topic,
                    group,
                    state,
                } => {
                    let protocol = self.conn.protocol_ref();
                    return Ok(Some(Event::GroupState {
                        topic: protocol.text(topic),
                        group: protocol.text(group),
                        state,
                    }));
                }
                Incoming::Gap { topic, to, .. } => (topic, to),
                Incoming::Subscribed {
                    topic,
                    offset,
                    first,
                    next,
                } => {
                    if self.restarted_empty(topic, offset, first, next)? {
                        continue;
                    }
                    (topic, offset)
                }
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
    fn next_message(&mut self, pending: Pending) -> Option<(MessageAt, Option<Assigned>)> {
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
        if let Some(a) = pending.assigned {
            // A group's run: only the offsets assigned are this consumer's.
            let mine = (a.first..a.end).contains(&offset);
            return mine.then_some(((pending.topic, offset, pending.time, pending.rest), Some(a)));
        }
        if let Some(sub) = self.subs.iter_mut().find(|s| s.topic == topic) {
            if sub.next.is_some_and(|next| offset < next) {
                return None;
            }
            sub.next = Some(offset + 1);
            sub.resume = Start::Offset(offset + 1);
        }
        Some(((pending.topic, offset, pending.time, pending.rest), None))
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
            // Before waiting for the broker, it gets the acks held: it may wait for them.
            self.flush_acks()?;
            let read = match wait {
                Wait::No => self.conn.try_read()?,
                Wait::Until(deadline) => self.conn.read_until(deadline)?,
            };
            if !read {
                return Ok(None);
            }
        }
    }

    /// After a reconnect, a topic whose next offset is below where the subscription resumes
    /// holds fewer messages than this consumer had read: the broker lost them (it runs without
    /// a data directory and restarted). Rather than wait for offsets that new messages will
    /// take only once they pass the old ones, the consumer reads the topic again from its first
    /// offset and says so; returns true when it did, and the `Subscribed` that comes next
    /// counts instead of this one.
    fn restarted_empty(
        &mut self,
        topic: Span,
        offset: u64,
        first: u64,
        next: u64,
    ) -> Result<bool, ConsumerError> {
        let name = self.conn.protocol_ref().text(topic).to_owned();
        let Some(sub) = self.subs.iter_mut().find(|s| s.topic == name) else {
            return Ok(false);
        };
        let restarted = std::mem::take(&mut sub.resumed) && next < offset;
        if restarted {
            log::warn!(
                "topic {name} holds offsets {first}..{next} after the reconnect, below offset \
                 {offset} where this consumer was: the broker lost its messages (a restart \
                 without a data directory); reading the topic again from offset {first}"
            );
            self.send(Frame::Subscribe {
                topic: &name,
                start: Start::Offset(first),
            })?;
        }
        Ok(restarted)
    }

    /// Opens the connection again after `lost`, as [`ConsumerOptions::reconnect`] says, and
    /// subscribes every topic again where it left off. Returns the last error once the attempts
    /// are used up, or at once an error that another attempt would not mend.
    fn reconnect(&mut self, lost: ConsumerError) -> Result<(), ConsumerError> {
        let policy = self.options.reconnect.expect("reconnect is on");
        policy.run(lost, is_lost, || self.resubscribe())?;
        log::warn!("connected again; {} topics resumed", self.subs.len());
        Ok(())
    }

    fn resubscribe(&mut self) -> Result<(), ConsumerError> {
        self.conn = Connection::open(&self.addrs[..], Role::Consumer, &self.options.connect)?;
        for sub in &mut self.subs {
            sub.resumed = true;
            self.conn.protocol().send(Frame::Subscribe {
                topic: &sub.topic,
                start: sub.resume,
            });
        }
        // The acks held go out after the join: a member's ack of what is now waiting counts.
        self.assigned = None;
        for m in &self.groups {
            self.conn.protocol().send(Frame::Join {
                topic: &m.topic,
                group: &m.group,
                start: m.start,
                credit: m.credit,
                options: GroupOptions {
                    ack_wait: m.ack_wait,
                    max_deliver: m.max_deliver,
                    max_ack_pending: m.max_ack_pending,
                    dead_letter: m.dead_letter.as_deref(),
                },
            });
        }
        self.queue_acks();
        self.conn.write_all()
    }

    fn send(&mut self, frame: Frame<'_>) -> Result<(), ConsumerError> {
        self.conn.protocol().send(frame);
        self.conn.write_all()
    }
}

/// The event of the first message of `batch`, a message of `topic` at `offset` in a delivery
/// of base time `time`.
fn message_event<'a>(
    protocol: &'a mbus_proto::client::ClientProtocol,
    (topic, offset, time, batch): (Span, u64, u64, BatchSpan),
    group: Option<(&'a str, u32)>,
) -> Event<'a> {
    let (message, _) = protocol.batch(batch).split_first();
    Event::Message {
        topic: protocol.text(topic),
        offset,
        time: time + u64::from(message.delta),
        headers: message.headers,
        data: message.data,
        group: group.map(|g| g.0),
        attempt: group.map_or(1, |g| g.1),
    }
}
