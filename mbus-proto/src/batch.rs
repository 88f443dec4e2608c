//! Batches: the run of messages a `Publish` or a `Deliver` carries, each with its headers.
//!
//! On the wire a batch is a msgpack array of messages, and a message is `[delta, data]` or
//! `[delta, data, headers]`: `delta` is milliseconds after the frame's base time (always 0 in a
//! `Publish`, whose time the broker sets), `data` a bin, `headers` an array of name (str) and
//! value (bin) alternating. A decoded [`Batch`] borrows the encoded elements and hands out
//! [`MessageRef`]s as it is walked, so the broker can copy a published batch into its log as
//! one slice; [`BatchBuilder`] writes one.

use std::fmt;

use crate::header;

/// Most headers one message may carry.
pub const MAX_HEADERS: usize = 64;
/// Most bytes the names and values of one message's headers may hold together.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest header name, in bytes.
pub const MAX_HEADER_NAME: usize = 255;

/// One message of a batch, borrowed from the frame it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// Milliseconds after the frame's base time: the message's time is `base + delta`.
    pub delta: u32,
    /// The payload; the bus never looks inside it.
    pub data: &'a [u8],
    /// The message's headers, in the order the producer gave them.
    pub headers: Headers<'a>,
}

/// A message's headers: name and value pairs, names UTF-8, values bytes; a name may repeat.
#[derive(Clone, Copy, Default)]
pub struct Headers<'a> {
    /// How many pairs.
    count: usize,
    /// The encoded elements (names and values, without the array header).
    elements: &'a [u8],
}

impl<'a> Headers<'a> {
    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let mut rest = self.elements;
        (0..self.count).map(move |_| {
            let (name, r) = header::str(rest).expect("headers are validated");
            let (value, r) = header::bin(r).expect("headers are validated");
            rest = r;
            (name, value)
        })
    }

    /// The value of the first header named `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl PartialEq for Headers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.iter().eq(other.iter())
    }
}

impl Eq for Headers<'_> {}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The messages of one frame, at least one, borrowed from the bytes they were decoded from.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    repr: Repr<'a>,
}

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// One message without headers and with delta 0, the common case, held as its payload.
    One(&'a [u8]),
    /// Validated encoded messages, without the array header.
    Encoded { count: usize, elements: &'a [u8] },
}

impl<'a> Batch<'a> {
    /// A batch of one message without headers.
    #[inline]
    pub fn one(data: &'a [u8]) -> Self {
        Batch {
            repr: Repr::One(data),
        }
    }

    /// How many messages it holds.
    #[inline]
    pub fn len(&self) -> usize {
        match self.repr {
            Repr::One(_) => 1,
            Repr::Encoded { count, .. } => count,
        }
    }

    /// Always false: a batch holds at least one message.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The payload of its only message, when it is one message without headers.
    #[inline]
    pub fn single(&self) -> Option<&'a [u8]> {
        let mut it = self.iter();
        match (it.next(), it.next()) {
            (Some(m), None) if m.headers.is_empty() => Some(m.data),
            _ => None,
        }
    }

    /// The messages in order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = MessageRef<'a>> + 'a {
        let (count, mut rest, one) = match self.repr {
            Repr::One(data) => (1, &[][..], Some(data)),
            Repr::Encoded { count, elements } => (count, elements, None),
        };
        (0..count).map(move |_| match one {
            Some(data) => MessageRef {
                delta: 0,
                data,
                headers: Headers::default(),
            },
            None => {
                let (m, r) = message(rest, false).expect("batches are validated");
                rest = r;
                m
            }
        })
    }

    /// Its first message, and the rest when there is more.
    #[inline]
    pub fn split_first(&self) -> (MessageRef<'a>, Option<Batch<'a>>) {
        match self.repr {
            Repr::One(data) => (
                MessageRef {
                    delta: 0,
                    data,
                    headers: Headers::default(),
                },
                None,
            ),
            Repr::Encoded { count, elements } => {
                let (m, rest) = message(elements, false).expect("batches are validated");
                let rest = (count > 1).then_some(Batch {
                    repr: Repr::Encoded {
                        count: count - 1,
                        elements: rest,
                    },
                });
                (m, rest)
            }
        }
    }

    /// The parts a client keeps to find the batch again in its buffer: the message count, the
    /// bytes, and whether they are a lone payload rather than encoded messages.
    #[inline]
    pub(crate) fn parts(&self) -> (usize, &'a [u8], bool) {
        match self.repr {
            Repr::One(data) => (1, data, true),
            Repr::Encoded { count, elements } => (count, elements, false),
        }
    }

    /// The batch [`Batch::parts`] described, over the same bytes.
    #[inline]
    pub(crate) fn from_parts(count: usize, bytes: &'a [u8], one: bool) -> Self {
        let repr = if one {
            Repr::One(bytes)
        } else {
            Repr::Encoded {
                count,
                elements: bytes,
            }
        };
        Batch { repr }
    }

    /// Whether every message has delta 0, as in a publish: stored as it came, a batch's
    /// messages share one time.
    pub fn all_at_base(&self) -> bool {
        self.iter().all(|m| m.delta == 0)
    }

    /// Bytes its encoding takes, the array header included.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        match self.repr {
            Repr::One(data) => 3 + bin_header_len(data.len()) + data.len(),
            Repr::Encoded { count, elements } => array_header_len(count) + elements.len(),
        }
    }

    /// Appends its encoding, the shortest for each header, to `buf`.
    #[inline]
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self.repr {
            Repr::One(data) => {
                buf.extend_from_slice(&[0x91, 0x92, 0x00]);
                header::put_bin(buf, data);
            }
            Repr::Encoded { count, elements } => {
                header::put_array_len(buf, count);
                buf.extend_from_slice(elements);
            }
        }
    }
}

impl PartialEq for Batch<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Batch<'_> {}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Why a batch or its headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The batch is not an array of messages of the protocol's shape.
    #[error("{0}")]
    Malformed(&'static str),
    /// A message has more headers than [`MAX_HEADERS`].
    #[error("a message has {0} headers, the most is {MAX_HEADERS}")]
    TooManyHeaders(usize),
    /// A message's header names and values hold more than [`MAX_HEADER_BYTES`].
    #[error("a message's headers hold {0} bytes, the most is {MAX_HEADER_BYTES}")]
    HeadersTooLarge(usize),
    /// A header name is empty or longer than [`MAX_HEADER_NAME`].
    #[error("a header name of {0} bytes; names are 1 to {MAX_HEADER_NAME} bytes")]
    BadHeaderName(usize),
    /// A `Publish` message carries a time delta other than 0.
    #[error("a published message has time delta {0}; producers send 0")]
    PublishedDelta(u64),
}

/// Reads a batch array at the start of `b`, checking every message; `publish` requires every
/// delta to be 0. Returns the batch and the bytes after it.
#[inline]
pub(crate) fn parse(b: &[u8], publish: bool) -> Result<(Batch<'_>, &[u8]), BatchError> {
    // Most batches are one message without headers, as encoders write it: `91 92 00` and a bin.
    if let [0x91, 0x92, 0x00, ref rest @ ..] = *b {
        if let Some((data, rest)) = header::bin(rest) {
            return Ok((Batch::one(data), rest));
        }
    }
    let (count, mut rest) =
        header::array_len(b).ok_or(BatchError::Malformed("messages: not an array"))?;
    if count == 0 {
        return Err(BatchError::Malformed("messages: an empty batch"));
    }
    let start = rest;
    let mut first = None;
    for _ in 0..count {
        let (m, r) = message(rest, publish)?;
        first.get_or_insert(m);
        rest = r;
    }
    let elements = &start[..start.len() - rest.len()];
    let batch = match first {
        Some(m) if count == 1 && m.delta == 0 && m.headers.is_empty() => Batch::one(m.data),
        _ => Batch {
            repr: Repr::Encoded {
                count: count as usize,
                elements,
            },
        },
    };
    Ok((batch, rest))
}

/// Reads one message, checking its headers against the limits.
#[inline]
fn message(b: &[u8], publish: bool) -> Result<(MessageRef<'_>, &[u8]), BatchError> {
    let (n, rest) = header::array_len(b).ok_or(BatchError::Malformed("message: not an array"))?;
    if !(2..=3).contains(&n) {
        return Err(BatchError::Malformed(
            "message: an array of 2 or 3 elements [delta, data, headers]",
        ));
    }
    let (delta, rest) =
        header::uint(rest).ok_or(BatchError::Malformed("message delta: not an unsigned int"))?;
    if publish && delta != 0 {
        return Err(BatchError::PublishedDelta(delta));
    }
    let delta =
        u32::try_from(delta).map_err(|_| BatchError::Malformed("message delta over 2^32"))?;
    let (data, rest) = header::bin(rest).ok_or(BatchError::Malformed("message data: not a bin"))?;
    if n == 2 {
        return Ok((
            MessageRef {
                delta,
                data,
                headers: Headers::default(),
            },
            rest,
        ));
    }
    let (len, rest) =
        header::array_len(rest).ok_or(BatchError::Malformed("message headers: not an array"))?;
    let len = len as usize;
    if len == 0 || len % 2 == 1 {
        return Err(BatchError::Malformed(
            "message headers: an array of 1 or more name and value pairs",
        ));
    }
    let count = len / 2;
    if count > MAX_HEADERS {
        return Err(BatchError::TooManyHeaders(count));
    }
    let start = rest;
    let mut rest = rest;
    let mut total = 0usize;
    for _ in 0..count {
        let (name, r) =
            header::str(rest).ok_or(BatchError::Malformed("header name: not a UTF-8 str"))?;
        let (value, r) = header::bin(r).ok_or(BatchError::Malformed("header value: not a bin"))?;
        check_name(name)?;
        total += name.len() + value.len();
        rest = r;
    }
    if total > MAX_HEADER_BYTES {
        return Err(BatchError::HeadersTooLarge(total));
    }
    let headers = Headers {
        count,
        elements: &start[..start.len() - rest.len()],
    };
    Ok((
        MessageRef {
            delta,
            data,
            headers,
        },
        rest,
    ))
}

fn check_name(name: &str) -> Result<(), BatchError> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME {
        return Err(BatchError::BadHeaderName(name.len()));
    }
    Ok(())
}

/// Builds a batch to publish: messages are appended encoded, and [`BatchBuilder::batch`] lends
/// them out as a [`Batch`].
#[derive(Debug, Clone, Default)]
pub struct BatchBuilder {
    count: usize,
    elements: Vec<u8>,
    /// Where the message pushed last starts in `elements`, for [`BatchBuilder::undo_last`].
    last: Option<usize>,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a message with `headers`, which must be within the protocol's limits.
    pub fn push(&mut self, data: &[u8], headers: &[(&str, &[u8])]) -> Result<(), BatchError> {
        self.push_at(0, data, headers)
    }

    /// Appends a message `delta` milliseconds after the batch's base time, as a broker does in
    /// a delivery (a `Publish` carries delta 0 only).
    pub fn push_at(
        &mut self,
        delta: u32,
        data: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), BatchError> {
        check_headers(headers)?;
        self.last = Some(self.elements.len());
        let b = &mut self.elements;
        if headers.is_empty() {
            b.push(0x92);
            header::put_uint(b, u64::from(delta));
            header::put_bin(b, data);
        } else {
            b.push(0x93);
            header::put_uint(b, u64::from(delta));
            header::put_bin(b, data);
            header::put_array_len(b, headers.len() * 2);
            for (name, value) in headers {
                header::put_str(b, name);
                header::put_bin(b, value);
            }
        }
        self.count += 1;
        Ok(())
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch's encoding takes, array header included.
    pub fn encoded_len(&self) -> usize {
        array_header_len(self.count) + self.elements.len()
    }

    /// The messages as a batch; `None` while there are none.
    pub fn batch(&self) -> Option<Batch<'_>> {
        (self.count > 0).then_some(Batch {
            repr: Repr::Encoded {
                count: self.count,
                elements: &self.elements,
            },
        })
    }

    /// Forgets every message, keeping the buffer.
    pub fn clear(&mut self) {
        self.count = 0;
        self.elements.clear();
        self.last = None;
    }

    /// Takes back the message pushed last, as when it would take the batch past a frame limit;
    /// false if there is none to take back (nothing was pushed since the last `clear` or
    /// `undo_last`).
    pub fn undo_last(&mut self) -> bool {
        let Some(start) = self.last.take() else {
            return false;
        };
        self.elements.truncate(start);
        self.count -= 1;
        true
    }
}

/// Checks headers against the protocol's limits before they are sent.
pub fn check_headers(headers: &[(&str, &[u8])]) -> Result<(), BatchError> {
    if headers.len() > MAX_HEADERS {
        return Err(BatchError::TooManyHeaders(headers.len()));
    }
    let mut total = 0;
    for (name, value) in headers {
        check_name(name)?;
        total += name.len() + value.len();
    }
    if total > MAX_HEADER_BYTES {
        return Err(BatchError::HeadersTooLarge(total));
    }
    Ok(())
}

/// Bytes of the shortest array header for `n` elements.
pub(crate) fn array_header_len(n: usize) -> usize {
    match n {
        0..16 => 1,
        16..0x1_0000 => 3,
        _ => 5,
    }
}

/// Bytes of the shortest bin header for `n` bytes.
pub(crate) fn bin_header_len(n: usize) -> usize {
    match n {
        0..0x100 => 2,
        0x100..0x1_0000 => 3,
        _ => 5,
    }
}
