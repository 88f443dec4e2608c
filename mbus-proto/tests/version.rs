//! A `Hello` of any version but 2 is a typed `UnsupportedVersion` error, whatever shape the rest
//! of it has, so a broker can always answer an old or new client cleanly.

mod common;

use common::with_prefix;
use mbus_proto::{
    DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame, HEADER_LEN, PROTOCOL_VERSION, Role, decode,
};

const PRODUCER: &[u8] = b"\xa8producer";

fn body(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn this_crate_speaks_version_two() {
    assert_eq!(PROTOCOL_VERSION, 2);
}

#[test]
fn a_sender_writes_the_version_as_the_third_body_byte_of_a_hello() {
    for role in [Role::Producer, Role::Consumer] {
        for token in [None, Some("s3cret")] {
            let bytes = Frame::Hello {
                version: PROTOCOL_VERSION,
                role,
                token,
            }
            .to_bytes();
            let body = &bytes[HEADER_LEN..];
            assert_eq!(&body[..3], &[0x94, 0x01, PROTOCOL_VERSION]);
        }
    }
}

#[test]
fn a_version_one_hello_is_unsupported_and_told_the_version_spoken() {
    let hello = body(&[&[0x94, 0x01, 0x01], PRODUCER, &[0xc0]]);
    assert_eq!(
        Frame::parse(&hello),
        Err(DecodeError::UnsupportedVersion(1))
    );
    let err = decode(&with_prefix(&hello), DEFAULT_MAX_FRAME).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedVersion(1));
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
    assert_eq!(
        err.to_string(),
        "unsupported protocol version 1 (this side speaks version 2 only)"
    );
}

#[test]
fn other_versions_with_any_other_shape_are_unsupported() {
    for v in [0x01, 0x03] {
        let shapes: [Vec<u8>; 6] = [
            vec![0x92, 0x01, v],
            body(&[&[0x93, 0x01, v], &[0x81, 0xa4], b"role", PRODUCER]),
            body(&[&[0x95, 0x01, v], PRODUCER, &[0xc0, 0x07]]),
            vec![0x94, 0x01, v, 0x01, 0x02],
            vec![0x93, 0x01, v, 0xc1], // a byte msgpack never uses
            vec![0x94, 0x01, v],       // the array ends early
        ];
        for hello in shapes {
            assert_eq!(
                Frame::parse(&hello),
                Err(DecodeError::UnsupportedVersion(v)),
                "{hello:02x?}"
            );
        }
    }
}

#[test]
fn versions_zero_and_large_are_unsupported() {
    for (version, expected) in [
        (&[0x00][..], 0),
        (&[0x7f], 127),
        (&[0xcc, 0xff], 255),
        // Beyond a byte, the error reports the largest version it can hold.
        (&[0xcd, 0x01, 0x00], 255),
        (&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 255),
    ] {
        let hello = body(&[&[0x94, 0x01], version, PRODUCER, &[0xc0]]);
        assert_eq!(
            Frame::parse(&hello),
            Err(DecodeError::UnsupportedVersion(expected)),
            "{version:02x?}"
        );
    }
}

#[test]
fn version_one_in_a_wider_or_signed_encoding_is_unsupported() {
    // serde would read these as 1 happily; the version check must read them the same way.
    for version in [
        &[0xcc, 0x01][..],
        &[0xcd, 0x00, 0x01],
        &[0xce, 0x00, 0x00, 0x00, 0x01],
        &[0xd0, 0x01],
        &[0xd1, 0x00, 0x01],
        &[0xd2, 0x00, 0x00, 0x00, 0x01],
        &[0xd3, 0, 0, 0, 0, 0, 0, 0, 0x01],
    ] {
        let hello = body(&[&[0x94, 0x01], version, PRODUCER, &[0xc0]]);
        assert_eq!(
            Frame::parse(&hello),
            Err(DecodeError::UnsupportedVersion(1)),
            "{version:02x?}"
        );
    }
}

#[test]
fn the_version_is_read_as_msgpack_not_from_a_fixed_byte() {
    // An array 16 header and a kind in uint 16 put the version at byte 7, not 3: it is still
    // the version, and version 1 is still refused as such, while version 2 is accepted.
    for (version, ok) in [(0x01, false), (0x02, true)] {
        let hello = body(&[
            &[0xdc, 0x00, 0x04, 0xcd, 0x00, 0x01, version],
            PRODUCER,
            &[0xc0],
        ]);
        let parsed = Frame::parse(&hello);
        if ok {
            assert!(
                matches!(parsed, Ok(Frame::Hello { version: 2, .. })),
                "{parsed:?}"
            );
        } else {
            assert_eq!(parsed, Err(DecodeError::UnsupportedVersion(1)));
        }
    }
}

#[test]
fn version_two_in_a_wider_encoding_is_accepted() {
    let hello = body(&[&[0x94, 0x01, 0xcd, 0x00, 0x02], PRODUCER, &[0xc0]]);
    assert_eq!(
        Frame::parse(&hello),
        Ok(Frame::Hello {
            version: 2,
            role: Role::Producer,
            token: None
        })
    );
}

#[test]
fn a_version_that_is_not_an_integer_is_malformed() {
    for version in [&[0xa1, b'2'][..], &[0xc0], &[0xff]] {
        let hello = body(&[&[0x94, 0x01], version, PRODUCER, &[0xc0]]);
        assert!(
            matches!(Frame::parse(&hello), Err(DecodeError::Malformed(_))),
            "{version:02x?}"
        );
    }
}

#[test]
fn only_hello_is_checked_for_its_version() {
    // A Welcome reports the broker's version; judging it is the client's business, not the
    // decoder's.
    let welcome = Frame::Welcome {
        version: 3,
        max_frame: 1024,
        idle_timeout: 60_000,
    };
    assert_eq!(
        decode(&welcome.to_bytes(), DEFAULT_MAX_FRAME),
        Ok(Some((welcome, 13)))
    );
}
