//! What a decoder accepts beyond what an encoder writes: integers in any msgpack encoding,
//! wider array headers, and bytes after the frame array, which are ignored.

mod common;

use common::with_prefix;
use mbus_proto::{DEFAULT_MAX_FRAME, Frame, Start, decode};

#[test]
fn integers_are_read_in_any_width() {
    let five: [&[u8]; 9] = [
        &[0x05],
        &[0xcc, 0x05],
        &[0xcd, 0x00, 0x05],
        &[0xce, 0x00, 0x00, 0x00, 0x05],
        &[0xcf, 0, 0, 0, 0, 0, 0, 0, 0x05],
        &[0xd0, 0x05],
        &[0xd1, 0x00, 0x05],
        &[0xd2, 0x00, 0x00, 0x00, 0x05],
        &[0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05],
    ];
    for int in five {
        let confirm = [&[0x92, 0x04][..], int].concat();
        assert_eq!(
            Frame::parse(&confirm),
            Ok(Frame::Confirm { count: 5 }),
            "{int:02x?}"
        );

        let subscribe = [&[0x93, 0x05, 0xa1, b'o'][..], int].concat();
        assert_eq!(
            Frame::parse(&subscribe),
            Ok(Frame::Subscribe {
                topic: "o",
                start: Start::Offset(5)
            }),
            "{int:02x?}"
        );

        let gap = [&[0x94, 0x09, 0xa1, b'o', 0x00][..], int].concat();
        assert_eq!(
            Frame::parse(&gap),
            Ok(Frame::Gap {
                topic: "o",
                from: 0,
                to: 5
            }),
            "{int:02x?}"
        );
    }
}

#[test]
fn kind_is_read_in_any_width() {
    for kind in [
        &[0x0b][..],
        &[0xcc, 0x0b],
        &[0xcd, 0x00, 0x0b],
        &[0xce, 0x00, 0x00, 0x00, 0x0b],
        &[0xcf, 0, 0, 0, 0, 0, 0, 0, 0x0b],
        &[0xd0, 0x0b],
    ] {
        let body = [&[0x91][..], kind].concat();
        assert_eq!(Frame::parse(&body), Ok(Frame::Ping), "{kind:02x?}");
    }
}

#[test]
fn array_16_and_array_32_headers_are_read() {
    assert_eq!(
        Frame::parse(&[0xdc, 0x00, 0x02, 0x04, 0x07]),
        Ok(Frame::Confirm { count: 7 })
    );
    assert_eq!(
        Frame::parse(&[0xdd, 0x00, 0x00, 0x00, 0x02, 0x04, 0x07]),
        Ok(Frame::Confirm { count: 7 })
    );
}

#[test]
fn str8_topic_and_bin16_data_are_read_even_when_short() {
    let body = [
        0x93, 0x03, 0xd9, 0x01, b'o', 0x91, 0x92, 0x00, 0xc5, 0x00, 0x02, b'h', b'i',
    ];
    assert_eq!(Frame::parse(&body), Ok(Frame::publish("o", b"hi")));
}

#[test]
fn bytes_after_the_frame_array_are_ignored() {
    // Senders must not write them; a receiver that meets them takes the array and moves on to
    // the next length prefix.
    let body = [0x92, 0x04, 0x07, 0xde, 0xad, 0xbe, 0xef];
    let mut stream = with_prefix(&body);
    Frame::Ping.encode(&mut stream);
    let (first, used) = decode(&stream, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!((first, used), (Frame::Confirm { count: 7 }, 4 + body.len()));
    assert_eq!(
        decode(&stream[used..], DEFAULT_MAX_FRAME),
        Ok(Some((Frame::Ping, 6)))
    );
}
