//! The bytes of on-disk format version 2: file names, the record header and what makes a record
//! valid. `STORAGE.md` at the repository root describes the same rules for other readers.

use mbus_proto::HEADER_LEN;

/// The format version written to the data directory's marker file.
pub const FORMAT_VERSION: u32 = 2;
/// The marker file at the root of a data directory.
pub const VERSION_FILE: &str = "VERSION";
/// The directory under the data directory that holds one directory per topic.
pub const TOPICS_DIR: &str = "topics";
/// The directory in a topic's directory that holds its consumer groups' files.
pub const GROUPS_DIR: &str = "groups";
/// The file in a topic's directory that holds its idempotent producers' publishes; no segment
/// name looks like it.
pub const PRODUCERS_FILE: &str = "producers";
/// Extension of segment files, which hold the records.
pub const LOG_EXT: &str = "log";
/// Extension of index files, which hold one record position and time per offset.
pub const IDX_EXT: &str = "idx";

/// Bytes of the crc32 that precedes each frame in a segment file.
pub const CRC_LEN: usize = 4;
/// Bytes before a record's frame body: the crc and the frame's length prefix.
pub const RECORD_HEADER: usize = CRC_LEN + HEADER_LEN;
/// The fewest bytes a message takes inside a record: `92 00 c4 00`, no headers, no data.
pub const MIN_MESSAGE: u64 = 4;
/// Bytes of one index entry: a segment file position and the record's time, each u64
/// little-endian.
pub const IDX_ENTRY: u64 = 16;
/// The file name of a segment's log or index: the base offset as 20 decimal digits, so that names
/// sort like offsets.
pub fn segment_name(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

/// The base offset and extension of a segment file name, or `None` for any other name.
pub fn parse_segment_name(name: &str) -> Option<(u64, &str)> {
    let (digits, ext) = name.split_once('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if ext != LOG_EXT && ext != IDX_EXT {
        return None;
    }
    Some((digits.parse().ok()?, ext))
}

/// The crc stored before a frame: crc32 (IEEE, as zlib and Ethernet) of the whole frame, length
/// prefix included, so that a damaged length is caught like a damaged body.
pub fn frame_crc(frame: &[u8]) -> u32 {
    crc32fast::hash(frame)
}

/// The crc and body length from the first [`RECORD_HEADER`] bytes of a record.
pub fn parse_header(header: &[u8; RECORD_HEADER]) -> (u32, u32) {
    let crc = u32::from_le_bytes(header[..CRC_LEN].try_into().expect("4 bytes"));
    let len = u32::from_be_bytes(header[CRC_LEN..].try_into().expect("4 bytes"));
    (crc, len)
}

/// The first bytes every frame body of one topic starts with: the canonical msgpack encoding of
/// `[8, topic` (fixarray of 5, kind 8, the topic as the shortest str). A record proves which
/// topic and offset it holds by these bytes followed by the offset, so that an index entry that
/// points at the wrong record is caught, and a scan that lost its place can find records again.
#[derive(Debug, Clone)]
pub struct Identity {
    prefix: Vec<u8>,
}

impl Identity {
    /// The identity of `topic`'s records; the name must be valid (at most 255 bytes).
    pub fn new(topic: &str) -> Self {
        let mut prefix = vec![0x95, 0x08];
        let len = u8::try_from(topic.len()).expect("topic names are at most 255 bytes");
        if len < 32 {
            prefix.push(0xa0 | len);
        } else {
            prefix.extend_from_slice(&[0xd9, len]);
        }
        prefix.extend_from_slice(topic.as_bytes());
        Identity { prefix }
    }

    /// The bytes every body of this topic starts with, before the offset.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether `body` (or a long enough start of it) is the `Deliver` of this topic at `offset`,
    /// in the canonical encoding the broker writes.
    pub fn matches(&self, body: &[u8], offset: u64) -> bool {
        let Some(rest) = body.strip_prefix(self.prefix.as_slice()) else {
            return false;
        };
        let mut uint = [0; 9];
        let n = encode_uint(offset, &mut uint);
        rest.starts_with(&uint[..n])
    }

    /// The first offset and the message count a body of this topic claims, if it starts like
    /// one: it holds offsets `first..first + count`.
    pub fn claim(&self, body: &[u8]) -> Option<(u64, u64)> {
        let rest = body.strip_prefix(self.prefix.as_slice())?;
        let (first, rest) = read_uint(rest)?;
        let (_, rest) = read_uint(rest)?;
        let count = match *rest.first()? {
            m @ 0x91..=0x9f => u64::from(m & 0x0f),
            0xdc => u64::from(u16::from_be_bytes(*rest.get(1..)?.first_chunk()?)),
            0xdd => u64::from(u32::from_be_bytes(*rest.get(1..)?.first_chunk()?)),
            _ => return None,
        };
        (count > 0 && first.checked_add(count - 1).is_some()).then_some((first, count))
    }

    /// The time a body of this topic holds after its offset, if the body starts like one.
    pub fn time_of(&self, body: &[u8]) -> Option<u64> {
        let rest = body.strip_prefix(self.prefix.as_slice())?;
        let (_, rest) = read_uint(rest)?;
        read_uint(rest).map(|(v, _)| v)
    }
}

/// Reads an unsigned msgpack integer in its shortest form, as the broker writes them.
pub(super) fn read_uint(b: &[u8]) -> Option<(u64, &[u8])> {
    let (&marker, rest) = b.split_first()?;
    let width = match marker {
        0x00..=0x7f => return Some((u64::from(marker), rest)),
        0xcc => 1,
        0xcd => 2,
        0xce => 4,
        0xcf => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    Some((
        bytes.iter().fold(0, |v, &b| (v << 8) | u64::from(b)),
        &rest[width..],
    ))
}

/// Writes the shortest msgpack encoding of an unsigned integer, as the protocol's senders must,
/// and returns its length.
fn encode_uint(v: u64, out: &mut [u8; 9]) -> usize {
    let (marker, width) = match v {
        0..=0x7f => {
            out[0] = v as u8;
            return 1;
        }
        0x80..=0xff => (0xcc, 1),
        0x100..=0xffff => (0xcd, 2),
        0x1_0000..=0xffff_ffff => (0xce, 4),
        _ => (0xcf, 8),
    };
    out[0] = marker;
    out[1..=width].copy_from_slice(&v.to_be_bytes()[8 - width..]);
    1 + width
}

#[cfg(test)]
mod tests {
    use super::*;
    use mbus_proto::{Batch, Frame};

    fn body(topic: &str, offset: u64) -> Vec<u8> {
        let frame = Frame::Deliver {
            topic,
            offset,
            time: offset ^ 0xff,
            batch: Batch::one(b"xyz"),
        }
        .to_bytes();
        frame[HEADER_LEN..].to_vec()
    }

    #[test]
    fn identity_agrees_with_the_encoder() {
        let long = "t".repeat(255);
        for topic in ["a", "orders", &"x".repeat(31), &"y".repeat(32), &long] {
            let id = Identity::new(topic);
            for offset in [
                0,
                1,
                0x7f,
                0x80,
                0xff,
                0x100,
                0xffff,
                0x1_0000,
                u32::MAX as u64,
                u32::MAX as u64 + 1,
                u64::MAX,
            ] {
                let b = body(topic, offset);
                assert!(b.starts_with(id.prefix()), "{topic} {offset}");
                assert!(id.matches(&b, offset), "{topic} {offset}");
                assert!(!id.matches(&b, offset ^ 1), "{topic} {offset}");
                assert_eq!(id.time_of(&b), Some(offset ^ 0xff), "{topic} {offset}");
                assert_eq!(id.claim(&b), Some((offset, 1)), "{topic} {offset}");
            }
        }
        assert!(!Identity::new("orders").matches(&body("order", 3), 3));
        assert!(!Identity::new("order").matches(&body("orders", 3), 3));
    }

    #[test]
    fn the_smallest_message_is_min_message() {
        // One empty message takes the batch's array header and MIN_MESSAGE bytes.
        assert_eq!(Batch::one(b"").encoded_len() as u64, 1 + MIN_MESSAGE);
    }

    #[test]
    fn segment_names_round_trip_and_reject_others() {
        assert_eq!(segment_name(42, LOG_EXT), "00000000000000000042.log");
        assert_eq!(
            parse_segment_name("00000000000000000042.idx"),
            Some((42, IDX_EXT))
        );
        assert_eq!(
            parse_segment_name(&segment_name(u64::MAX, LOG_EXT)),
            Some((u64::MAX, LOG_EXT))
        );
        for bad in [
            "42.log",
            "0000000000000000004a.log",
            "00000000000000000042.tmp",
            "00000000000000000042",
            "99999999999999999999.log",
            "VERSION",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
