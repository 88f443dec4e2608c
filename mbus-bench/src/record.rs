//! What every bench payload carries and how a subscriber checks what it received: each
//! publisher's messages exactly once and in the order that publisher sent them.
//!
//! A payload starts with the publisher's number (4 bytes) and its sequence number (8 bytes),
//! both little-endian; the latency workload adds the send time (8 bytes, nanoseconds since an
//! instant all threads share). The rest is padding up to the payload size.

#[cfg(test)]
mod tests;

/// Bytes at the start of every payload that identify it.
pub const ID_LEN: usize = 12;
/// Bytes a latency payload needs at least: the identity and the send time.
pub const STAMPED_LEN: usize = ID_LEN + 8;
/// What the rest of a payload is filled with.
const PADDING: u8 = b'.';

/// A payload buffer of `size` bytes, padded, ready for [`write_id`].
pub fn payload(size: usize) -> Vec<u8> {
    assert!(
        size >= STAMPED_LEN,
        "a payload needs at least {STAMPED_LEN} bytes"
    );
    vec![PADDING; size]
}

pub fn write_id(payload: &mut [u8], publisher: u32, seq: u64) {
    payload[..4].copy_from_slice(&publisher.to_le_bytes());
    payload[4..ID_LEN].copy_from_slice(&seq.to_le_bytes());
}

pub fn write_stamp(payload: &mut [u8], nanos: u64) {
    payload[ID_LEN..STAMPED_LEN].copy_from_slice(&nanos.to_le_bytes());
}

/// The publisher and sequence number a payload carries.
pub fn read_id(payload: &[u8]) -> Option<(u32, u64)> {
    let publisher = u32::from_le_bytes(*payload.first_chunk::<4>()?);
    let seq = u64::from_le_bytes(*payload.get(4..ID_LEN)?.first_chunk::<8>()?);
    Some((publisher, seq))
}

/// The send time a latency payload carries.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let bytes = payload.get(ID_LEN..STAMPED_LEN)?;
    Some(u64::from_le_bytes(*bytes.first_chunk::<8>()?))
}

/// What is wrong with a stream of deliveries: a message lost, duplicated or out of order.
#[derive(Debug, PartialEq, Eq)]
pub struct Wrong(pub String);

impl std::fmt::Display for Wrong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Wrong {}

/// One subscriber's view of a run: which message of each publisher is due next.
pub struct Checker {
    next: Vec<u64>,
    per_publisher: u64,
    size: usize,
    received: u64,
}

impl Checker {
    pub fn new(publishers: u32, per_publisher: u64, size: usize) -> Checker {
        Checker {
            next: vec![0; publishers as usize],
            per_publisher,
            size,
            received: 0,
        }
    }

    pub fn total(&self) -> u64 {
        self.next.len() as u64 * self.per_publisher
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Checks the next delivery: `Ok(true)` once every message has arrived, an error naming
    /// the first message lost, duplicated or out of order. Anything after the last expected
    /// message is a duplicate.
    pub fn accept(&mut self, payload: &[u8]) -> Result<bool, Wrong> {
        if payload.len() != self.size {
            return Err(Wrong(format!(
                "a message of {} bytes arrived where every message has {}",
                payload.len(),
                self.size
            )));
        }
        let (publisher, seq) = read_id(payload).expect("the length was checked");
        let Some(next) = self.next.get_mut(publisher as usize) else {
            return Err(Wrong(format!(
                "a message from publisher {publisher} arrived, but only {} publish",
                self.next.len()
            )));
        };
        if seq >= self.per_publisher {
            return Err(Wrong(format!(
                "publisher {publisher}'s message {seq} arrived, but it sends only {}",
                self.per_publisher
            )));
        }
        if seq < *next {
            return Err(Wrong(format!(
                "duplicate: publisher {publisher}'s message {seq} arrived a second time"
            )));
        }
        if seq > *next {
            return Err(Wrong(format!(
                "lost or reordered: publisher {publisher}'s message {seq} arrived where \
                 message {next} was due"
            )));
        }
        *next += 1;
        self.received += 1;
        Ok(self.received == self.total())
    }

    /// What never arrived, for a run that ended early.
    pub fn missing(&self) -> String {
        let behind: Vec<String> = self
            .next
            .iter()
            .enumerate()
            .filter(|&(_, &next)| next < self.per_publisher)
            .map(|(p, next)| format!("publisher {p} from message {next}"))
            .collect();
        format!(
            "lost: {} of {} messages arrived; missing {}",
            self.received,
            self.total(),
            behind.join(", ")
        )
    }
}
