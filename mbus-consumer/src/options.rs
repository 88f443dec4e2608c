//! How a consumer connects and how long it waits for deliveries.

use std::time::Duration;

use mbus_client::ConnectOptions;

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
    /// default) reports the loss instead.
    pub reconnect: Option<Reconnect>,
}

/// How a consumer connects again after losing its connection: it waits `backoff`, doubled
/// after each failed attempt up to `max_backoff`, gives up after `max_attempts` failures in a
/// row, and subscribes each topic again where it left off (the offset after the last message
/// it handed out), so that nothing is handed out twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnect {
    /// The wait before the first attempt.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Failed attempts in a row after which the last error is returned.
    pub max_attempts: u32,
}

impl Default for Reconnect {
    /// 100 ms, doubling up to 5 s, 30 attempts: about two minutes without a broker.
    fn default() -> Self {
        Reconnect {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: 30,
        }
    }
}
