//! A message as the consumer handed it out, for the ways of printing it.

use mbus_consumer::Headers;

/// One message of a topic, borrowed from the consumer.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    pub topic: &'a str,
    pub offset: u64,
    /// When the broker stored it, in milliseconds since the Unix epoch.
    pub time: u64,
    pub headers: Headers<'a>,
    pub data: &'a [u8],
}
