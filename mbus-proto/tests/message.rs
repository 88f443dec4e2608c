//! `Message` encodes as the msgpack array `[topic, data]` with `data` a bin, never an array of
//! integers, and publishes as a frame carrying the same two fields.

use mbus_proto::{DEFAULT_MAX_FRAME, Frame, HEADER_LEN, Message, decode};

fn order() -> Message {
    Message {
        topic: "orders".into(),
        data: b"look ma! a new order".to_vec(),
    }
}

#[test]
fn message_data_is_msgpack_bin() {
    let bytes = rmp_serde::to_vec(&order()).unwrap();
    let mut expected = vec![0x92, 0xa6];
    expected.extend_from_slice(b"orders");
    expected.extend_from_slice(&[0xc4, 20]);
    expected.extend_from_slice(b"look ma! a new order");
    assert_eq!(bytes, expected);
}

#[test]
fn message_data_of_high_bytes_stays_one_byte_each() {
    // As an array of integers, 0xff would take two bytes (cc ff) and the array a header.
    let message = Message {
        topic: "t".into(),
        data: vec![0xff, 0x00, 0x80],
    };
    assert_eq!(
        rmp_serde::to_vec(&message).unwrap(),
        [0x92, 0xa1, b't', 0xc4, 0x03, 0xff, 0x00, 0x80]
    );
}

#[test]
fn empty_and_large_data_use_bin_headers() {
    let empty = Message {
        topic: "t".into(),
        data: Vec::new(),
    };
    assert_eq!(
        rmp_serde::to_vec(&empty).unwrap(),
        [0x92, 0xa1, b't', 0xc4, 0x00]
    );

    let large = Message {
        topic: "t".into(),
        data: vec![7; 70_000],
    };
    let bytes = rmp_serde::to_vec(&large).unwrap();
    assert_eq!(bytes[..8], [0x92, 0xa1, b't', 0xc6, 0x00, 0x01, 0x11, 0x70]);
    assert_eq!(bytes.len(), 8 + 70_000);
}

#[test]
fn message_round_trips() {
    for message in [
        order(),
        Message {
            topic: "t".into(),
            data: Vec::new(),
        },
        Message {
            topic: "x".repeat(255),
            data: (0..=255).collect(),
        },
    ] {
        let bytes = rmp_serde::to_vec(&message).unwrap();
        assert_eq!(rmp_serde::from_slice::<Message>(&bytes).unwrap(), message);
    }
}

#[test]
fn publish_frame_carries_the_message_fields_in_the_same_encoding() {
    let message = order();
    let frame = message.publish_frame();
    assert_eq!(frame, Frame::publish("orders", b"look ma! a new order"));
    // [3, topic, [[0, data]]] versus [topic, data]: the topic's bytes follow the kind, and the
    // data's follow the batch and message headers.
    let frame_bytes = frame.to_bytes();
    let message_bytes = rmp_serde::to_vec(&message).unwrap();
    assert_eq!(frame_bytes[HEADER_LEN], 0x93);
    assert_eq!(frame_bytes[HEADER_LEN + 1], 0x03);
    assert_eq!(
        frame_bytes[HEADER_LEN + 2..HEADER_LEN + 9],
        message_bytes[1..8]
    );
    assert_eq!(
        frame_bytes[HEADER_LEN + 9..HEADER_LEN + 12],
        [0x91, 0x92, 0x00]
    );
    assert_eq!(frame_bytes[HEADER_LEN + 12..], message_bytes[8..]);
    assert_eq!(
        decode(&frame_bytes, DEFAULT_MAX_FRAME),
        Ok(Some((frame, frame_bytes.len())))
    );
}
