//! Hand-written serde impls that give every frame its fixed msgpack array layout.
//!
//! Derives would encode enums as maps keyed by variant name; the protocol instead puts a small
//! `kind` integer first so that any msgpack library can read a frame without serde's conventions.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use crate::apiv2::{ErrorCode, Frame, GroupStats, Role, Start, kind};
use crate::batch::{Batch, Headers, MessageRef};
use crate::group::{AckAction, AckRanges, GroupOptions};

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
            Start::Last(n) => ("last", n).serialize(s),
            Start::Time(ms) => ("time", ms).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Start {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StartVisitor;
        impl<'de> Visitor<'de> for StartVisitor {
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
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Start, A::Error> {
                let word: Str = field(&mut seq, "start", "word")?;
                let n: u64 = field(&mut seq, "start", "value")?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("start: an array of 2 elements"));
                }
                match word.0 {
                    "last" => Ok(Start::Last(n)),
                    "time" => Ok(Start::Time(n)),
                    w => Err(de::Error::invalid_value(
                        de::Unexpected::Str(w),
                        &"\"last\" or \"time\"",
                    )),
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

/// A field that must be a msgpack bin, borrowed from the input.
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

/// The four settings fields of `Join` and `Joined`.
fn options<'de, A: SeqAccess<'de>>(s: &mut A, frame: &str) -> Result<GroupOptions<'de>, A::Error> {
    Ok(GroupOptions {
        ack_wait: field(s, frame, "ack_wait")?,
        max_deliver: field(s, frame, "max_deliver")?,
        max_ack_pending: field(s, frame, "max_ack_pending")?,
        dead_letter: field::<Option<Str>, _>(s, frame, "dead_letter")?.map(|t| t.0),
    })
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
            Frame::Welcome {
                version,
                max_frame,
                idle_timeout,
            } => tuple!(s, k, version, max_frame, idle_timeout),
            Frame::Publish { topic, batch } => tuple!(s, k, topic, batch),
            Frame::Confirm { count } => tuple!(s, k, count),
            Frame::Subscribe { topic, start } => tuple!(s, k, topic, start),
            Frame::Subscribed {
                topic,
                offset,
                first,
                next,
            } => tuple!(s, k, topic, offset, first, next),
            Frame::Unsubscribe { topic } => tuple!(s, k, topic),
            Frame::Deliver {
                topic,
                offset,
                time,
                batch,
            } => tuple!(s, k, topic, offset, time, batch),
            Frame::Gap { topic, from, to } => tuple!(s, k, topic, from, to),
            Frame::Error { code, reason } => tuple!(s, k, code, reason),
            Frame::Ping | Frame::Pong => tuple!(s, k),
            Frame::Join {
                topic,
                group,
                start,
                credit,
                options: o,
            } => tuple!(
                s,
                k,
                topic,
                group,
                start,
                credit,
                o.ack_wait,
                o.max_deliver,
                o.max_ack_pending,
                o.dead_letter
            ),
            Frame::Joined {
                topic,
                group,
                floor,
                next,
                end,
                options: o,
            } => tuple!(
                s,
                k,
                topic,
                group,
                floor,
                next,
                end,
                o.ack_wait,
                o.max_deliver,
                o.max_ack_pending,
                o.dead_letter
            ),
            Frame::Leave { topic, group } | Frame::GroupInfo { topic, group } => {
                tuple!(s, k, topic, group)
            }
            Frame::Ack {
                topic,
                group,
                action,
                delay,
                ranges,
            } => tuple!(
                s,
                k,
                topic,
                group,
                action.to_u8(),
                delay,
                Bytes::new(ranges.as_bytes())
            ),
            Frame::Assign {
                topic,
                group,
                attempt,
                first,
                count,
            } => tuple!(s, k, topic, group, attempt, first, count),
            Frame::Identify { producer, sequence } | Frame::Identified { producer, sequence } => {
                tuple!(s, k, producer, sequence)
            }
            Frame::GroupState {
                topic,
                group,
                state: g,
            } => tuple!(
                s,
                k,
                topic,
                group,
                g.exists,
                g.members,
                g.floor,
                g.next,
                g.in_flight,
                g.waiting,
                g.redelivered,
                g.dead_lettered,
                g.lost
            ),
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
                idle_timeout: field(s, "Welcome", "idle_timeout")?,
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
                first: field(s, "Subscribed", "first")?,
                next: field(s, "Subscribed", "next")?,
            },
            kind::UNSUBSCRIBE => Frame::Unsubscribe {
                topic: field::<Str, _>(s, "Unsubscribe", "topic")?.0,
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
            kind::JOIN => Frame::Join {
                topic: field::<Str, _>(s, "Join", "topic")?.0,
                group: field::<Str, _>(s, "Join", "group")?.0,
                start: field(s, "Join", "start")?,
                credit: field(s, "Join", "credit")?,
                options: options(s, "Join")?,
            },
            kind::JOINED => Frame::Joined {
                topic: field::<Str, _>(s, "Joined", "topic")?.0,
                group: field::<Str, _>(s, "Joined", "group")?.0,
                floor: field(s, "Joined", "floor")?,
                next: field(s, "Joined", "next")?,
                end: field(s, "Joined", "end")?,
                options: options(s, "Joined")?,
            },
            kind::LEAVE => Frame::Leave {
                topic: field::<Str, _>(s, "Leave", "topic")?.0,
                group: field::<Str, _>(s, "Leave", "group")?.0,
            },
            kind::ACK => {
                let topic = field::<Str, _>(s, "Ack", "topic")?.0;
                let group = field::<Str, _>(s, "Ack", "group")?.0;
                let action: u8 = field(s, "Ack", "action")?;
                let action = AckAction::from_u8(action).ok_or_else(|| {
                    de::Error::custom(format_args!("Ack: field `action`: unknown action {action}"))
                })?;
                let delay = field(s, "Ack", "delay")?;
                let ranges = field::<Bin, _>(s, "Ack", "ranges")?.0;
                let ranges = AckRanges::new(ranges)
                    .map_err(|e| de::Error::custom(format_args!("Ack: field `ranges`: {e}")))?;
                Frame::Ack {
                    topic,
                    group,
                    action,
                    delay,
                    ranges,
                }
            }
            kind::ASSIGN => Frame::Assign {
                topic: field::<Str, _>(s, "Assign", "topic")?.0,
                group: field::<Str, _>(s, "Assign", "group")?.0,
                attempt: field(s, "Assign", "attempt")?,
                first: field(s, "Assign", "first")?,
                count: field(s, "Assign", "count")?,
            },
            kind::GROUP_INFO => Frame::GroupInfo {
                topic: field::<Str, _>(s, "GroupInfo", "topic")?.0,
                group: field::<Str, _>(s, "GroupInfo", "group")?.0,
            },
            kind::IDENTIFY => Frame::Identify {
                producer: field::<Str, _>(s, "Identify", "producer")?.0,
                sequence: field(s, "Identify", "sequence")?,
            },
            kind::IDENTIFIED => Frame::Identified {
                producer: field::<Str, _>(s, "Identified", "producer")?.0,
                sequence: field(s, "Identified", "sequence")?,
            },
            kind::GROUP_STATE => Frame::GroupState {
                topic: field::<Str, _>(s, "GroupState", "topic")?.0,
                group: field::<Str, _>(s, "GroupState", "group")?.0,
                state: GroupStats {
                    exists: field(s, "GroupState", "exists")?,
                    members: field(s, "GroupState", "members")?,
                    floor: field(s, "GroupState", "floor")?,
                    next: field(s, "GroupState", "next")?,
                    in_flight: field(s, "GroupState", "in_flight")?,
                    waiting: field(s, "GroupState", "waiting")?,
                    redelivered: field(s, "GroupState", "redelivered")?,
                    dead_lettered: field(s, "GroupState", "dead_lettered")?,
                    lost: field(s, "GroupState", "lost")?,
                },
            },
            // `Publish` and `Deliver` are decoded by `fast.rs`, which keeps their batches as
            // the bytes they came in.
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

impl Serialize for Batch<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl Serialize for MessageRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.headers.is_empty() {
            (self.delta, Bytes::new(self.data)).serialize(s)
        } else {
            (self.delta, Bytes::new(self.data), self.headers).serialize(s)
        }
    }
}

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.len() * 2)?;
        for (name, value) in self.iter() {
            t.serialize_element(name)?;
            t.serialize_element(Bytes::new(value))?;
        }
        t.end()
    }
}
