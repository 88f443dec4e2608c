//! Hand-rolled paths for the two frames that carry messages, `Publish` and `Deliver`.
//!
//! They are most of the traffic, and going through serde (or rmp's generic readers and writers)
//! costs several times what the bytes need. Each path produces exactly what the serde impls
//! produce; a decode that meets anything other than the shape an encoder writes returns `None`,
//! and the caller falls back to serde, which accepts every other valid encoding and words the
//! errors.

use crate::apiv1::{Frame, kind};
use crate::header::{self, MAX_HEADER};

/// Array header of a `Publish`: three elements.
const PUBLISH_ARRAY: u8 = 0x93;
/// Array header of a `Deliver`: four elements.
const DELIVER_ARRAY: u8 = 0x94;

/// Encodes `Publish` and `Deliver` bodies; returns false for every other frame.
pub(crate) fn encode(frame: &Frame<'_>, buf: &mut Vec<u8>) -> bool {
    match *frame {
        Frame::Publish { topic, data } => {
            buf.reserve(2 + 2 * MAX_HEADER + topic.len() + data.len());
            buf.extend_from_slice(&[PUBLISH_ARRAY, kind::PUBLISH]);
            header::put_str(buf, topic);
            header::put_bin(buf, data);
        }
        Frame::Deliver {
            topic,
            offset,
            data,
        } => {
            buf.reserve(2 + 3 * MAX_HEADER + topic.len() + data.len());
            buf.extend_from_slice(&[DELIVER_ARRAY, kind::DELIVER]);
            header::put_str(buf, topic);
            header::put_uint(buf, offset);
            header::put_bin(buf, data);
        }
        _ => return false,
    }
    true
}

/// Decodes a `Publish` or `Deliver` body with a fixarray header and a one-byte kind, or returns
/// `None`.
pub(crate) fn parse(body: &[u8]) -> Option<Frame<'_>> {
    match *body {
        [PUBLISH_ARRAY, kind::PUBLISH, ref rest @ ..] => {
            let (topic, rest) = header::str(rest)?;
            let (data, _) = header::bin(rest)?;
            Some(Frame::Publish { topic, data })
        }
        [DELIVER_ARRAY, kind::DELIVER, ref rest @ ..] => {
            let (topic, rest) = header::str(rest)?;
            let (offset, rest) = header::uint(rest)?;
            let (data, _) = header::bin(rest)?;
            Some(Frame::Deliver {
                topic,
                offset,
                data,
            })
        }
        _ => None,
    }
}
