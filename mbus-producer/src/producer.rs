//! The producer: publishes over one connection and counts the broker's confirms.

mod wire;

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use mbus_client::Connection;
use mbus_proto::{BatchBuilder, Frame, HEADER_LEN, Role, validate_topic};

use crate::{ProducerError, ProducerOptions};

/// Buffered publishes are written once they pass this many bytes.
const WRITE_THRESHOLD: usize = 64 * 1024;
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
/// The producer reads only inside its own calls. A broker that pings an idle producer is
/// answered at the next call that writes or waits.
#[derive(Debug)]
pub struct Producer {
    conn: Connection,
    max_in_flight: u64,
    sent: u64,
    confirmed: u64,
    /// Where a message with headers is encoded before it is framed.
    batch: BatchBuilder,
}

impl Producer {
    /// Connects, says `Hello` and waits for the broker's `Welcome`, all within the options'
    /// connect timeout.
    pub fn connect(
        addr: impl ToSocketAddrs,
        options: &ProducerOptions,
    ) -> Result<Producer, ProducerError> {
        let conn = Connection::open(addr, Role::Producer, &options.connect)?;
        Ok(Producer {
            conn,
            max_in_flight: options.max_in_flight.max(1),
            sent: 0,
            confirmed: 0,
            batch: BatchBuilder::new(),
        })
    }

    /// Publishes `data` to `topic` and returns the message's sequence number.
    ///
    /// The message is buffered, not yet sent: it goes out once the buffer passes 64 KiB, or on
    /// [`Producer::flush`] or [`Producer::wait_confirmed`]. When `max_in_flight` messages await a
    /// confirm, this first flushes and blocks, without a time limit, until the broker confirms
    /// more.
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
        if self.sent - self.confirmed >= self.max_in_flight {
            self.write_out(None)?;
            while self.sent - self.confirmed >= self.max_in_flight {
                self.await_frames(None)?;
            }
        }
        let max_frame = self.conn.max_frame() as usize;
        let out = self.conn.protocol().outbound_mut();
        let start = out.len();
        if headers.is_empty() {
            Frame::publish(topic, data).encode(out);
        } else {
            self.batch.clear();
            self.batch.push(data, headers)?;
            let batch = self.batch.batch().expect("one message");
            Frame::Publish { topic, batch }.encode(out);
            // Headers take room in the frame too.
            let body = out.len() - start - HEADER_LEN;
            if body > max_frame {
                out.truncate(start);
                return Err(ProducerError::TooLarge {
                    len: data.len(),
                    max: data.len().saturating_sub(body - max_frame),
                });
            }
        }
        debug_assert!(out.len() - start - HEADER_LEN <= max_frame);
        self.sent += 1;
        if out.len() >= WRITE_THRESHOLD {
            self.write_out(None)?;
        }
        Ok(self.sent)
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
        let deadline = Instant::now().checked_add(DROP_FLUSH);
        let _ = self.write_out(deadline);
    }
}
