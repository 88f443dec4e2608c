//! How a producer connects and how far it may run ahead of the broker's confirms.

use std::fmt;
use std::time::Duration;

/// Settings for [`crate::Producer::connect`].
#[derive(Clone)]
pub struct ProducerOptions {
    /// The shared secret, when the broker requires one.
    pub auth_token: Option<String>,
    /// How many published messages may await the broker's confirm before
    /// [`crate::Producer::publish`] blocks to read confirms; at least 1.
    pub max_in_flight: u64,
    /// How long connecting and the `Hello`/`Welcome` handshake may take together.
    pub connect_timeout: Duration,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            auth_token: None,
            max_in_flight: 65_536,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

// By hand, so that the token never reaches a log.
impl fmt::Debug for ProducerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerOptions")
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_in_flight", &self.max_in_flight)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}
