//! The producer's socket traffic: writing buffered frames, and reading and applying the broker's.
//!
//! With std's blocking sockets a thread cannot wait for "readable or writable", so a write that
//! stalls is given up after [`WRITE_POLL`] and retried after reading whatever the broker has
//! sent. A broker that holds back our publishes until we take its confirms is thereby never
//! waiting on a producer that waits on it.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mbus_proto::{DEFAULT_MAX_FRAME, Frame, decode};

use super::Producer;
use crate::ProducerError;
use crate::net::{is_disconnect, is_retry};

/// How long one write may block before the producer reads what the broker sent.
pub(super) const WRITE_POLL: Duration = Duration::from_millis(50);

/// Bytes taken from the socket per read; confirms are a dozen bytes each.
const READ_CHUNK: usize = 4096;

impl Producer {
    /// Writes `out` to the broker, reading its frames whenever a write stalls.
    pub(super) fn write_out(&mut self, deadline: Option<Instant>) -> Result<(), ProducerError> {
        let mut written = 0;
        let result = loop {
            if written == self.out.len() {
                break Ok(());
            }
            if let Err(e) = self.drain() {
                break Err(e);
            }
            match self.stream.write(&self.out[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => written += n,
                Err(e) if is_retry(&e) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break Err(ProducerError::Timeout);
                    }
                }
                Err(e) if is_disconnect(&e) => break Err(self.last_words()),
                Err(e) => break Err(e.into()),
            }
        };
        // Written bytes go even on a timeout, so that a later flush does not send them twice.
        self.out.drain(..written);
        result
    }

    /// Blocks until the broker sends something, applies it and sends any Pong it asked for.
    pub(super) fn await_frames(&mut self, deadline: Option<Instant>) -> Result<(), ProducerError> {
        self.read_until(deadline)?;
        self.apply_frames()?;
        if !self.out.is_empty() {
            self.write_out(deadline)?;
        }
        Ok(())
    }

    /// Blocks until one read from the broker succeeds, or `deadline` passes.
    pub(super) fn read_until(&mut self, deadline: Option<Instant>) -> Result<(), ProducerError> {
        let timeout = match deadline {
            None => None,
            Some(d) => Some(
                d.checked_duration_since(Instant::now())
                    .filter(|left| !left.is_zero())
                    .ok_or(ProducerError::Timeout)?,
            ),
        };
        self.stream.set_read_timeout(timeout)?;
        match self.read_chunk()? {
            true => Ok(()),
            false => Err(ProducerError::Timeout),
        }
    }

    /// Reads and applies whatever the broker has sent, without waiting for more.
    fn drain(&mut self) -> Result<(), ProducerError> {
        self.stream.set_nonblocking(true)?;
        let mut result = Ok(());
        while result.is_ok() {
            match self.read_chunk() {
                Ok(true) => result = self.apply_frames(),
                Ok(false) => break,
                Err(e) => result = Err(e),
            }
        }
        self.stream.set_nonblocking(false)?;
        result
    }

    /// Appends one read to `inbound`; `false` when the socket had nothing within its timeout.
    fn read_chunk(&mut self) -> Result<bool, ProducerError> {
        let mut chunk = [0; READ_CHUNK];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(self.closed()),
                Ok(n) => {
                    self.inbound.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_retry(&e) => return Ok(false),
                Err(e) if is_disconnect(&e) => return Err(self.closed()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Applies every whole frame in `inbound`: confirms count, Pings queue a Pong.
    fn apply_frames(&mut self) -> Result<(), ProducerError> {
        let mut used = 0;
        while let Some((frame, len)) = decode(&self.inbound[used..], DEFAULT_MAX_FRAME)? {
            used += len;
            match frame {
                Frame::Confirm { count } => self.confirmed = self.confirmed.max(count),
                Frame::Ping => Frame::Pong.encode(&mut self.out),
                Frame::Pong => {}
                Frame::Error { code, reason } => {
                    return Err(ProducerError::Refused {
                        code,
                        reason: reason.to_owned(),
                    });
                }
                other => return Err(ProducerError::UnexpectedFrame(other.name())),
            }
        }
        self.inbound.drain(..used);
        Ok(())
    }

    /// The error for a write the broker no longer takes: its `Error` frame, when it sent one
    /// before closing (after a last `Confirm`), says more than a broken pipe.
    fn last_words(&mut self) -> ProducerError {
        match self.drain() {
            Err(refused @ ProducerError::Refused { .. }) => refused,
            _ => self.closed(),
        }
    }
}
