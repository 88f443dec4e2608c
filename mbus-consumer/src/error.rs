//! The consumer's typed errors.

use mbus_proto::{DecodeError, ErrorCode, TopicError};

/// Why a consumer call failed.
///
/// [`ConsumerError::InvalidTopic`] rejects one call before anything is sent, and
/// [`ConsumerError::Timeout`] only reports silence; after either the consumer is still usable.
/// Every other variant means the connection is gone.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
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
    /// The broker closed the connection without saying why.
    #[error("the broker closed the connection")]
    Closed,
    /// Nothing arrived within the read timeout, or the handshake took too long.
    #[error("timed out waiting for the broker")]
    Timeout,
    /// The broker sent a frame that has no place on a consumer connection.
    #[error("unexpected {0} frame from the broker")]
    UnexpectedFrame(&'static str),
}
