//! The producer's typed errors.

pub use mbus_client::ClientError;

/// Why a producer call failed.
///
/// [`ProducerError::TooLarge`] and [`ProducerError::Headers`] reject one message before it is
/// buffered and leave the producer usable, and so do [`ClientError::InvalidTopic`] and [`ClientError::Timeout`].
/// Every other error means the connection is gone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The connection failed, or the broker refused or did not answer.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The message is larger than the broker takes on its topic; nothing was sent.
    #[error("a message of {len} bytes is larger than the broker takes on this topic, {max} bytes")]
    TooLarge {
        /// The message's own size.
        len: usize,
        /// The largest message the broker takes on the topic: its frame limit, from its
        /// `Welcome`, less what framing a message to that topic costs.
        max: usize,
    },
    /// The message's headers break the protocol's limits; nothing was sent.
    #[error("invalid headers: {0}")]
    Headers(#[from] mbus_proto::BatchError),
    /// The broker predates idempotent producers: it refused the `Identify` of a producer given
    /// an identity.
    #[error(
        "the broker does not know idempotent producers (it refused Identify as {0}); \
         publish without an identity, or run a newer broker"
    )]
    NoIdempotence(String),
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
