//! How a producer connects, how far it may run ahead of the broker's confirms, and whether it
//! names itself and connects again when the connection is lost.

use mbus_client::{ConnectOptions, Reconnect};

/// Settings for [`crate::Producer::connect`]. Start from `default()` and set what differs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// The token and the connect timeout.
    pub connect: ConnectOptions,
    /// How many published messages may await the broker's confirm before
    /// [`crate::Producer::publish`] blocks to read confirms; at least 1.
    pub max_in_flight: u64,
    /// The identity of an idempotent producer (`PROTOCOL.md` section 13): with one, the broker
    /// stores a publish the producer resends once, after a reconnect or its own restart.
    /// [`crate::generated_identity`] makes one for the process. `None` (the default) publishes
    /// without one.
    pub identity: Option<String>,
    /// Whether and how the producer connects again when the connection is lost, and resends
    /// what the broker had not confirmed. `None` (the default) reports the loss instead.
    /// Without an identity a resend may store a message twice.
    pub reconnect: Option<Reconnect>,
    /// With `reconnect`, the most bytes of unconfirmed publishes kept to resend: past it,
    /// [`crate::Producer::publish`] blocks until the broker confirms more.
    pub max_unconfirmed_bytes: usize,
    /// With an identity, the number of the producer's first publish on this connection,
    /// resuming a session at it, rather than starting a new one: for a producer that numbers
    /// its publishes by a sequence of its own, such as a stream's, so that a resend after its
    /// own restart keeps its number. `None` (the default) starts a session.
    pub resume_at: Option<u64>,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            connect: ConnectOptions::default(),
            max_in_flight: 65_536,
            identity: None,
            reconnect: None,
            max_unconfirmed_bytes: 64 << 20,
            resume_at: None,
        }
    }
}

/// An identity for this process as an idempotent producer: its host name, process id and 64
/// random bits, within the protocol's 64 bytes of `A-Z a-z 0-9 . _ -`.
pub fn generated_identity() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    if host.is_empty() {
        host.push_str("mbus");
    }
    // Each RandomState is keyed afresh from the system's randomness.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{host}-{}-{random:016x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_identity_is_valid_and_new_each_time() {
        let a = generated_identity();
        assert_eq!(mbus_proto::validate_producer_id(&a), Ok(()), "{a}");
        assert_ne!(a, generated_identity());
    }
}
