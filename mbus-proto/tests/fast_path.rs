//! The hand-rolled `Publish` and `Deliver` codec agrees byte for byte with the serde encoding,
//! on every size class of string, bin, integer and batch, and non-canonical encodings still
//! decode.

mod common;

use common::UINT_EDGES;
use mbus_proto::{Batch, BatchBuilder, Frame, HEADER_LEN};

fn samples() -> Vec<(String, Vec<u8>, u64)> {
    let mut out = Vec::new();
    for topic_len in [1, 31, 32, 255, 256, 65_535, 65_536] {
        for data_len in [0, 1, 255, 256, 65_535, 65_536, 70_000] {
            for offset in UINT_EDGES {
                out.push(("t".repeat(topic_len), vec![0x5a; data_len], offset));
            }
        }
    }
    out
}

fn via_serde(frame: &Frame<'_>) -> Vec<u8> {
    rmp_serde::to_vec(frame).unwrap()
}

#[test]
fn publish_and_deliver_encode_exactly_as_serde_does() {
    for (topic, data, offset) in samples() {
        let frames = [
            Frame::publish(&topic, &data),
            Frame::Deliver {
                topic: &topic,
                offset,
                time: offset ^ 0x55,
                batch: Batch::one(&data),
            },
        ];
        for frame in frames {
            let fast = frame.to_bytes();
            assert_eq!(
                fast[HEADER_LEN..],
                via_serde(&frame)[..],
                "{}",
                frame.name()
            );
            assert_eq!(Frame::parse(&fast[HEADER_LEN..]).unwrap(), frame);
        }
    }
}

#[test]
fn batches_of_every_size_class_encode_as_serde_does() {
    for count in [1, 2, 15, 16, 65_535, 65_536] {
        let mut b = BatchBuilder::new();
        for i in 0..count {
            let headers: [(&str, &[u8]); 2] = [("k", b"v"), ("trace", b"x")];
            let headers = if i % 3 == 0 { &headers[..] } else { &[] };
            b.push_at(i as u32 % 300, &[i as u8; 3], headers).unwrap();
        }
        let batch = b.batch().unwrap();
        assert_eq!(batch.len(), count);
        assert_eq!(b.encoded_len(), batch.encoded_len());
        let frame = Frame::Deliver {
            topic: "t",
            offset: 1,
            time: 2,
            batch,
        };
        let fast = frame.to_bytes();
        assert_eq!(fast[HEADER_LEN..], via_serde(&frame)[..], "{count}");
        assert_eq!(Frame::parse(&fast[HEADER_LEN..]).unwrap(), frame);
    }
}

#[test]
fn non_canonical_encodings_decode_the_same() {
    // Deliver [8, "t", 5, 7, [[0, bin "x"]]] with the array, kind, offset, time, topic and batch
    // in wider forms than needed.
    let wide = [
        0xdc, 0, 5, 0xcd, 0x00, 0x08, 0xd9, 0x01, b't', 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xd0, 7,
        0xdc, 0, 1, 0xdd, 0, 0, 0, 2, 0xcc, 0, 0xc5, 0, 1, b'x',
    ];
    let want = Frame::Deliver {
        topic: "t",
        offset: 5,
        time: 7,
        batch: Batch::one(b"x"),
    };
    assert_eq!(Frame::parse(&wide).unwrap(), want);
}

#[test]
fn each_field_has_one_wire_type_however_lenient_serde_is() {
    // Publish whose data is a str rather than a bin, and one whose topic is a bin: serde's
    // `&[u8]` and `&str` would each take the other, the protocol does not.
    let str_data = [0x93, 0x03, 0xa1, b't', 0x91, 0x92, 0x00, 0xa2, b'h', b'i'];
    let bin_topic = [
        0x93, 0x03, 0xc4, 0x01, b't', 0x91, 0x92, 0x00, 0xc4, 0x02, b'h', b'i',
    ];
    // Deliver whose data is a str, Error whose reason is a bin, Hello whose token is a bin.
    let str_deliver = [
        0x95, 0x08, 0xa1, b't', 0x00, 0x00, 0x91, 0x92, 0x00, 0xa2, b'h', b'i',
    ];
    let bin_reason = [0x93, 0x0a, 0x01, 0xc4, 0x01, b'x'];
    let bin_token = [
        0x94, 0x01, 0x02, 0xa8, b'p', b'r', b'o', b'd', b'u', b'c', b'e', b'r', 0xc4, 0x01, b'k',
    ];
    for (body, field) in [
        (&str_data[..], "data"),
        (&bin_topic[..], "topic"),
        (&str_deliver[..], "data"),
        (&bin_reason[..], "reason"),
        (&bin_token[..], "token"),
    ] {
        match Frame::parse(body) {
            Err(mbus_proto::DecodeError::Malformed(why)) => {
                assert!(why.contains(field), "{why}")
            }
            other => panic!("{body:02x?} gave {other:?}"),
        }
    }
}

#[test]
fn malformed_publishes_name_what_is_wrong() {
    let h = |n: u8| [0xa1, n, 0xc4, 0x01, b'v'];
    let mut many_headers = vec![
        0x93, 0x03, 0xa1, b't', 0x91, 0x93, 0x00, 0xc4, 0x00, 0xdc, 0, 130,
    ];
    for i in 0..65 {
        many_headers.extend_from_slice(&h(b'a' + (i % 26) as u8));
    }
    let cases: [(&[u8], &str); 10] = [
        // Topic with invalid UTF-8; the batch missing.
        (
            &[0x93, 0x03, 0xa1, 0xff, 0x91, 0x92, 0x00, 0xc4, 0x00],
            "topic",
        ),
        (&[0x93, 0x03, 0xa1, b't'], "messages"),
        // An empty batch; a message that is not an array; a delta other than 0.
        (&[0x93, 0x03, 0xa1, b't', 0x90], "empty batch"),
        (&[0x93, 0x03, 0xa1, b't', 0x91, 0xc4, 0x00], "message"),
        (
            &[0x93, 0x03, 0xa1, b't', 0x91, 0x92, 0x05, 0xc4, 0x00],
            "delta 5",
        ),
        // Headers of odd length, an empty name, a str value; too many.
        (
            &[
                0x93, 0x03, 0xa1, b't', 0x91, 0x93, 0x00, 0xc4, 0x00, 0x91, 0xa1, b'k',
            ],
            "pairs",
        ),
        (
            &[
                0x93, 0x03, 0xa1, b't', 0x91, 0x93, 0x00, 0xc4, 0x00, 0x92, 0xa0, 0xc4, 0x00,
            ],
            "header name of 0 bytes",
        ),
        (
            &[
                0x93, 0x03, 0xa1, b't', 0x91, 0x93, 0x00, 0xc4, 0x00, 0x92, 0xa1, b'k', 0xa1, b'v',
            ],
            "header value",
        ),
        (&many_headers, "65 headers"),
        // The batch claims two messages and holds one.
        (
            &[0x93, 0x03, 0xa1, b't', 0x92, 0x92, 0x00, 0xc4, 0x00],
            "message",
        ),
    ];
    for (body, what) in cases {
        match Frame::parse(body) {
            Err(mbus_proto::DecodeError::Malformed(why)) => {
                assert!(
                    why.contains("Publish") && why.contains(what),
                    "{why} / {what}"
                )
            }
            other => panic!("{body:02x?} gave {other:?}"),
        }
    }
}

#[test]
fn headers_at_their_limits_are_taken_and_past_them_refused() {
    use mbus_proto::batch::{MAX_HEADER_BYTES, MAX_HEADERS};
    let value = vec![b'v'; MAX_HEADER_BYTES - 1];
    let full: [(&str, &[u8]); 1] = [("k", &value)];
    let mut b = BatchBuilder::new();
    b.push(b"x", &full).unwrap();
    let over: [(&str, &[u8]); 1] = [("kk", &value)];
    assert!(b.push(b"x", &over).is_err());
    let names: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("h{i}")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    b.push(b"x", &many[..MAX_HEADERS]).unwrap();
    assert!(b.push(b"x", &many).is_err());
    let frame = Frame::Publish {
        topic: "t",
        batch: b.batch().unwrap(),
    };
    let bytes = frame.to_bytes();
    assert_eq!(Frame::parse(&bytes[HEADER_LEN..]).unwrap(), frame);
}

#[test]
fn the_brokers_stored_frame_is_the_deliver_encoding_and_its_length_exact() {
    let mut with = BatchBuilder::new();
    with.push(b"payload", &[("trace-id", b"7f3a")]).unwrap();
    with.push(b"second", &[]).unwrap();
    for (topic, data, offset) in samples().into_iter().step_by(7) {
        for batch in [Batch::one(&data), with.batch().unwrap()] {
            let time = offset.rotate_left(17);
            let offset = offset.min(u64::MAX - 1);
            let mut stored = vec![0xee];
            mbus_proto::encode_delivery(&mut stored, &topic, offset, time, &batch);
            let frame = Frame::Deliver {
                topic: &topic,
                offset,
                time,
                batch,
            };
            assert_eq!(
                stored[1..],
                frame.to_bytes()[..],
                "{} {offset}",
                topic.len()
            );
            assert_eq!(
                mbus_proto::delivery_len(&topic, offset, time, &batch),
                stored.len() - 1
            );
        }
    }
}

#[test]
fn encode_assign_writes_what_the_serde_encoder_writes() {
    for (attempt, first, count) in [
        (1, 0, 1),
        (2, 43, 1),
        (u32::MAX, u64::MAX - 1, u32::MAX),
        (300, 70_000, 65_536),
    ] {
        for (topic, group) in [("jobs", "workers"), (&*"t".repeat(255), &*"g".repeat(40))] {
            let mut fast = Vec::new();
            mbus_proto::encode_assign(&mut fast, topic, group, attempt, first, count);
            let frame = mbus_proto::Frame::Assign {
                topic,
                group,
                attempt,
                first,
                count,
            };
            assert_eq!(fast, frame.to_bytes(), "{frame:?}");
        }
    }
}
