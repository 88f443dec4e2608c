//! Frames and helpers shared by the integration tests: every frame kind, with edge-case fields.
// Each test file is a crate of its own and uses only some of these helpers.
#![allow(dead_code)]

use std::sync::LazyLock;

use mbus_proto::{
    AckAction, AckRanges, DEFAULT_MAX_FRAME, ErrorCode, Frame, GroupOptions, GroupStats,
    MAX_TOPIC_LEN, PROTOCOL_VERSION, Role, Start,
};

/// 70,000 bytes: past the 65,535 that fit a msgpack bin 16, so `bin 32` is exercised too.
pub static LARGE: LazyLock<Vec<u8>> =
    LazyLock::new(|| (0..70_000u32).map(|i| (i % 251) as u8).collect());

/// A topic of the longest allowed name.
pub static LONG_TOPIC: LazyLock<String> = LazyLock::new(|| "x".repeat(MAX_TOPIC_LEN));

/// Unsigned integers on both sides of every msgpack width boundary: positive fixint, uint 8,
/// 16, 32 and 64.
pub const UINT_EDGES: [u64; 11] = [
    0,
    1,
    127,
    128,
    255,
    256,
    65_535,
    65_536,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    u64::MAX,
];

/// Every code `ErrorCode` names, with its number on the wire.
pub const NAMED_CODES: [(ErrorCode, u16); 14] = [
    (ErrorCode::Malformed, 1),
    (ErrorCode::FrameTooLarge, 2),
    (ErrorCode::UnknownKind, 3),
    (ErrorCode::UnsupportedVersion, 4),
    (ErrorCode::UnexpectedFrame, 5),
    (ErrorCode::InvalidTopic, 6),
    (ErrorCode::Unauthorized, 7),
    (ErrorCode::TooManyConnections, 8),
    (ErrorCode::Timeout, 9),
    (ErrorCode::SlowConsumer, 10),
    (ErrorCode::ShuttingDown, 11),
    (ErrorCode::LimitReached, 12),
    (ErrorCode::Internal, 13),
    (ErrorCode::InvalidGroup, 14),
];

/// At least one frame of every kind, with the field values most likely to break an encoder:
/// zero and maximum integers, every msgpack width boundary, empty and large payloads.
pub fn every_frame() -> Vec<Frame<'static>> {
    let large: &'static [u8] = &LARGE;
    let long_topic: &'static str = &LONG_TOPIC;
    let mut frames = vec![
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Producer,
            token: None,
        },
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Consumer,
            token: Some("s3cret"),
        },
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Producer,
            token: Some(""),
        },
        Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: 60_000,
        },
        Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame: 0,
            idle_timeout: 60_000,
        },
        Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame: u32::MAX,
            idle_timeout: 60_000,
        },
        Frame::publish("orders", b"look ma! a new order"),
        Frame::publish("t", b""),
        Frame::publish(long_topic, large),
    ];
    // bin 8 holds up to 255 bytes, bin 16 up to 65,535; probe both sides of each boundary.
    for len in [1, 255, 256, 65_535, 65_536] {
        frames.push(Frame::publish("sizes", &large[..len]));
    }
    for count in UINT_EDGES {
        frames.push(Frame::Confirm { count });
    }
    for start in [
        Start::Earliest,
        Start::Latest,
        Start::Offset(0),
        Start::Offset(1000),
        Start::Offset(u64::MAX),
    ] {
        frames.push(Frame::Subscribe {
            topic: "orders",
            start,
        });
    }
    frames.extend([
        Frame::Subscribed {
            topic: "orders",
            offset: 0,
            first: 0,
            next: 0,
        },
        Frame::Subscribed {
            topic: long_topic,
            offset: u64::MAX,
            first: 0,
            next: 0,
        },
        Frame::Unsubscribe { topic: "orders" },
        Frame::Unsubscribe { topic: long_topic },
        Frame::Deliver {
            topic: "orders",
            offset: 0,
            time: 0,
            batch: mbus_proto::Batch::one(b"look ma! a new order"),
        },
        Frame::Deliver {
            topic: "orders",
            offset: u64::MAX,
            time: 0,
            batch: mbus_proto::Batch::one(b""),
        },
        Frame::Deliver {
            topic: "big",
            offset: 70_000,
            time: 0,
            batch: mbus_proto::Batch::one(large),
        },
        Frame::Gap {
            topic: "orders",
            from: 0,
            to: 1,
        },
        Frame::Gap {
            topic: "orders",
            from: 5,
            to: 300,
        },
        Frame::Gap {
            topic: "orders",
            from: u64::MAX - 1,
            to: u64::MAX,
        },
    ]);
    for (code, _) in NAMED_CODES {
        frames.push(Frame::Error {
            code,
            reason: "something went wrong",
        });
    }
    for n in [0, 15, 1000, u16::MAX] {
        frames.push(Frame::Error {
            code: ErrorCode::Other(n),
            reason: "",
        });
    }
    frames.push(Frame::Error {
        code: ErrorCode::Internal,
        reason: "naïve ✓ reasons are UTF-8",
    });
    frames.extend([Frame::Ping, Frame::Pong]);
    frames.extend(group_frames(long_topic));
    frames
}

/// The consumer-group frames, with their edge values.
fn group_frames(long_topic: &'static str) -> Vec<Frame<'static>> {
    let options = GroupOptions {
        ack_wait: 30_000,
        max_deliver: 5,
        max_ack_pending: 1000,
        dead_letter: Some("jobs.dlq"),
    };
    let edges = GroupOptions {
        ack_wait: u64::MAX,
        max_deliver: u32::MAX,
        max_ack_pending: 0,
        dead_letter: None,
    };
    let ranges: &'static [u8] = Box::leak(
        [0u64, 7, u64::MAX - 2]
            .iter()
            .flat_map(|o| {
                let mut r = o.to_be_bytes().to_vec();
                r.extend_from_slice(&1u32.to_be_bytes());
                r
            })
            .collect::<Vec<u8>>()
            .into_boxed_slice(),
    );
    let mut frames = Vec::new();
    for (start, options) in [(Start::Earliest, options), (Start::Last(10), edges)] {
        frames.push(Frame::Join {
            topic: "jobs",
            group: "workers",
            start,
            credit: 1,
            options,
        });
        frames.push(Frame::Joined {
            topic: long_topic,
            group: long_topic,
            floor: 0,
            next: u64::MAX,
            end: u64::MAX,
            options,
        });
    }
    for action in [
        AckAction::Ack,
        AckAction::Nak,
        AckAction::Progress,
        AckAction::Term,
    ] {
        frames.push(Frame::Ack {
            topic: "jobs",
            group: "workers",
            action,
            delay: if action == AckAction::Nak { 5000 } else { 0 },
            ranges: AckRanges::new(ranges).unwrap(),
        });
    }
    frames.extend([
        Frame::Leave {
            topic: "jobs",
            group: "workers",
        },
        Frame::Assign {
            topic: "jobs",
            group: "workers",
            attempt: 1,
            first: 0,
            count: 1,
        },
        Frame::Assign {
            topic: "jobs",
            group: "workers",
            attempt: u32::MAX,
            first: u64::MAX - 1,
            count: u32::MAX,
        },
        Frame::GroupInfo {
            topic: "jobs",
            group: "workers",
        },
        Frame::GroupState {
            topic: "jobs",
            group: "workers",
            state: GroupStats::default(),
        },
        Frame::GroupState {
            topic: "jobs",
            group: "workers",
            state: GroupStats {
                exists: true,
                members: 3,
                floor: 100,
                next: 1 << 40,
                in_flight: 12,
                waiting: 1,
                redelivered: 65_536,
                dead_lettered: u64::MAX,
                lost: 0,
            },
        },
        Frame::Identify {
            producer: "p",
            sequence: 1,
        },
        Frame::Identify {
            producer: "web-1.4242.9f3a",
            sequence: u64::MAX,
        },
        Frame::Identify {
            producer: "p",
            sequence: 0,
        },
        Frame::Identified {
            producer: "p",
            sequence: 1,
        },
    ]);
    frames
}

/// A body wrapped in a length prefix that matches it.
pub fn with_prefix(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Bytes from lowercase hex pairs separated by whitespace.
pub fn unhex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|pair| {
            assert!(
                pair.len() == 2 && pair.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "`{pair}` is not a lowercase hex byte"
            );
            u8::from_str_radix(pair, 16).unwrap()
        })
        .collect()
}

/// Lowercase hex pairs separated by single spaces.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
