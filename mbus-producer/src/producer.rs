//! The producer: publishes over one connection and counts the broker's confirms.

mod wire;

use std::fmt;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbus_proto::{
    DEFAULT_MAX_FRAME, DecodeError, Frame, HEADER_LEN, PROTOCOL_VERSION, Role, decode,
    validate_topic,
};

use crate::net;
use crate::{ProducerError, ProducerOptions};

/// Buffered publishes are written once they pass this many bytes.
const WRITE_THRESHOLD: usize = 64 * 1024;

/// A connection to the broker's producer port.
///
/// Messages are numbered 1, 2, 3, ... in the order they are published, as the broker numbers
/// them; a message is stored once [`Producer::confirmed`] has reached its number. Messages still
/// buffered when the producer is dropped are lost: end with [`Producer::wait_confirmed`].
///
/// The producer reads only inside its own calls. A broker that pings an idle producer is
/// answered at the next call that writes or waits.
pub struct Producer {
    stream: TcpStream,
    max_frame: u32,
    max_in_flight: u64,
    /// Encoded frames not yet written: whole frames only.
    out: Vec<u8>,
    /// Bytes from the broker not yet decoded: between calls, at most part of one frame.
    inbound: Vec<u8>,
    sent: u64,
    confirmed: u64,
}

impl Producer {
    /// Connects, says `Hello` and waits for the broker's `Welcome`, all within
    /// `options.connect_timeout`.
    pub fn connect(
        addr: impl ToSocketAddrs,
        options: &ProducerOptions,
    ) -> Result<Producer, ProducerError> {
        let stream = net::connect(addr, options.connect_timeout)?;
        let mut producer = Producer {
            stream,
            max_frame: 0,
            max_in_flight: options.max_in_flight.max(1),
            out: Vec::with_capacity(2 * WRITE_THRESHOLD),
            inbound: Vec::new(),
            sent: 0,
            confirmed: 0,
        };
        producer.max_frame = producer.handshake(options)?;
        producer.stream.set_write_timeout(Some(wire::WRITE_POLL))?;
        Ok(producer)
    }

    /// Returns the broker's frame limit from the `Welcome`.
    fn handshake(&mut self, options: &ProducerOptions) -> Result<u32, ProducerError> {
        let deadline = Instant::now().checked_add(options.connect_timeout);
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Producer,
            token: options.auth_token.as_deref(),
        };
        self.stream
            .set_write_timeout(Some(options.connect_timeout))?;
        self.stream.write_all(&hello.to_bytes())?;
        loop {
            if let Some((frame, len)) = decode(&self.inbound, DEFAULT_MAX_FRAME)? {
                let welcome = match frame {
                    Frame::Welcome { version, max_frame } if version == PROTOCOL_VERSION => {
                        Ok(max_frame)
                    }
                    Frame::Welcome { version, .. } => {
                        Err(DecodeError::UnsupportedVersion(version).into())
                    }
                    Frame::Error { code, reason } => Err(ProducerError::Refused {
                        code,
                        reason: reason.to_owned(),
                    }),
                    other => Err(ProducerError::UnexpectedFrame(other.name())),
                };
                self.inbound.drain(..len);
                return welcome;
            }
            self.read_until(deadline)?;
        }
    }

    /// Publishes `data` to `topic` and returns the message's sequence number.
    ///
    /// The message is buffered, not yet sent: it goes out once the buffer passes 64 KiB, or on
    /// [`Producer::flush`] or [`Producer::wait_confirmed`]. When `max_in_flight` messages await a
    /// confirm, this first flushes and blocks, without a time limit, until the broker confirms
    /// more.
    pub fn publish(&mut self, topic: &str, data: &[u8]) -> Result<u64, ProducerError> {
        validate_topic(topic)?;
        // Checked before encoding, so that a huge payload is neither copied nor overflows the
        // 4-byte length prefix.
        if data.len() > self.max_frame as usize {
            return Err(self.too_large(data.len()));
        }
        if self.sent - self.confirmed >= self.max_in_flight {
            self.write_out(None)?;
            while self.sent - self.confirmed >= self.max_in_flight {
                self.await_frames(None)?;
            }
        }
        let start = self.out.len();
        Frame::Publish { topic, data }.encode(&mut self.out);
        let body = self.out.len() - start - HEADER_LEN;
        if body > self.max_frame as usize {
            self.out.truncate(start);
            return Err(self.too_large(body));
        }
        self.sent += 1;
        if self.out.len() >= WRITE_THRESHOLD {
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
    ///
    /// With a `timeout`, gives up with [`ProducerError::Timeout`] once it has passed; the
    /// producer stays usable and a later call can wait again.
    pub fn wait_confirmed(&mut self, timeout: Option<Duration>) -> Result<u64, ProducerError> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
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
        self.max_frame
    }

    fn too_large(&self, len: usize) -> ProducerError {
        ProducerError::TooLarge {
            len,
            max: self.max_frame,
        }
    }

    fn closed(&self) -> ProducerError {
        ProducerError::Closed {
            confirmed: self.confirmed,
            sent: self.sent,
        }
    }
}

// By hand: the buffers are noise in a log.
impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("peer", &self.stream.peer_addr().ok())
            .field("sent", &self.sent)
            .field("confirmed", &self.confirmed)
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}
