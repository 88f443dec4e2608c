//! The codec of the two frames that carry messages, `Publish` and `Deliver`, byte by byte.
//!
//! They are most of the traffic, and going through serde (or rmp's generic readers and writers)
//! costs several times what the bytes need; and their batches are kept as the encoded bytes
//! they arrived as, which serde cannot lend. Encoding writes the shortest form of every header,
//! as the serde impls of the other frames do; decoding accepts every width msgpack allows, as
//! they do too.

use crate::apiv2::{Frame, kind};
use crate::batch::{self, Batch};
use crate::error::DecodeError;
use crate::header::{self, MAX_HEADER};

/// Encodes `Publish` and `Deliver` bodies; returns false for every other frame.
#[inline]
pub(crate) fn encode(frame: &Frame<'_>, buf: &mut Vec<u8>) -> bool {
    match *frame {
        Frame::Publish { topic, batch } => {
            buf.reserve(2 + MAX_HEADER + topic.len() + batch.encoded_len());
            buf.extend_from_slice(&[0x93, kind::PUBLISH]);
            header::put_str(buf, topic);
            batch.encode(buf);
        }
        Frame::Deliver {
            topic,
            offset,
            time,
            batch,
        } => {
            buf.reserve(2 + 3 * MAX_HEADER + topic.len() + batch.encoded_len());
            buf.extend_from_slice(&[0x95, kind::DELIVER]);
            header::put_str(buf, topic);
            header::put_uint(buf, offset);
            header::put_uint(buf, time);
            batch.encode(buf);
        }
        _ => return false,
    }
    true
}

/// Appends a whole `Deliver` frame, length prefix included, of `batch` stored at `time` from
/// `offset` on: the frame the broker keeps for each publish it stores.
#[inline]
pub fn encode_delivery(buf: &mut Vec<u8>, topic: &str, offset: u64, time: u64, batch: &Batch<'_>) {
    let total = delivery_len(topic, offset, time, batch);
    let body = u32::try_from(total - crate::HEADER_LEN).expect("frame body over 4 GiB");
    buf.reserve(total);
    let start = buf.len();
    buf.extend_from_slice(&body.to_be_bytes());
    buf.extend_from_slice(&[0x95, kind::DELIVER]);
    header::put_str(buf, topic);
    header::put_uint(buf, offset);
    header::put_uint(buf, time);
    batch.encode(buf);
    debug_assert_eq!(buf.len() - start, total, "delivery_len is exact");
}

/// Appends a whole `Assign` frame, length prefix included: the notice the broker writes before
/// each run it gives a group member, once per run, so it is written byte by byte too. The
/// bytes are those of [`Frame::encode`].
#[inline]
pub fn encode_assign(
    buf: &mut Vec<u8>,
    topic: &str,
    group: &str,
    attempt: u32,
    first: u64,
    count: u32,
) {
    let start = buf.len();
    buf.reserve(
        crate::HEADER_LEN + 2 + 2 * MAX_HEADER + topic.len() + group.len() + 3 * MAX_HEADER,
    );
    buf.extend_from_slice(&[0; crate::HEADER_LEN]);
    buf.extend_from_slice(&[0x96, kind::ASSIGN]);
    header::put_str(buf, topic);
    header::put_str(buf, group);
    header::put_uint(buf, u64::from(attempt));
    header::put_uint(buf, first);
    header::put_uint(buf, u64::from(count));
    let body = u32::try_from(buf.len() - start - crate::HEADER_LEN).expect("a small frame");
    buf[start..start + crate::HEADER_LEN].copy_from_slice(&body.to_be_bytes());
}

/// The bytes [`encode_delivery`] appends for `batch` of `topic` at `offset` and `time`.
#[inline]
pub fn delivery_len(topic: &str, offset: u64, time: u64, batch: &Batch<'_>) -> usize {
    crate::HEADER_LEN
        + 2
        + header::str_len(topic.len())
        + topic.len()
        + header::uint_len(offset)
        + header::uint_len(time)
        + batch.encoded_len()
}

/// The topic, offset and time at the head of a `Deliver` body, read without walking its batch;
/// `None` when the body does not start like a `Deliver`.
pub fn delivery_head(body: &[u8]) -> Option<(&str, u64, u64)> {
    let (5, rest) = header::array_len(body)? else {
        return None;
    };
    let (k, rest) = header::uint(rest)?;
    if k != u64::from(kind::DELIVER) {
        return None;
    }
    let (topic, rest) = header::str(rest)?;
    let (offset, rest) = header::uint(rest)?;
    let (time, _) = header::uint(rest)?;
    Some((topic, offset, time))
}

/// Decodes a `Publish` or `Deliver` body; `Ok(None)` when the body is not one of them.
#[inline]
pub(crate) fn parse(body: &[u8]) -> Result<Option<Frame<'_>>, DecodeError> {
    let Some((len, rest)) = header::array_len(body) else {
        return Ok(None);
    };
    let Some((k, rest)) = header::uint(rest) else {
        return Ok(None);
    };
    let malformed = |what: &str| DecodeError::Malformed(what.to_owned());
    let (frame, rest) = if k == u64::from(kind::PUBLISH) {
        if len != 3 {
            return Err(count_error("Publish", len, 3, &["topic", "messages"]));
        }
        let (topic, rest) = header::str(rest)
            .ok_or_else(|| malformed("Publish: field `topic`: not a UTF-8 str"))?;
        let (batch, rest) =
            batch::parse(rest, true).map_err(|e| malformed(&format!("Publish: {e}")))?;
        (Frame::Publish { topic, batch }, rest)
    } else if k == u64::from(kind::DELIVER) {
        if len != 5 {
            return Err(count_error(
                "Deliver",
                len,
                5,
                &["topic", "offset", "time", "messages"],
            ));
        }
        let (topic, rest) = header::str(rest)
            .ok_or_else(|| malformed("Deliver: field `topic`: not a UTF-8 str"))?;
        let (offset, rest) = header::uint(rest)
            .ok_or_else(|| malformed("Deliver: field `offset`: not an unsigned int"))?;
        let (time, rest) = header::uint(rest)
            .ok_or_else(|| malformed("Deliver: field `time`: not an unsigned int"))?;
        let (batch, rest): (Batch<'_>, _) =
            batch::parse(rest, false).map_err(|e| malformed(&format!("Deliver: {e}")))?;
        if offset.checked_add(batch.len() as u64 - 1).is_none() {
            return Err(malformed("Deliver: offsets past 2^64"));
        }
        (
            Frame::Deliver {
                topic,
                offset,
                time,
                batch,
            },
            rest,
        )
    } else {
        return Ok(None);
    };
    // Bytes after the array are allowed and ignored, as for every frame (section 3).
    let _ = rest;
    Ok(Some(frame))
}

/// The error for a frame array of `len` elements where its kind has `want`, worded as the serde
/// path words it for the other frames.
fn count_error(frame: &str, len: u32, want: u32, fields: &[&str]) -> DecodeError {
    DecodeError::Malformed(match fields.get(len.saturating_sub(1) as usize) {
        Some(missing) if len < want => format!("{frame}: missing field `{missing}`"),
        _ => format!("{frame}: more elements than the frame has fields"),
    })
}
