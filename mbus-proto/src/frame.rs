//! The length-prefixed codec: splitting a byte stream into frames and appending frames to a buffer.
//!
//! A frame is a 4-byte big-endian body length followed by the body. The limit on the body size is
//! enforced from the prefix alone, before a receiver buffers or allocates for the body, and an
//! incomplete frame is a normal result (`Ok(None)`), not an error.

use serde::Deserialize;

use crate::apiv2::{Frame, PROTOCOL_VERSION, kind};
use crate::error::DecodeError;
use crate::header;

/// Bytes in the length prefix that precedes every frame body.
pub const HEADER_LEN: usize = 4;

/// How deep msgpack containers may nest in a body. A valid frame is one array of scalars, but
/// skipping an unexpected element recurses once per level, and rmp-serde's own limit (1024) is
/// more than a 2 MiB thread stack survives in a debug build: a 1 KB frame could crash a receiver.
const MAX_NESTING: usize = 16;

/// The default largest frame body, in bytes, that the broker and clients accept: 1 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;

/// The largest payload a `Publish` of one message without headers to `topic` can carry within
/// a frame body of `max_frame` bytes: the limit less the array header, the kind, the topic's
/// str, the batch's and the message's array headers, the delta and the payload's bin header,
/// as the encoder writes them.
pub fn max_publish_data(topic: &str, max_frame: u32) -> usize {
    let fixed = publish_len(topic, 3);
    // The bin header grows with the payload: the largest payload is under whichever header
    // leaves the most room while still being the header of that payload's length.
    [(2, 0xff), (3, 0xffff), (5, u32::MAX as usize)]
        .into_iter()
        .filter_map(|(header, most)| {
            let room = (max_frame as usize).checked_sub(fixed + header)?;
            Some(room.min(most))
        })
        .max()
        .unwrap_or(0)
}

/// The body length of a `Publish` to `topic` whose batch encodes to `batch_len` bytes (see
/// [`crate::Batch::encoded_len`]): the array header, the kind, the topic's str and the batch.
pub fn publish_len(topic: &str, batch_len: usize) -> usize {
    let str_header = match topic.len() {
        0..32 => 1,
        32..0x100 => 2,
        0x100..0x1_0000 => 3,
        _ => 5,
    };
    2 + str_header + topic.len() + batch_len
}

/// Looks at the start of `buf` and tells whether a whole frame is there.
///
/// Returns `Ok(Some(n))` when the first `n` bytes of `buf` are one frame (prefix included),
/// `Ok(None)` when more bytes are needed, and [`DecodeError::TooLarge`] as soon as the prefix
/// announces a body over `max_frame`, however little of it has arrived.
#[inline]
pub fn check(buf: &[u8], max_frame: u32) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix);
    if len > max_frame {
        return Err(DecodeError::TooLarge {
            len,
            max: max_frame,
        });
    }
    let total = HEADER_LEN + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// Decodes the first frame of `buf`.
///
/// Returns the frame and the number of bytes it took, or `Ok(None)` while the frame is incomplete.
/// The frame borrows from `buf`.
#[inline]
pub fn decode(buf: &[u8], max_frame: u32) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    match check(buf, max_frame)? {
        Some(n) => Ok(Some((Frame::parse(&buf[HEADER_LEN..n])?, n))),
        None => Ok(None),
    }
}

impl<'a> Frame<'a> {
    /// Parses a frame body (the bytes after the length prefix).
    #[inline]
    pub fn parse(body: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        // `Publish` and `Deliver` first: most of the traffic, whose kind `fast::parse` checks
        // itself; the kind and version checks of every other frame come next.
        if let Some(frame) = crate::fast::parse(body)? {
            return Ok(frame);
        }
        precheck(body)?;
        let mut de = rmp_serde::Deserializer::from_read_ref(body);
        de.set_max_depth(MAX_NESTING);
        Frame::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// Appends the frame, length prefix included, to `buf`.
    ///
    /// # Panics
    ///
    /// If the body would exceed `u32::MAX` bytes, which no receiver could accept anyway.
    #[inline]
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(&[0; HEADER_LEN]);
        if !crate::fast::encode(self, buf) {
            rmp_serde::encode::write(buf, self).expect("encoding a frame into a Vec cannot fail");
        }
        let len = u32::try_from(buf.len() - start - HEADER_LEN).expect("frame body over 4 GiB");
        buf[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// The frame encoded into a new buffer, length prefix included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf
    }
}

/// Gives the errors that a program must tell apart their own type before serde sees the body:
/// a kind this version does not define, and a `Hello` of another version, whose later fields
/// need not have the shape this version gives them.
fn precheck(body: &[u8]) -> Result<(), DecodeError> {
    let Some((len, rest)) = header::array_len(body) else {
        return Err(DecodeError::Malformed(
            "frame body is not a msgpack array".into(),
        ));
    };
    if len == 0 {
        return Err(DecodeError::Malformed("frame array is empty".into()));
    }
    let Some((k, rest)) = header::uint(rest) else {
        return Ok(()); // Not an unsigned integer: serde reports the type error.
    };
    if k == 0 || k > u64::from(kind::LAST) {
        return Err(DecodeError::UnknownKind(u8::try_from(k).unwrap_or(u8::MAX)));
    }
    if k == u64::from(kind::HELLO) && len >= 2 {
        if let Some((version, _)) = header::uint(rest) {
            if version != u64::from(PROTOCOL_VERSION) {
                return Err(DecodeError::UnsupportedVersion(
                    u8::try_from(version).unwrap_or(u8::MAX),
                ));
            }
        }
    }
    Ok(())
}
