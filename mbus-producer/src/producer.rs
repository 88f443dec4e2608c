//! The producer: publishes over one connection and counts the broker's confirms.

mod session;
mod wire;

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbus_client::{ClientError, Connection};
use mbus_proto::{BatchBuilder, Frame, publish_len, validate_topic};

use crate::{ProducerError, ProducerOptions};

/// Buffered publishes are written once they pass this many bytes.
const WRITE_THRESHOLD: usize = 64 * 1024;
/// The most messages one `Publish` batch carries.
const MAX_BATCH: usize = 4096;
/// How long dropping a producer may spend writing what it still buffers.
const DROP_FLUSH: Duration = Duration::from_secs(5);

/// A connection to the broker's producer port.
///
/// Messages are numbered 1, 2, 3, ... in the order they are published, as the broker numbers
/// them; a message is stored once [`Producer::confirmed`] has reached its number. End with
/// [`Producer::finish`] (or [`Producer::wait_confirmed`]) to know that everything was stored:
/// a producer that is dropped writes what it still buffers, for up to 5 seconds, but does not
/// wait for confirms.
///
/// Consecutive messages to one topic travel as one `Publish` batch, which the broker stores and
/// delivers as one frame: whatever was published when the producer writes goes out, so a fast
/// publisher sends batches of hundreds of messages while one that publishes a message and
/// flushes sends it alone, with no wait added.
///
/// The producer reads only inside its own calls. A broker that pings an idle producer is
/// answered at the next call that writes or waits.
///
/// With [`ProducerOptions::reconnect`], a call that finds the connection lost connects again
/// (waiting as the policy says, a log line per attempt), resends every publish not confirmed,
/// in order, and goes on; with [`ProducerOptions::identity`] too, the broker stores each of
/// them once.
#[derive(Debug)]
pub struct Producer {
    conn: Connection,
    /// Where the broker is, for connecting again.
    addrs: Vec<SocketAddr>,
    options: ProducerOptions,
    /// The producer's number of this connection's first publish: a confirm of `count` covers
    /// publishes up to `first + count - 1`.
    first: u64,
    /// Dropping: what is buffered is written once, with no reconnect.
    closing: bool,
    max_in_flight: u64,
    sent: u64,
    confirmed: u64,
    /// The messages published since the last write, all to `batch_topic`, not yet framed.
    batch: BatchBuilder,
    batch_topic: String,
    /// `Publish` frames made, over every connection: the number of the last one.
    frames: u64,
    /// Each frame not yet confirmed, oldest first.
    unconfirmed: VecDeque<Unconfirmed>,
    /// Bytes of the frames `unconfirmed` keeps to resend.
    kept: usize,
}

/// A `Publish` frame the broker has not confirmed.
#[derive(Debug)]
struct Unconfirmed {
    /// The producer's number of the publish.
    number: u64,
    /// The messages published up to its end.
    messages: u64,
    /// Its bytes, kept to resend after a reconnect (empty without one).
    frame: Vec<u8>,
}

impl Producer {
    /// Connects, says `Hello` and waits for the broker's `Welcome`, all within the options'
    /// connect timeout; with an identity it starts the producer's session too (`Identify`,
    /// answered by `Identified`).
    pub fn connect(
        addr: impl ToSocketAddrs,
        options: &ProducerOptions,
    ) -> Result<Producer, ProducerError> {
        if let Some(identity) = &options.identity {
            mbus_proto::validate_producer_id(identity).map_err(ClientError::InvalidTopic)?;
        }
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(ClientError::from)?.collect();
        let (conn, first) = session::open(&addrs, options, options.resume_at.unwrap_or(0))?;
        Ok(Producer {
            conn,
            addrs,
            options: options.clone(),
            first,
            closing: false,
            max_in_flight: options.max_in_flight.max(1),
            sent: 0,
            confirmed: 0,
            batch: BatchBuilder::new(),
            batch_topic: String::new(),
            frames: first - 1,
            unconfirmed: VecDeque::new(),
            kept: 0,
        })
    }

    /// Publishes `data` to `topic` and returns the message's sequence number.
    ///
    /// The message is buffered, not yet sent: it goes out once the buffer passes 64 KiB, or on
    /// [`Producer::flush`] or [`Producer::wait_confirmed`], in one batch with the messages to the
    /// same topic published before it. When `max_in_flight` messages await a confirm, this
    /// first flushes and blocks, without a time limit, until the broker confirms more.
    pub fn publish(&mut self, topic: &str, data: &[u8]) -> Result<u64, ProducerError> {
        self.publish_with(topic, data, &[])
    }

    /// Publishes `data` with `headers` (name and value pairs, within the protocol's limits,
    /// [`mbus_proto::batch::MAX_HEADERS`] and [`mbus_proto::batch::MAX_HEADER_BYTES`]) to
    /// `topic`, as [`Producer::publish`] does.
    pub fn publish_with(
        &mut self,
        topic: &str,
        data: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<u64, ProducerError> {
        validate_topic(topic)?;
        mbus_proto::batch::check_headers(headers)?;
        // Checked before encoding, so that a huge payload is neither copied nor overflows the
        // 4-byte length prefix.
        let max = self.max_message(topic);
        if data.len() > max {
            return Err(ProducerError::TooLarge {
                len: data.len(),
                max,
            });
        }
        if self.too_far_ahead() {
            self.write_out(None)?;
            while self.too_far_ahead() {
                self.await_frames(None)?;
            }
        }
        if !self.batch.is_empty() && (self.batch_topic != topic || self.batch.len() >= MAX_BATCH) {
            self.frame_batch();
        }
        if self.batch.is_empty() {
            topic.clone_into(&mut self.batch_topic);
        }
        let max_frame = self.conn.max_frame() as usize;
        self.batch.push(data, headers)?;
        if publish_len(topic, self.batch.encoded_len()) > max_frame && self.batch.len() > 1 {
            // It starts a batch of its own, to the same topic.
            self.batch.undo_last();
            self.frame_batch();
            self.batch.push(data, headers)?;
        }
        let body = publish_len(topic, self.batch.encoded_len());
        if body > max_frame {
            // Headers take room in the frame too.
            self.batch.clear();
            return Err(ProducerError::TooLarge {
                len: data.len(),
                max: data.len().saturating_sub(body - max_frame),
            });
        }
        self.sent += 1;
        let buffered = self.conn.protocol().outbound().len() + self.batch.encoded_len();
        if buffered >= WRITE_THRESHOLD {
            self.write_out(None)?;
        }
        Ok(self.sent)
    }

    /// Whether `publish` must wait for confirms first: too many messages, or (when they are
    /// kept to resend) too many bytes, are unconfirmed.
    fn too_far_ahead(&self) -> bool {
        self.sent - self.confirmed >= self.max_in_flight
            || (self.kept > 0 && self.kept >= self.options.max_unconfirmed_bytes)
    }

    /// Frames the messages of the open batch as one `Publish`, behind what is buffered.
    fn frame_batch(&mut self) {
        if let Some(batch) = self.batch.batch() {
            let out = self.conn.protocol().outbound_mut();
            let start = out.len();
            Frame::Publish {
                topic: &self.batch_topic,
                batch,
            }
            .encode(out);
            let frame = match self.options.reconnect {
                Some(_) => out[start..].to_vec(),
                None => Vec::new(),
            };
            self.kept += frame.len();
            self.batch.clear();
            self.frames += 1;
            self.unconfirmed.push_back(Unconfirmed {
                number: self.frames,
                messages: self.sent,
                frame,
            });
        }
    }

    /// Takes in the broker's `Confirm` of the connection's first `count` publishes.
    fn confirm_frames(&mut self, count: u64) {
        let through = (self.first - 1).saturating_add(count);
        while let Some(front) = self.unconfirmed.front() {
            if front.number > through {
                break;
            }
            self.confirmed = front.messages;
            self.kept -= front.frame.len();
            self.unconfirmed.pop_front();
        }
    }

    /// Ends the open batch: the next message published starts a `Publish` of its own. With an
    /// identity, each publish has a number ([`Producer::next_number`]), so a producer that
    /// numbers its messages itself ends the batch after each one.
    pub fn end_batch(&mut self) {
        self.frame_batch();
    }

    /// The number the producer's next `Publish` gets: that of the open batch, or of the next
    /// message published when no batch is open.
    pub fn next_number(&self) -> u64 {
        self.frames + 1
    }

    /// Writes every buffered message to the broker, without waiting for confirms.
    pub fn flush(&mut self) -> Result<(), ProducerError> {
        self.write_out(None)
    }

    /// Flushes, then blocks until the broker has confirmed every published message, and returns
    /// how many that is.
    pub fn wait_confirmed(&mut self) -> Result<u64, ProducerError> {
        self.wait_confirmed_until(None)
    }

    /// As [`Producer::wait_confirmed`], but gives up with [`mbus_client::ClientError::Timeout`]
    /// once `timeout` has passed; the producer stays usable and a later call can wait again.
    pub fn wait_confirmed_timeout(&mut self, timeout: Duration) -> Result<u64, ProducerError> {
        self.wait_confirmed_until(Instant::now().checked_add(timeout))
    }

    /// Waits until everything published is confirmed and closes the connection; returns how
    /// many messages were stored.
    pub fn finish(mut self) -> Result<u64, ProducerError> {
        self.wait_confirmed()
    }

    fn wait_confirmed_until(&mut self, deadline: Option<Instant>) -> Result<u64, ProducerError> {
        self.write_out(deadline)?;
        while self.confirmed < self.sent {
            self.await_frames(deadline)?;
        }
        Ok(self.confirmed)
    }

    /// How many messages have been published, which is the last sequence number handed out.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// How many messages the broker has confirmed, as of the last read.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// The identity this producer publishes under, if it is idempotent.
    pub fn identity(&self) -> Option<&str> {
        self.options.identity.as_deref()
    }

    /// The largest frame body the broker accepts, from its `Welcome`.
    pub fn max_frame(&self) -> u32 {
        self.conn.max_frame()
    }

    /// The largest message the broker takes on `topic`: its frame limit less what framing the
    /// message to that topic costs.
    pub fn max_message(&self, topic: &str) -> usize {
        mbus_proto::max_publish_data(topic, self.conn.max_frame())
    }
}

impl Drop for Producer {
    /// Writes what is still buffered, as `BufWriter` does, within a bounded time; whether the
    /// broker stored it is what [`Producer::finish`] would have said.
    fn drop(&mut self) {
        self.closing = true;
        let deadline = Instant::now().checked_add(DROP_FLUSH);
        let _ = self.write_out(deadline);
    }
}
