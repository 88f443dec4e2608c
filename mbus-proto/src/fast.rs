//! Hand-rolled paths for the two frames that carry messages, `Publish` and `Deliver`.
//!
//! They are most of the traffic, and going through serde costs several times what the bytes
//! need. Each path produces exactly what the serde impls produce; a decode that meets anything
//! other than the canonical shape returns `None`, and the caller falls back to serde, which
//! accepts every other valid encoding and words the errors.

use rmp::decode::{Bytes, read_array_len, read_bin_len, read_int, read_str_len};
use rmp::encode::{write_array_len, write_bin, write_pfix, write_str, write_uint};

use crate::apiv1::{Frame, kind};

/// Encodes `Publish` and `Deliver` bodies; returns false for every other frame.
pub(crate) fn encode(frame: &Frame<'_>, buf: &mut Vec<u8>) -> bool {
    const VEC: &str = "writing to a Vec cannot fail";
    match *frame {
        Frame::Publish { topic, data } => {
            write_array_len(buf, 3).expect(VEC);
            write_pfix(buf, kind::PUBLISH).expect(VEC);
            write_str(buf, topic).expect(VEC);
            write_bin(buf, data).expect(VEC);
        }
        Frame::Deliver {
            topic,
            offset,
            data,
        } => {
            write_array_len(buf, 4).expect(VEC);
            write_pfix(buf, kind::DELIVER).expect(VEC);
            write_str(buf, topic).expect(VEC);
            write_uint(buf, offset).expect(VEC);
            write_bin(buf, data).expect(VEC);
        }
        _ => return false,
    }
    true
}

/// Decodes a canonical `Publish` or `Deliver` body, or returns `None`.
pub(crate) fn parse(body: &[u8]) -> Option<Frame<'_>> {
    let mut rd = Bytes::new(body);
    let len = read_array_len(&mut rd).ok()?;
    let k: u8 = read_int(&mut rd).ok()?;
    let frame = match (k, len) {
        (kind::PUBLISH, 3) => {
            let topic = str(&mut rd)?;
            Frame::Publish {
                topic,
                data: bin(&mut rd)?,
            }
        }
        (kind::DELIVER, 4) => {
            let topic = str(&mut rd)?;
            let offset = read_int(&mut rd).ok()?;
            Frame::Deliver {
                topic,
                offset,
                data: bin(&mut rd)?,
            }
        }
        _ => return None,
    };
    Some(frame)
}

fn take<'a>(rd: &mut Bytes<'a>, n: u32) -> Option<&'a [u8]> {
    let rest = rd.remaining_slice();
    let (head, tail) = rest.split_at_checked(n as usize)?;
    *rd = Bytes::new(tail);
    Some(head)
}

fn str<'a>(rd: &mut Bytes<'a>) -> Option<&'a str> {
    let n = read_str_len(rd).ok()?;
    std::str::from_utf8(take(rd, n)?).ok()
}

fn bin<'a>(rd: &mut Bytes<'a>) -> Option<&'a [u8]> {
    let n = read_bin_len(rd).ok()?;
    take(rd, n)
}
