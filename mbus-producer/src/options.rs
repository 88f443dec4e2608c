//! How a producer connects and how far it may run ahead of the broker's confirms.

use mbus_client::ConnectOptions;

/// Settings for [`crate::Producer::connect`]. Start from `default()` and set what differs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// The token and the connect timeout.
    pub connect: ConnectOptions,
    /// How many published messages may await the broker's confirm before
    /// [`crate::Producer::publish`] blocks to read confirms; at least 1.
    pub max_in_flight: u64,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            connect: ConnectOptions::default(),
            max_in_flight: 65_536,
        }
    }
}
