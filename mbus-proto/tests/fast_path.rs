//! The hand-rolled `Publish` and `Deliver` paths agree byte for byte with the serde impls, on
//! every size class of string, bin and integer, and non-canonical encodings still decode.

mod common;

use common::UINT_EDGES;
use mbus_proto::{Frame, HEADER_LEN};
use serde::Deserialize;

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
            Frame::Publish {
                topic: &topic,
                data: &data,
            },
            Frame::Deliver {
                topic: &topic,
                offset,
                data: &data,
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
fn non_canonical_encodings_fall_back_to_serde_and_decode_the_same() {
    // Deliver [8, "t", 5, bin "x"] with the kind, offset and topic in wider forms than needed.
    let wide = [
        0x94, 0xcd, 0x00, 0x08, 0xd9, 0x01, b't', 0xcf, 0, 0, 0, 0, 0, 0, 0, 5, 0xc4, 0x01, b'x',
    ];
    let want = Frame::Deliver {
        topic: "t",
        offset: 5,
        data: b"x",
    };
    assert_eq!(Frame::parse(&wide).unwrap(), want);
    let mut de = rmp_serde::Deserializer::from_read_ref(&wide[..]);
    assert_eq!(Frame::deserialize(&mut de).unwrap(), want);
}

#[test]
fn each_field_has_one_wire_type_however_lenient_serde_is() {
    // Publish whose data is a str rather than a bin, and one whose topic is a bin: serde's
    // `&[u8]` and `&str` would each take the other, the protocol does not.
    let str_data = [0x93, 0x03, 0xa1, b't', 0xa2, b'h', b'i'];
    let bin_topic = [0x93, 0x03, 0xc4, 0x01, b't', 0xc4, 0x02, b'h', b'i'];
    // Deliver whose data is a str, Error whose reason is a bin, Hello whose token is a bin.
    let str_deliver = [0x94, 0x08, 0xa1, b't', 0x00, 0xa2, b'h', b'i'];
    let bin_reason = [0x93, 0x0a, 0x01, 0xc4, 0x01, b'x'];
    let bin_token = [
        0x94, 0x01, 0x01, 0xa8, b'p', b'r', b'o', b'd', b'u', b'c', b'e', b'r', 0xc4, 0x01, b'k',
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
fn malformed_publish_is_still_reported_by_serde() {
    // Topic with invalid UTF-8, data missing.
    let bad = [0x93, 0x03, 0xa1, 0xff, 0xc4, 0x00];
    assert!(Frame::parse(&bad).is_err());
    let short = [0x93, 0x03, 0xa1, b't'];
    let err = Frame::parse(&short).unwrap_err().to_string();
    assert!(err.contains("Publish"), "{err}");
}
