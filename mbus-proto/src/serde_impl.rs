//! Hand-written serde impls that give every frame its fixed msgpack array layout.
//!
//! Derives would encode enums as maps keyed by variant name; the protocol instead puts a small
//! `kind` integer first so that any msgpack library can read a frame without serde's conventions.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use crate::apiv1::{ErrorCode, Frame, Role, Start, kind};

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Str::deserialize(d)?.0 {
            "producer" => Ok(Role::Producer),
            "consumer" => Ok(Role::Consumer),
            other => Err(de::Error::invalid_value(
                de::Unexpected::Str(other),
                &"\"producer\" or \"consumer\"",
            )),
        }
    }
}

impl Serialize for Start {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Start::Earliest => s.serialize_str("earliest"),
            Start::Latest => s.serialize_str("latest"),
            Start::Offset(o) => s.serialize_u64(*o),
        }
    }
}

impl<'de> Deserialize<'de> for Start {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StartVisitor;
        impl Visitor<'_> for StartVisitor {
            type Value = Start;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"earliest\", \"latest\" or an unsigned offset")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Start, E> {
                Ok(Start::Offset(v))
            }
            // A non-negative integer in a signed msgpack encoding is still an offset, as it is
            // for every other integer field.
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Start, E> {
                u64::try_from(v)
                    .map(Start::Offset)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Start, E> {
                match v {
                    "earliest" => Ok(Start::Earliest),
                    "latest" => Ok(Start::Latest),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(StartVisitor)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.to_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(ErrorCode::from_u16)
    }
}

/// A field that must be a msgpack str: a bin holding UTF-8 is refused, though serde's `&str`
/// would take it, so that every field has exactly one wire type.
struct Str<'a>(&'a str);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a msgpack str")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(v))
            }
        }
        d.deserialize_str(StrVisitor)
    }
}

/// A field that must be a msgpack bin: a str is refused, though serde's `&[u8]` would take it.
struct Bin<'a>(&'a [u8]);

impl<'de> Deserialize<'de> for Bin<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BinVisitor;
        impl<'de> Visitor<'de> for BinVisitor {
            type Value = Bin<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a msgpack bin")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Bin<'de>, E> {
                Ok(Bin(v))
            }
        }
        d.deserialize_bytes(BinVisitor)
    }
}

/// Writes `[kind, fields...]` as one msgpack array.
macro_rules! tuple {
    ($s:expr, $kind:expr $(, $field:expr)*) => {{
        let mut t = $s.serialize_tuple(1 $(+ { let _ = &$field; 1 })*)?;
        t.serialize_element(&$kind)?;
        $(t.serialize_element(&$field)?;)*
        t.end()
    }};
}

impl Serialize for Frame<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let k = self.kind();
        match *self {
            Frame::Hello {
                version,
                role,
                token,
            } => tuple!(s, k, version, role, token),
            Frame::Welcome { version, max_frame } => tuple!(s, k, version, max_frame),
            Frame::Publish { topic, data } => tuple!(s, k, topic, Bytes::new(data)),
            Frame::Confirm { count } => tuple!(s, k, count),
            Frame::Subscribe { topic, start } => tuple!(s, k, topic, start),
            Frame::Subscribed { topic, offset } => tuple!(s, k, topic, offset),
            Frame::Unsubscribe { topic } => tuple!(s, k, topic),
            Frame::Deliver {
                topic,
                offset,
                data,
            } => tuple!(s, k, topic, offset, Bytes::new(data)),
            Frame::Gap { topic, from, to } => tuple!(s, k, topic, from, to),
            Frame::Error { code, reason } => tuple!(s, k, code, reason),
            Frame::Ping | Frame::Pong => tuple!(s, k),
        }
    }
}

impl<'de> Deserialize<'de> for Frame<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(FrameVisitor)
    }
}

struct FrameVisitor;

/// Reads the next array element, naming the frame and field when it is missing or mistyped.
fn field<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    seq: &mut A,
    frame: &str,
    name: &str,
) -> Result<T, A::Error> {
    match seq.next_element::<T>() {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(de::Error::custom(format_args!(
            "{frame}: missing field `{name}`"
        ))),
        Err(e) => Err(de::Error::custom(format_args!(
            "{frame}: field `{name}`: {e}"
        ))),
    }
}

impl<'de> Visitor<'de> for FrameVisitor {
    type Value = Frame<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a frame array [kind, fields...]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Frame<'de>, A::Error> {
        let k: u8 = field(&mut seq, "frame", "kind")?;
        let s = &mut seq;
        let frame = match k {
            kind::HELLO => Frame::Hello {
                version: field(s, "Hello", "version")?,
                role: field(s, "Hello", "role")?,
                token: field::<Option<Str>, _>(s, "Hello", "token")?.map(|t| t.0),
            },
            kind::WELCOME => Frame::Welcome {
                version: field(s, "Welcome", "version")?,
                max_frame: field(s, "Welcome", "max_frame")?,
            },
            kind::PUBLISH => Frame::Publish {
                topic: field::<Str, _>(s, "Publish", "topic")?.0,
                data: field::<Bin, _>(s, "Publish", "data")?.0,
            },
            kind::CONFIRM => Frame::Confirm {
                count: field(s, "Confirm", "count")?,
            },
            kind::SUBSCRIBE => Frame::Subscribe {
                topic: field::<Str, _>(s, "Subscribe", "topic")?.0,
                start: field(s, "Subscribe", "start")?,
            },
            kind::SUBSCRIBED => Frame::Subscribed {
                topic: field::<Str, _>(s, "Subscribed", "topic")?.0,
                offset: field(s, "Subscribed", "offset")?,
            },
            kind::UNSUBSCRIBE => Frame::Unsubscribe {
                topic: field::<Str, _>(s, "Unsubscribe", "topic")?.0,
            },
            kind::DELIVER => Frame::Deliver {
                topic: field::<Str, _>(s, "Deliver", "topic")?.0,
                offset: field(s, "Deliver", "offset")?,
                data: field::<Bin, _>(s, "Deliver", "data")?.0,
            },
            kind::GAP => Frame::Gap {
                topic: field::<Str, _>(s, "Gap", "topic")?.0,
                from: field(s, "Gap", "from")?,
                to: field(s, "Gap", "to")?,
            },
            kind::ERROR => Frame::Error {
                code: field(s, "Error", "code")?,
                reason: field::<Str, _>(s, "Error", "reason")?.0,
            },
            kind::PING => Frame::Ping,
            kind::PONG => Frame::Pong,
            other => {
                return Err(de::Error::custom(format_args!(
                    "unknown frame kind {other}"
                )));
            }
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format_args!(
                "{}: more elements than the frame has fields",
                frame.name()
            )));
        }
        Ok(frame)
    }
}
