//! How a consumer connects and how long it waits for deliveries.

use std::time::Duration;

use mbus_client::{ConnectOptions, Reconnect};

/// Settings for [`crate::Consumer::connect`]. Start from `default()` and set what differs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// The token and the connect timeout.
    pub connect: ConnectOptions,
    /// How long [`crate::Consumer::next_event`] waits for the broker before it returns
    /// [`crate::ConsumerError::Timeout`]; `None` waits for ever. Must not be zero.
    pub read_timeout: Option<Duration>,
    /// Whether and how the consumer connects again when the connection is lost; `None` (the
    /// default) reports the loss instead. After a reconnect it subscribes each topic again
    /// where it left off (the offset after the last message it handed out) and joins its groups
    /// again, so that nothing is handed out twice.
    pub reconnect: Option<Reconnect>,
}
