//! The exact bytes an encoder writes: the shortest msgpack form of every integer, `str` for
//! strings, `bin` for payloads, `nil` for a missing token.

use mbus_proto::{Frame, HEADER_LEN, Role, Start};

fn body(frame: Frame<'_>) -> Vec<u8> {
    frame.to_bytes()[HEADER_LEN..].to_vec()
}

#[test]
fn integers_use_their_shortest_encoding() {
    let cases: [(u64, &[u8]); 12] = [
        (0, &[0x00]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0xcc, 0x80]),
        (255, &[0xcc, 0xff]),
        (256, &[0xcd, 0x01, 0x00]),
        (65_535, &[0xcd, 0xff, 0xff]),
        (65_536, &[0xce, 0x00, 0x01, 0x00, 0x00]),
        (u64::from(u32::MAX), &[0xce, 0xff, 0xff, 0xff, 0xff]),
        (u64::from(u32::MAX) + 1, &[0xcf, 0, 0, 0, 0x01, 0, 0, 0, 0]),
        (
            u64::MAX - 1,
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
        ),
        (
            u64::MAX,
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
    ];
    for (count, int) in cases {
        let mut expected = vec![0x92, 0x04];
        expected.extend_from_slice(int);
        assert_eq!(body(Frame::Confirm { count }), expected, "{count}");
    }
}

#[test]
fn strings_use_their_shortest_str_header() {
    for (len, header) in [
        (1, &[0xa1][..]),
        (31, &[0xbf]),
        (32, &[0xd9, 0x20]),
        (255, &[0xd9, 0xff]),
    ] {
        let topic = "t".repeat(len);
        let mut expected = vec![0x92, 0x07];
        expected.extend_from_slice(header);
        expected.extend_from_slice(topic.as_bytes());
        assert_eq!(
            body(Frame::Unsubscribe { topic: &topic }),
            expected,
            "{len}"
        );
    }
    // Error reasons are not bounded by the topic rules.
    let reason = "r".repeat(256);
    assert_eq!(
        body(Frame::Error {
            code: mbus_proto::ErrorCode::Internal,
            reason: &reason
        })[..6],
        [0x93, 0x0a, 0x0d, 0xda, 0x01, 0x00]
    );
}

#[test]
fn payloads_are_bin_with_their_shortest_header() {
    for (len, header) in [
        (0, &[0xc4, 0x00][..]),
        (1, &[0xc4, 0x01]),
        (255, &[0xc4, 0xff]),
        (256, &[0xc5, 0x01, 0x00]),
        (65_535, &[0xc5, 0xff, 0xff]),
        (65_536, &[0xc6, 0x00, 0x01, 0x00, 0x00]),
    ] {
        let data = vec![0x5a; len];
        let publish = body(Frame::publish("t", &data));
        assert_eq!(
            publish[..7],
            [0x93, 0x03, 0xa1, b't', 0x91, 0x92, 0x00],
            "{len}"
        );
        assert_eq!(&publish[7..7 + header.len()], header, "{len}");
        assert_eq!(publish.len(), 7 + header.len() + len);

        let deliver = body(Frame::Deliver {
            topic: "t",
            offset: 0,
            time: 0,
            batch: mbus_proto::Batch::one(&data),
        });
        assert_eq!(
            deliver[..9],
            [0x95, 0x08, 0xa1, b't', 0x00, 0x00, 0x91, 0x92, 0x00],
            "{len}"
        );
        assert_eq!(&deliver[9..9 + header.len()], header, "{len}");
    }
}

#[test]
fn hello_writes_role_as_string_and_token_as_string_or_nil() {
    assert_eq!(
        body(Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Producer,
            token: None
        }),
        b"\x94\x01\x02\xa8producer\xc0"
    );
    assert_eq!(
        body(Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Consumer,
            token: Some("s3cret")
        }),
        b"\x94\x01\x02\xa8consumer\xa6s3cret"
    );
    assert_eq!(Role::Producer.as_str(), "producer");
    assert_eq!(Role::Consumer.as_str(), "consumer");
}

#[test]
fn subscribe_writes_start_as_word_or_integer() {
    let sub = |start| body(Frame::Subscribe { topic: "o", start });
    assert_eq!(sub(Start::Earliest), b"\x93\x05\xa1o\xa8earliest");
    assert_eq!(sub(Start::Latest), b"\x93\x05\xa1o\xa6latest");
    assert_eq!(sub(Start::Offset(0)), b"\x93\x05\xa1o\x00");
    assert_eq!(sub(Start::Offset(1000)), b"\x93\x05\xa1o\xcd\x03\xe8");
    assert_eq!(sub(Start::Last(10)), b"\x93\x05\xa1o\x92\xa4last\x0a");
    assert_eq!(sub(Start::Time(200)), b"\x93\x05\xa1o\x92\xa4time\xcc\xc8");
}

#[test]
fn start_reads_and_prints_like_its_wire_words() {
    for (text, start) in [
        ("earliest", Start::Earliest),
        ("latest", Start::Latest),
        ("0", Start::Offset(0)),
        ("18446744073709551615", Start::Offset(u64::MAX)),
        ("last:10", Start::Last(10)),
        ("time:1796205600000", Start::Time(1_796_205_600_000)),
    ] {
        assert_eq!(text.parse::<Start>(), Ok(start));
        assert_eq!(start.to_string(), text);
    }
    assert!("newest".parse::<Start>().is_err());
    assert!("-1".parse::<Start>().is_err());
    assert_eq!(Start::default(), Start::Earliest);
}

#[test]
fn frames_without_fields_are_one_element_arrays() {
    assert_eq!(Frame::Ping.to_bytes(), [0, 0, 0, 2, 0x91, 0x0b]);
    assert_eq!(Frame::Pong.to_bytes(), [0, 0, 0, 2, 0x91, 0x0c]);
}

#[test]
fn welcome_writes_max_frame_and_idle_timeout_as_integers() {
    assert_eq!(
        body(Frame::Welcome {
            version: 2,
            max_frame: 1 << 20,
            idle_timeout: 60_000,
        }),
        [
            0x94, 0x02, 0x02, 0xce, 0x00, 0x10, 0x00, 0x00, 0xcd, 0xea, 0x60
        ]
    );
}
