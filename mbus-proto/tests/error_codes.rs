//! Error codes: the number of every `ErrorCode` on the wire, and the code each `DecodeError`
//! is answered with.

mod common;

use common::NAMED_CODES;
use mbus_proto::{DecodeError, ErrorCode, Frame, HEADER_LEN};

#[test]
fn named_codes_have_their_fixed_numbers() {
    for (code, n) in NAMED_CODES {
        assert_eq!(code.to_u16(), n, "{code:?}");
        assert_eq!(ErrorCode::from_u16(n), code, "{n}");
    }
    // The table in the samples covers 1 to 14 with no hole, so no named code is forgotten.
    let numbers: Vec<u16> = NAMED_CODES.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=14).collect::<Vec<u16>>());
}

#[test]
fn unknown_numbers_are_kept_as_other() {
    for n in [0, 15, 100, 1000, u16::MAX] {
        assert_eq!(ErrorCode::from_u16(n), ErrorCode::Other(n));
        assert_eq!(ErrorCode::Other(n).to_u16(), n);
    }
}

#[test]
fn other_with_a_known_number_reads_back_as_the_named_code() {
    // The wire has only the number, so `Other(6)` is indistinguishable from `InvalidTopic`.
    let frame = Frame::Error {
        code: ErrorCode::Other(6),
        reason: "",
    };
    let bytes = frame.to_bytes();
    assert_eq!(
        Frame::parse(&bytes[HEADER_LEN..]),
        Ok(Frame::Error {
            code: ErrorCode::InvalidTopic,
            reason: ""
        })
    );
}

#[test]
fn error_frame_carries_the_number() {
    for (code, n) in NAMED_CODES {
        let bytes = Frame::Error { code, reason: "x" }.to_bytes();
        // [10, n, "x"]: every named code fits a positive fixint.
        assert_eq!(
            bytes[HEADER_LEN..],
            [0x93, 0x0a, n as u8, 0xa1, b'x'],
            "{code:?}"
        );
    }
    let bytes = Frame::Error {
        code: ErrorCode::Other(1000),
        reason: "",
    }
    .to_bytes();
    assert_eq!(bytes[HEADER_LEN..], [0x93, 0x0a, 0xcd, 0x03, 0xe8, 0xa0]);
}

#[test]
fn each_decode_error_maps_to_its_code() {
    let cases = [
        (
            DecodeError::TooLarge { len: 2, max: 1 },
            ErrorCode::FrameTooLarge,
            2,
        ),
        (DecodeError::Malformed("x".into()), ErrorCode::Malformed, 1),
        (DecodeError::UnknownKind(13), ErrorCode::UnknownKind, 3),
        (
            DecodeError::UnsupportedVersion(2),
            ErrorCode::UnsupportedVersion,
            4,
        ),
    ];
    for (err, code, n) in cases {
        assert_eq!(err.code(), code, "{err}");
        assert_eq!(err.code().to_u16(), n, "{err}");
    }
}

#[test]
fn decode_errors_read_as_sentences_without_a_trailing_period() {
    let errors = [
        DecodeError::TooLarge { len: 2, max: 1 },
        DecodeError::Malformed("frame array is empty".into()),
        DecodeError::UnknownKind(13),
        DecodeError::UnsupportedVersion(2),
    ];
    for err in errors {
        let text = err.to_string();
        assert!(!text.is_empty() && !text.ends_with('.'), "{text:?}");
    }
}
