//! The producer's socket traffic: writing buffered frames, and reading and applying the broker's.
//!
//! With std's blocking sockets a thread cannot wait for "readable or writable", so a write that
//! stalls is given up after [`WRITE_POLL`] and retried after reading whatever the broker has
//! sent. A broker that holds back our publishes until we take its confirms is thereby never
//! waiting on a producer that waits on it.

use std::time::{Duration, Instant};

use mbus_client::ClientError;
use mbus_proto::client::Incoming;

use super::Producer;
use crate::ProducerError;

/// How long one write may block before the producer reads what the broker sent.
const WRITE_POLL: Duration = Duration::from_millis(50);

impl Producer {
    /// Writes what is buffered to the broker, reading its frames whenever a write stalls.
    /// A connection found lost is opened again when the producer reconnects, and what it had
    /// not confirmed is written again.
    pub(super) fn write_out(&mut self, deadline: Option<Instant>) -> Result<(), ProducerError> {
        self.frame_batch();
        while !self.conn.protocol().outbound().is_empty() {
            if let Err(e) = self.drain() {
                self.recover(e)?;
                continue;
            }
            match self.conn.write_some(Some(WRITE_POLL)) {
                Ok(0) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(ClientError::Timeout.into());
                }
                Ok(_) => {}
                Err(ClientError::Closed) => {
                    let e = self.last_words();
                    self.recover(e)?;
                }
                Err(e) => {
                    let e = self.sort(e);
                    self.recover(e)?;
                }
            }
        }
        Ok(())
    }

    /// Blocks until the broker sends something, applies it and sends any Pong it asked for.
    /// A connection found lost is opened again when the producer reconnects.
    pub(super) fn await_frames(&mut self, deadline: Option<Instant>) -> Result<(), ProducerError> {
        let read = match self.conn.read_until(deadline) {
            Ok(true) => self.apply_frames(),
            Ok(false) => return Err(ClientError::Timeout.into()),
            Err(e) => Err(self.sort(e)),
        };
        if let Err(e) = read {
            self.recover(e)?;
        }
        self.write_out(deadline)
    }

    /// Reads and applies whatever the broker has sent, without waiting for more.
    fn drain(&mut self) -> Result<(), ProducerError> {
        loop {
            match self.conn.try_read() {
                Ok(true) => self.apply_frames()?,
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.sort(e)),
            }
        }
    }

    /// Applies every whole frame that arrived: confirms count (the protocol queues Pongs).
    fn apply_frames(&mut self) -> Result<(), ProducerError> {
        while let Some(frame) = self.conn.poll().map_err(|e| self.sort(e))? {
            match frame {
                Incoming::Confirm { count } => self.confirm_frames(count),
                _ => return Err(ClientError::UnexpectedFrame("non-Confirm").into()),
            }
        }
        Ok(())
    }

    /// A closed connection says how far the broker got.
    fn sort(&self, e: ClientError) -> ProducerError {
        match e {
            ClientError::Closed => ProducerError::Closed {
                confirmed: self.confirmed,
                sent: self.sent,
            },
            e => e.into(),
        }
    }

    /// The error for a write the broker no longer takes: its `Error` frame, when it sent one
    /// before closing (after a last `Confirm`), says more than a broken pipe.
    fn last_words(&mut self) -> ProducerError {
        match self.drain() {
            Err(refused @ ProducerError::Client(ClientError::Refused { .. })) => refused,
            _ => self.sort(ClientError::Closed),
        }
    }
}
