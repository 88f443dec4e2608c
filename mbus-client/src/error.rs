//! The errors a client connection reports.

use mbus_proto::client::ProtocolError;
use mbus_proto::{DecodeError, ErrorCode, TopicError};

/// Why a client call failed.
///
/// [`ClientError::InvalidTopic`], [`ClientError::InvalidGroup`], [`ClientError::NotMember`] and
/// [`ClientError::Timeout`] leave the connection usable;
/// every other variant means it is gone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
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
    /// The group name breaks the naming rules; nothing was sent.
    #[error("invalid group name: {0}")]
    InvalidGroup(TopicError),
    /// An ack, nak, progress or term for a group the consumer has not joined; nothing was sent.
    #[error("not a member of group {0}")]
    NotMember(String),
    /// The broker closed the connection without saying why.
    #[error("the broker closed the connection")]
    Closed,
    /// The broker did not answer in time.
    #[error("timed out waiting for the broker")]
    Timeout,
    /// The broker sent a frame that has no place on this connection.
    #[error("unexpected {0} frame from the broker")]
    UnexpectedFrame(&'static str),
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Decode(e) => ClientError::Decode(e),
            ProtocolError::Refused { code, reason } => ClientError::Refused { code, reason },
            ProtocolError::UnexpectedFrame(name) => ClientError::UnexpectedFrame(name),
            other => ClientError::Io(std::io::Error::other(other.to_string())),
        }
    }
}
