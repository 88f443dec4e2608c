//! How a client connects: the token it presents and how long connecting may take.

use std::fmt;
use std::time::Duration;

/// Settings for [`crate::Connection::open`], shared by producers and consumers.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The shared secret, when the broker requires one.
    pub auth_token: Option<String>,
    /// How long connecting and the `Hello`/`Welcome` handshake may take together.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            auth_token: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

// By hand, so that the token never reaches a log.
impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}
