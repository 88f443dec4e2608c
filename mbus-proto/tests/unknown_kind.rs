//! Frame kinds this version does not define are a typed `UnknownKind` error, whatever follows.

mod common;

use common::with_prefix;
use mbus_proto::{DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame, decode};

fn parse(body: &[u8]) -> Result<Frame<'_>, DecodeError> {
    Frame::parse(body)
}

#[test]
fn kinds_outside_one_to_twenty_one_are_unknown() {
    for (body, kind) in [
        (&[0x91, 0x00][..], 0),
        (&[0x91, 0x16], 22),
        (&[0x91, 0x7f], 127),
        (&[0x91, 0xcc, 0xc8], 200),
        (&[0x91, 0xcc, 0xff], 255),
    ] {
        assert_eq!(
            parse(body),
            Err(DecodeError::UnknownKind(kind)),
            "{body:02x?}"
        );
    }
}

#[test]
fn unknown_kind_wins_over_the_shape_of_the_rest() {
    // A newer peer's frame has fields this version cannot know; the kind alone decides.
    let bodies: [&[u8]; 4] = [
        &[0x93, 0x16, 0xa1, b'x', 0x01],
        &[0x92, 0xcc, 0xc8, 0x80],
        &[0x92, 0x00, 0xc1], // followed by the byte msgpack never uses
        &[0xdc, 0x00, 0x03, 0x16, 0xc0, 0xc0],
    ];
    for body in bodies {
        assert!(
            matches!(parse(body), Err(DecodeError::UnknownKind(_))),
            "{body:02x?}"
        );
    }
}

#[test]
fn unknown_kind_in_any_integer_encoding() {
    for body in [
        &[0x91, 0xcd, 0x00, 0x16][..],
        &[0x91, 0xce, 0x00, 0x00, 0x00, 0x16],
        &[0x91, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0x16],
        &[0x91, 0xd0, 0x16],
        &[0x91, 0xd1, 0x00, 0x16],
    ] {
        assert_eq!(
            parse(body),
            Err(DecodeError::UnknownKind(22)),
            "{body:02x?}"
        );
    }
}

#[test]
fn kinds_beyond_a_byte_report_255() {
    // The error holds a u8; larger kinds are reported as the largest it can say.
    assert_eq!(
        parse(&[0x91, 0xcd, 0x01, 0x00]),
        Err(DecodeError::UnknownKind(255))
    );
    assert_eq!(
        parse(&[0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::UnknownKind(255))
    );
}

#[test]
fn unknown_kind_through_decode_and_its_code() {
    let bytes = with_prefix(&[0x91, 0x16]);
    let err = decode(&bytes, DEFAULT_MAX_FRAME).unwrap_err();
    assert_eq!(err, DecodeError::UnknownKind(22));
    assert_eq!(err.code(), ErrorCode::UnknownKind);
    assert_eq!(err.to_string(), "unknown frame kind 22");
}

#[test]
fn every_defined_kind_is_known() {
    // A one-element array of each defined kind is Malformed (fields missing) or a frame, never
    // UnknownKind.
    for kind in 1..=21u8 {
        let body = [0x91, kind];
        let result = parse(&body);
        assert!(
            !matches!(result, Err(DecodeError::UnknownKind(_))),
            "kind {kind}: {result:?}"
        );
    }
    assert_eq!(parse(&[0x91, 0x0b]), Ok(Frame::Ping));
    assert_eq!(parse(&[0x91, 0x0c]), Ok(Frame::Pong));
}
