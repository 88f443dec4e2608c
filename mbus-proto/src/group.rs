//! What the consumer-group frames carry besides plain numbers: a group's settings, what a member
//! says of the messages it holds, and the offsets it says it of, as fixed-width ranges.

use crate::topic::{TopicError, validate_topic};

/// Bytes of one range in [`AckRanges`]: the first offset (8 bytes) and the count (4 bytes),
/// both big-endian.
pub const ACK_RANGE_LEN: usize = 12;

/// Checks a group name: the rules of topic names (1 to 255 bytes of `A-Z a-z 0-9 . _ -`).
pub fn validate_group(name: &str) -> Result<(), TopicError> {
    validate_topic(name)
}

/// A group's settings, as a member asks for them in `Join` and the broker states them in
/// `Joined`. In `Join`, 0 (or nil for the dead-letter topic) asks for the broker's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupOptions<'a> {
    /// Milliseconds a member may hold a message before it is given to another.
    pub ack_wait: u64,
    /// Deliveries of a message before it goes to the dead-letter topic.
    pub max_deliver: u32,
    /// Messages the whole group may hold unacknowledged at once.
    pub max_ack_pending: u32,
    /// The topic messages go to after `max_deliver` deliveries or a `term`.
    pub dead_letter: Option<&'a str>,
}

/// What a member says of the messages an `Ack` frame names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckAction {
    /// Processed: never deliver it again. Encoded as 0.
    Ack,
    /// Not processed: deliver it again, after the frame's delay. Encoded as 1.
    Nak,
    /// Still being processed: restart its ack wait. Encoded as 2.
    Progress,
    /// Never to be processed: send it to the dead-letter topic now. Encoded as 3.
    Term,
}

impl AckAction {
    /// The action's number on the wire.
    pub fn to_u8(self) -> u8 {
        match self {
            AckAction::Ack => 0,
            AckAction::Nak => 1,
            AckAction::Progress => 2,
            AckAction::Term => 3,
        }
    }

    /// The action with this number, if there is one.
    pub fn from_u8(n: u8) -> Option<Self> {
        match n {
            0 => Some(AckAction::Ack),
            1 => Some(AckAction::Nak),
            2 => Some(AckAction::Progress),
            3 => Some(AckAction::Term),
            _ => None,
        }
    }

    /// The action's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AckAction::Ack => "ack",
            AckAction::Nak => "nak",
            AckAction::Progress => "progress",
            AckAction::Term => "term",
        }
    }
}

/// The offsets an `Ack` names: a msgpack bin of one or more ranges of [`ACK_RANGE_LEN`] bytes,
/// each the first offset (u64) and how many follow it (u32, at least 1), big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRanges<'a>(&'a [u8]);

/// Why bytes are not [`AckRanges`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckRangesError {
    /// No range at all.
    #[error("names no offsets")]
    Empty,
    /// A length that is not a whole number of ranges.
    #[error("{0} bytes is not a whole number of 12-byte ranges")]
    Length(usize),
    /// A range of 0 offsets, or one past the last offset.
    #[error("range {0} is empty or runs past the last offset")]
    Range(usize),
}

impl<'a> AckRanges<'a> {
    /// Checks and wraps the bytes of the bin.
    pub fn new(bytes: &'a [u8]) -> Result<Self, AckRangesError> {
        if bytes.is_empty() {
            return Err(AckRangesError::Empty);
        }
        if bytes.len() % ACK_RANGE_LEN != 0 {
            return Err(AckRangesError::Length(bytes.len()));
        }
        let ranges = AckRanges(bytes);
        for (i, (first, count)) in ranges.iter().enumerate() {
            if count == 0 || first.checked_add(u64::from(count)).is_none() {
                return Err(AckRangesError::Range(i));
            }
        }
        Ok(ranges)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// How many ranges there are.
    pub fn len(&self) -> usize {
        self.0.len() / ACK_RANGE_LEN
    }

    /// Never true: a valid value names at least one range.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each range as its first offset and count.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + 'a {
        self.0.chunks_exact(ACK_RANGE_LEN).map(|c| {
            let first = u64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
            let count = u32::from_be_bytes(c[8..].try_into().expect("4 bytes"));
            (first, count)
        })
    }

    /// Every offset named, range by range.
    pub fn offsets(&self) -> impl Iterator<Item = u64> + 'a {
        self.iter()
            .flat_map(|(first, count)| first..first + u64::from(count))
    }

    /// Appends one range to `buf`, merging it into the last one when it follows on from it.
    /// Ranges built this way from offsets in any order are valid [`AckRanges`] bytes as long as
    /// at least one was added.
    pub fn push(buf: &mut Vec<u8>, offset: u64) {
        let n = buf.len();
        if n >= ACK_RANGE_LEN {
            let last = &mut buf[n - ACK_RANGE_LEN..];
            let first = u64::from_be_bytes(last[..8].try_into().expect("8 bytes"));
            let count = u32::from_be_bytes(last[8..].try_into().expect("4 bytes"));
            if count < u32::MAX && first + u64::from(count) == offset {
                last[8..].copy_from_slice(&(count + 1).to_be_bytes());
                return;
            }
        }
        buf.extend_from_slice(&offset.to_be_bytes());
        buf.extend_from_slice(&1u32.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_merges_consecutive_offsets() {
        let mut buf = Vec::new();
        for o in [5, 6, 7, 9, 3, 4] {
            AckRanges::push(&mut buf, o);
        }
        let ranges = AckRanges::new(&buf).unwrap();
        assert_eq!(
            ranges.iter().collect::<Vec<_>>(),
            vec![(5, 3), (9, 1), (3, 2)]
        );
        assert_eq!(ranges.offsets().collect::<Vec<_>>(), vec![5, 6, 7, 9, 3, 4]);
    }

    #[test]
    fn refuses_bad_ranges() {
        assert_eq!(AckRanges::new(&[]), Err(AckRangesError::Empty));
        assert_eq!(AckRanges::new(&[0; 13]), Err(AckRangesError::Length(13)));
        assert_eq!(AckRanges::new(&[0; 12]), Err(AckRangesError::Range(0)));
        let mut past = u64::MAX.to_be_bytes().to_vec();
        past.extend_from_slice(&1u32.to_be_bytes());
        assert_eq!(AckRanges::new(&past), Err(AckRangesError::Range(0)));
    }

    #[test]
    fn actions_round_trip() {
        for n in 0..=255u8 {
            if let Some(a) = AckAction::from_u8(n) {
                assert_eq!(a.to_u8(), n);
            } else {
                assert!(n > 3);
            }
        }
    }
}
