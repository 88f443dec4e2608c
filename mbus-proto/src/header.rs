//! The msgpack headers that the hot paths read and write byte by byte: array, unsigned integer,
//! str and bin.
//!
//! Writers always choose the shortest form, as rmp and rmp-serde do, so that a frame encoded here
//! is byte-identical to the serde encoding. Readers accept every form of each header and return
//! the value with the rest of the input, or `None` on any other marker or a short input.

/// Reads an array header: fixarray, array 16 or array 32.
#[inline]
pub(crate) fn array_len(b: &[u8]) -> Option<(u32, &[u8])> {
    match *b.first()? {
        m @ 0x90..=0x9f => Some((u32::from(m & 0x0f), &b[1..])),
        0xdc => Some((u32::from(be16(b)?), &b[3..])),
        0xdd => Some((be32(b)?, &b[5..])),
        _ => None,
    }
}

/// Reads an integer that is not negative, in any of its encodings.
///
/// The signed encodings count too: serde accepts a non-negative `int 8` where a `u8` is expected,
/// so a value written that way must read the same here.
#[inline]
pub(crate) fn uint(b: &[u8]) -> Option<(u64, &[u8])> {
    match *b.first()? {
        v @ 0x00..=0x7f => Some((u64::from(v), &b[1..])),
        0xcc => Some((u64::from(*b.get(1)?), &b[2..])),
        0xcd => Some((u64::from(be16(b)?), &b[3..])),
        0xce => Some((u64::from(be32(b)?), &b[5..])),
        0xcf => Some((be64(b)?, &b[9..])),
        0xd0 => non_negative(i8::from_be_bytes([*b.get(1)?]).into(), &b[2..]),
        0xd1 => non_negative(
            i16::from_be_bytes(*b.get(1..)?.first_chunk()?).into(),
            &b[3..],
        ),
        0xd2 => non_negative(
            i32::from_be_bytes(*b.get(1..)?.first_chunk()?).into(),
            &b[5..],
        ),
        0xd3 => non_negative(i64::from_be_bytes(*b.get(1..)?.first_chunk()?), &b[9..]),
        _ => None,
    }
}

/// Reads a str: fixstr, str 8, str 16 or str 32, whose bytes must be UTF-8.
#[inline]
pub(crate) fn str(b: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = match *b.first()? {
        m @ 0xa0..=0xbf => (u32::from(m & 0x1f), &b[1..]),
        0xd9 => (u32::from(*b.get(1)?), &b[2..]),
        0xda => (u32::from(be16(b)?), &b[3..]),
        0xdb => (be32(b)?, &b[5..]),
        _ => return None,
    };
    let (s, rest) = rest.split_at_checked(len as usize)?;
    Some((std::str::from_utf8(s).ok()?, rest))
}

/// Reads a bin: bin 8, bin 16 or bin 32.
#[inline]
pub(crate) fn bin(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = match *b.first()? {
        0xc4 => (u32::from(*b.get(1)?), &b[2..]),
        0xc5 => (u32::from(be16(b)?), &b[3..]),
        0xc6 => (be32(b)?, &b[5..]),
        _ => return None,
    };
    rest.split_at_checked(len as usize)
}

/// Appends the shortest encoding of `v`.
#[inline]
pub(crate) fn put_uint(buf: &mut Vec<u8>, v: u64) {
    match v {
        0..0x80 => buf.push(v as u8),
        0x80..0x100 => buf.extend_from_slice(&[0xcc, v as u8]),
        0x100..0x1_0000 => put_marked(buf, 0xcd, &(v as u16).to_be_bytes()),
        0x1_0000..0x1_0000_0000 => put_marked(buf, 0xce, &(v as u32).to_be_bytes()),
        _ => put_marked(buf, 0xcf, &v.to_be_bytes()),
    }
}

/// Bytes of the shortest encoding of `v`.
#[inline]
pub(crate) fn uint_len(v: u64) -> usize {
    match v {
        0..0x80 => 1,
        0x80..0x100 => 2,
        0x100..0x1_0000 => 3,
        0x1_0000..0x1_0000_0000 => 5,
        _ => 9,
    }
}

/// Bytes of the shortest str header for `n` bytes.
#[inline]
pub(crate) fn str_len(n: usize) -> usize {
    match n {
        0..32 => 1,
        32..0x100 => 2,
        0x100..0x1_0000 => 3,
        _ => 5,
    }
}

/// Appends the shortest array header for `n` elements.
#[inline]
pub(crate) fn put_array_len(buf: &mut Vec<u8>, n: usize) {
    match n {
        0..16 => buf.push(0x90 | n as u8),
        16..0x1_0000 => put_marked(buf, 0xdc, &(n as u16).to_be_bytes()),
        _ => put_marked(buf, 0xdd, &len32(n).to_be_bytes()),
    }
}

/// Appends `s` as a str with the shortest header.
#[inline]
pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    let n = s.len();
    match n {
        0..32 => buf.push(0xa0 | n as u8),
        32..0x100 => buf.extend_from_slice(&[0xd9, n as u8]),
        0x100..0x1_0000 => put_marked(buf, 0xda, &(n as u16).to_be_bytes()),
        _ => put_marked(buf, 0xdb, &len32(n).to_be_bytes()),
    }
    buf.extend_from_slice(s.as_bytes());
}

/// Appends `data` as a bin with the shortest header.
#[inline]
pub(crate) fn put_bin(buf: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    match n {
        0..0x100 => buf.extend_from_slice(&[0xc4, n as u8]),
        0x100..0x1_0000 => put_marked(buf, 0xc5, &(n as u16).to_be_bytes()),
        _ => put_marked(buf, 0xc6, &len32(n).to_be_bytes()),
    }
    buf.extend_from_slice(data);
}

/// The most bytes any header written here takes.
pub(crate) const MAX_HEADER: usize = 9;

#[inline]
fn put_marked(buf: &mut Vec<u8>, marker: u8, be: &[u8]) {
    buf.push(marker);
    buf.extend_from_slice(be);
}

#[inline]
fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("msgpack strings and bins are under 4 GiB")
}

#[inline]
fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(1..)?.first_chunk()?))
}

#[inline]
fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(*b.get(1..)?.first_chunk()?))
}

#[inline]
fn be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(*b.get(1..)?.first_chunk()?))
}

#[inline]
fn non_negative(v: i64, rest: &[u8]) -> Option<(u64, &[u8])> {
    u64::try_from(v).ok().map(|v| (v, rest))
}
