//! The producer's connections: opening one (with the `Identify` of an idempotent producer), and
//! opening another when it is lost, to resend what the broker had not confirmed.

use std::net::SocketAddr;
use std::time::Instant;

use mbus_client::{ClientError, Connection, is_lost};
use mbus_proto::client::Incoming;
use mbus_proto::{ErrorCode, Frame, Role};

use super::Producer;
use crate::{ProducerError, ProducerOptions};

/// Connects to the first of `addrs` that accepts and, for an idempotent producer, names it:
/// `sequence` 0 starts its session, any other number resumes it at that publish. Returns the
/// connection and the producer's number of its first publish (`sequence`, or 1, without an
/// identity).
pub(super) fn open(
    addrs: &[SocketAddr],
    options: &ProducerOptions,
    sequence: u64,
) -> Result<(Connection, u64), ProducerError> {
    let deadline = Instant::now().checked_add(options.connect.connect_timeout);
    let mut conn = Connection::open(addrs, Role::Producer, &options.connect)?;
    let Some(producer) = options.identity.as_deref() else {
        return Ok((conn, sequence.max(1)));
    };
    conn.protocol().send(Frame::Identify { producer, sequence });
    conn.write_all()?;
    loop {
        match conn.poll() {
            Ok(Some(Incoming::Identified { sequence: first })) => {
                if first == 0 || (sequence != 0 && first != sequence) {
                    return Err(ClientError::UnexpectedFrame("Identified of another number").into());
                }
                return Ok((conn, first));
            }
            Ok(Some(_)) => return Err(ClientError::UnexpectedFrame("non-Identified").into()),
            Ok(None) => {}
            Err(ClientError::Refused {
                code: ErrorCode::UnknownKind,
                reason,
            }) => return Err(ProducerError::NoIdempotence(reason)),
            Err(e) => return Err(e.into()),
        }
        if !conn.read_until(deadline)? {
            return Err(ClientError::Timeout.into());
        }
    }
}

/// Whether `e` means the broker went away, so that connecting again may work.
fn lost(e: &ProducerError) -> bool {
    match e {
        ProducerError::Client(e) => is_lost(e),
        ProducerError::Closed { .. } => true,
        _ => false,
    }
}

impl Producer {
    /// After a call failed with `e`: when `e` means the connection is lost and the producer
    /// connects again, it does so and queues every unconfirmed publish to be resent; otherwise
    /// `e` is returned.
    pub(super) fn recover(&mut self, e: ProducerError) -> Result<(), ProducerError> {
        let policy = match self.options.reconnect {
            Some(policy) if !self.closing && lost(&e) => policy,
            _ => return Err(e),
        };
        let resume = self
            .unconfirmed
            .front()
            .map_or(self.frames + 1, |u| u.number);
        let (conn, first) = policy.run(e, lost, || open(&self.addrs, &self.options, resume))?;
        self.conn = conn;
        self.first = first;
        let out = self.conn.protocol().outbound_mut();
        for u in &self.unconfirmed {
            out.extend_from_slice(&u.frame);
        }
        log::warn!(
            "connected again; resending {} publishes ({} messages) not confirmed",
            self.unconfirmed.len(),
            self.unconfirmed.back().map_or(0, |u| u.messages) - self.confirmed
        );
        Ok(())
    }
}
