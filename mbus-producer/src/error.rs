//! The producer's typed errors.

pub use mbus_client::ClientError;

/// Why a producer call failed.
///
/// [`ProducerError::TooLarge`] rejects one message before it is buffered and leaves the
/// producer usable, and so do [`ClientError::InvalidTopic`] and [`ClientError::Timeout`].
/// Every other error means the connection is gone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The connection failed, or the broker refused or did not answer.
    #[error(transparent)]
    Client(#[from] ClientError),
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
}

impl From<mbus_proto::TopicError> for ProducerError {
    fn from(e: mbus_proto::TopicError) -> Self {
        ProducerError::Client(e.into())
    }
}
