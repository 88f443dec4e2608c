//! How a consumer connects and how long it waits for deliveries.

use std::fmt;
use std::time::Duration;

/// Settings for [`crate::Consumer::connect`].
#[derive(Clone)]
pub struct ConsumerOptions {
    /// The shared secret, when the broker requires one.
    pub auth_token: Option<String>,
    /// How long connecting and the `Hello`/`Welcome` handshake may take together.
    pub connect_timeout: Duration,
    /// How long [`crate::Consumer::next_event`] waits for the broker before it returns
    /// [`crate::ConsumerError::Timeout`]; `None` waits for ever. Must not be zero.
    pub read_timeout: Option<Duration>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            auth_token: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
        }
    }
}

// By hand, so that the token never reaches a log.
impl fmt::Debug for ConsumerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerOptions")
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}
