//! The producer's typed errors.

use mbus_proto::{DecodeError, ErrorCode, TopicError};

/// Why a producer call failed.
///
/// [`ProducerError::InvalidTopic`] and [`ProducerError::TooLarge`] reject one message before it
/// is buffered and leave the producer usable, and so does [`ProducerError::Timeout`]. Every other
/// variant means the connection is gone.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// Connecting, reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The broker sent bytes that are not a valid frame.
    #[error("undecodable frame from the broker")]
    Decode(#[from] DecodeError),
    /// The broker sent an `Error` frame and is closing the connection.
    #[error("the broker reported {code:?}: {reason}")]
    Refused {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        reason: String,
    },
    /// The topic name breaks the naming rules; nothing was sent.
    #[error("invalid topic")]
    InvalidTopic(#[from] TopicError),
    /// The message's frame would exceed the broker's limit; nothing was sent.
    #[error("message of {len} bytes exceeds the broker's frame limit of {max} bytes")]
    TooLarge {
        /// The frame body the message needs, or just its payload's length when that alone is
        /// over the limit.
        len: usize,
        /// The broker's limit from its `Welcome`.
        max: u32,
    },
    /// The broker closed the connection before confirming every message.
    #[error("the broker closed the connection after confirming {confirmed} of {sent} messages")]
    Closed {
        /// Messages the broker confirmed: sequence numbers 1 to `confirmed` are stored.
        confirmed: u64,
        /// Messages published on this connection.
        sent: u64,
    },
    /// The broker did not answer in time.
    #[error("timed out waiting for the broker")]
    Timeout,
    /// The broker sent a frame that has no place on a producer connection.
    #[error("unexpected {0} frame from the broker")]
    UnexpectedFrame(&'static str),
}
