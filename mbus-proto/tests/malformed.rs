//! Bytes that are not a frame of the right shape: truncated input waits for more, everything
//! else whose length prefix is acceptable is rejected as `Malformed`.

mod common;

use common::with_prefix;
use mbus_proto::{DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame, HEADER_LEN, decode};

fn assert_malformed(body: &[u8], why: &str) {
    let framed = with_prefix(body);
    let result = decode(&framed, DEFAULT_MAX_FRAME);
    assert!(
        matches!(result, Err(DecodeError::Malformed(_))),
        "{why}: body {body:02x?} gave {result:?}"
    );
    assert!(
        matches!(Frame::parse(body), Err(DecodeError::Malformed(_))),
        "{why}"
    );
}

fn malformed_message(body: &[u8]) -> String {
    match Frame::parse(body) {
        Err(DecodeError::Malformed(msg)) => msg,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// `s` as a msgpack fixstr.
fn fixstr(s: &str) -> Vec<u8> {
    assert!(s.len() < 32);
    let mut out = vec![0xa0 | s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

/// A body built from msgpack pieces laid end to end.
fn body(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn truncated_input_is_incomplete_not_an_error() {
    let hello = Frame::Hello {
        version: mbus_proto::PROTOCOL_VERSION,
        role: mbus_proto::Role::Producer,
        token: None,
    }
    .to_bytes();
    for cut in [0, 1, 3, HEADER_LEN, HEADER_LEN + 1, hello.len() - 1] {
        assert_eq!(
            decode(&hello[..cut], DEFAULT_MAX_FRAME),
            Ok(None),
            "cut at {cut}"
        );
    }
    // A prefix promising more than ever arrives is still only incomplete: the decoder cannot
    // know that the rest will not come.
    assert_eq!(
        decode(&[0, 0, 1, 0, 0x91, 0x0b], DEFAULT_MAX_FRAME),
        Ok(None)
    );
}

#[test]
fn body_cut_short_inside_its_msgpack_is_malformed() {
    // The prefix matches the bytes present, so the frame is complete, but its msgpack is not.
    let hello = Frame::Hello {
        version: mbus_proto::PROTOCOL_VERSION,
        role: mbus_proto::Role::Producer,
        token: None,
    }
    .to_bytes();
    let body = &hello[HEADER_LEN..];
    for cut in 1..body.len() {
        assert_malformed(&body[..cut], "truncated Hello body");
    }
    // A string header promising more bytes than the body holds.
    assert_malformed(&[0x93, 0x03, 0xa6, b'o', b'r'], "short fixstr");
    assert_malformed(
        &[0x93, 0x03, 0xa1, b'x', 0xc6, 0xff, 0xff, 0xff, 0xff],
        "short bin 32",
    );
}

#[test]
fn garbage_is_malformed() {
    for garbage in [
        &[0xc1][..], // the one byte msgpack never uses
        &[0xff, 0xff, 0xff],
        b"hello",
        &[0x00],
        &[0xc0],
        &[0xc3],
    ] {
        assert_malformed(garbage, "garbage");
    }
}

#[test]
fn empty_body_and_empty_array_are_malformed() {
    assert_malformed(&[], "empty body");
    assert_malformed(&[0x90], "empty fixarray");
    assert_malformed(&[0xdc, 0x00, 0x00], "empty array 16");
    assert_eq!(malformed_message(&[0x90]), "frame array is empty");
}

#[test]
fn other_msgpack_values_instead_of_an_array_are_malformed() {
    // {"kind": 11}: a map, which is how a naive serde derive would have encoded a frame.
    assert_malformed(&body(&[&[0x81], &fixstr("kind"), &[0x0b]]), "map");
    assert_malformed(&[0xc4, 0x01, 0x0b], "bin holding a kind byte");
    assert_malformed(&fixstr("Ping"), "string");
    assert_malformed(&[0x0b], "bare kind");
    assert_eq!(
        malformed_message(&[0x81, 0x0b, 0x0b]),
        "frame body is not a msgpack array"
    );
}

#[test]
fn kind_that_is_not_an_unsigned_integer_is_malformed() {
    assert_malformed(&body(&[&[0x91], &fixstr("ping")]), "string kind");
    assert_malformed(
        &body(&[&[0x92], &fixstr("publish"), &fixstr("x")]),
        "string kind",
    );
    assert_malformed(&[0x91, 0xc0], "nil kind");
    assert_malformed(&[0x91, 0xc3], "true kind");
    assert_malformed(&[0x91, 0xff], "negative kind");
    assert_malformed(&[0x91, 0xd0, 0x80], "negative int 8 kind");
    assert_malformed(&[0x91, 0xca, 0x41, 0x30, 0x00, 0x00], "float kind 11.0");
    assert_malformed(&[0x91, 0x91, 0x0b], "array kind");
}

#[test]
fn fields_of_the_wrong_type_are_malformed() {
    let producer = fixstr("producer");
    let orders = fixstr("orders");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Hello version as string",
            body(&[&[0x94, 0x01], &fixstr("1"), &producer, &[0xc0]]),
        ),
        (
            "Hello role unknown",
            body(&[&[0x94, 0x01, 0x02], &fixstr("admin"), &[0xc0]]),
        ),
        ("Hello role as integer", vec![0x94, 0x01, 0x02, 0x01, 0xc0]),
        ("Hello role nil", vec![0x94, 0x01, 0x02, 0xc0, 0xc0]),
        (
            "Hello token as integer",
            body(&[&[0x94, 0x01, 0x02], &producer, &[0x05]]),
        ),
        (
            "Hello token as array",
            body(&[&[0x94, 0x01, 0x02], &producer, &[0x90]]),
        ),
        (
            "Welcome version over 255",
            vec![0x93, 0x02, 0xcd, 0x01, 0x00, 0x00],
        ),
        (
            "Welcome max_frame over u32",
            vec![0x93, 0x02, 0x01, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0],
        ),
        ("Welcome max_frame negative", vec![0x93, 0x02, 0x01, 0xff]),
        (
            "Publish topic as integer",
            vec![0x93, 0x03, 0x07, 0xc4, 0x00],
        ),
        ("Publish topic nil", vec![0x93, 0x03, 0xc0, 0xc4, 0x00]),
        (
            "Publish data as array of integers",
            body(&[
                &[0x93, 0x03],
                &orders,
                &[0x91, 0x92, 0x00, 0x93, 0x01, 0x02, 0x03],
            ]),
        ),
        (
            "Publish messages nil",
            body(&[&[0x93, 0x03], &orders, &[0xc0]]),
        ),
        (
            "Publish data as integer",
            body(&[&[0x93, 0x03], &orders, &[0x91, 0x92, 0x00, 0x2a]]),
        ),
        (
            "Confirm count as string",
            body(&[&[0x92, 0x04], &fixstr("1")]),
        ),
        ("Confirm count negative", vec![0x92, 0x04, 0xff]),
        (
            "Confirm count as float",
            vec![0x92, 0x04, 0xca, 0x3f, 0x80, 0, 0],
        ),
        ("Confirm count nil", vec![0x92, 0x04, 0xc0]),
        (
            "Subscribe start unknown word",
            body(&[&[0x93, 0x05], &orders, &fixstr("newest")]),
        ),
        (
            "Subscribe start capitalised",
            body(&[&[0x93, 0x05], &orders, &fixstr("Earliest")]),
        ),
        (
            "Subscribe start negative",
            body(&[&[0x93, 0x05], &orders, &[0xff]]),
        ),
        (
            "Subscribe start nil",
            body(&[&[0x93, 0x05], &orders, &[0xc0]]),
        ),
        (
            "Subscribe start as bin",
            body(&[&[0x93, 0x05], &orders, &[0xc4, 0x01, 0x00]]),
        ),
        (
            "Subscribed offset as string",
            body(&[&[0x95, 0x06], &orders, &fixstr("0"), &[0x00, 0x00]]),
        ),
        ("Unsubscribe topic as integer", vec![0x92, 0x07, 0x01]),
        (
            "Deliver offset as string",
            body(&[
                &[0x95, 0x08],
                &orders,
                &fixstr("0"),
                &[0x00, 0x91, 0x92, 0x00, 0xc4, 0x00],
            ]),
        ),
        (
            "Deliver data as integer",
            body(&[
                &[0x95, 0x08],
                &orders,
                &[0x00, 0x00, 0x91, 0x92, 0x00, 0x01],
            ]),
        ),
        (
            "Gap from negative",
            body(&[&[0x94, 0x09], &orders, &[0xff, 0x01]]),
        ),
        (
            "Gap to as string",
            body(&[&[0x94, 0x09], &orders, &[0x00], &fixstr("1")]),
        ),
        (
            "Error code over u16",
            body(&[&[0x93, 0x0a, 0xce, 0x00, 0x01, 0x00, 0x00], &fixstr("x")]),
        ),
        (
            "Error code as string",
            body(&[&[0x93, 0x0a], &fixstr("1"), &fixstr("x")]),
        ),
        ("Error reason nil", vec![0x93, 0x0a, 0x01, 0xc0]),
    ];
    for (why, body) in cases {
        assert_malformed(&body, why);
    }
}

#[test]
fn missing_fields_are_malformed() {
    // Lowering the array length by one leaves the last field outside the array, so the frame
    // lacks it; the stray bytes after the array do not rescue it.
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        let mut body = bytes[HEADER_LEN..].to_vec();
        let fields = body[0] & 0x0f;
        assert_eq!(body[0] & 0xf0, 0x90, "samples use fixarray headers");
        if fields == 1 {
            continue; // Ping and Pong have no fields; `[]` is tested on its own.
        }
        body[0] -= 1;
        let msg = malformed_message(&body);
        assert!(msg.contains("missing field"), "{}: {msg}", frame.name());
        assert!(msg.starts_with(frame.name()), "{}: {msg}", frame.name());
    }
    assert_eq!(
        malformed_message(&[0x92, 0x03, 0xa1, b'x']),
        "Publish: missing field `messages`"
    );
}

#[test]
fn extra_fields_are_malformed() {
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        let mut body = bytes[HEADER_LEN..].to_vec();
        body[0] += 1;
        for extra in [&[0xc0][..], &[0x00], &[0x90], &[0xa1, b'x']] {
            let mut longer = body.clone();
            longer.extend_from_slice(extra);
            let msg = malformed_message(&longer);
            assert!(msg.contains("more elements"), "{}: {msg}", frame.name());
        }
    }
}

#[test]
fn array_header_promising_more_elements_than_present_is_malformed() {
    assert_malformed(&[0xdc, 0x00, 0x05, 0x0b], "array 16 of 5 holding one");
    assert_malformed(
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x0b],
        "array 32 of 4 billion",
    );
    assert_malformed(&[0xdc], "array 16 header cut short");
    assert_malformed(&[0xdd, 0x00, 0x00], "array 32 header cut short");
}

#[test]
fn invalid_utf8_in_strings_is_malformed() {
    let bad = [0xa2, 0xff, 0xfe];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Publish topic",
            body(&[&[0x93, 0x03], &bad, &[0x91, 0x92, 0x00, 0xc4, 0x00]]),
        ),
        (
            "Subscribe topic",
            body(&[&[0x93, 0x05], &bad, &fixstr("latest")]),
        ),
        (
            "Subscribed topic",
            body(&[&[0x95, 0x06], &bad, &[0x00, 0x00, 0x00]]),
        ),
        ("Unsubscribe topic", body(&[&[0x92, 0x07], &bad])),
        (
            "Deliver topic",
            body(&[
                &[0x95, 0x08],
                &bad,
                &[0x00, 0x00, 0x91, 0x92, 0x00, 0xc4, 0x00],
            ]),
        ),
        ("Gap topic", body(&[&[0x94, 0x09], &bad, &[0x00, 0x01]])),
        ("Hello role", body(&[&[0x94, 0x01, 0x02], &bad, &[0xc0]])),
        (
            "Hello token",
            body(&[&[0x94, 0x01, 0x02], &fixstr("consumer"), &bad]),
        ),
        ("Error reason", body(&[&[0x93, 0x0a, 0x01], &bad])),
        // A lone continuation byte and an overlong encoding of '/'.
        (
            "Publish topic",
            body(&[&[0x93, 0x03, 0xa1, 0x80], &[0x91, 0x92, 0x00, 0xc4, 0x00]]),
        ),
        (
            "Publish topic",
            body(&[
                &[0x93, 0x03, 0xa2, 0xc0, 0xaf],
                &[0x91, 0x92, 0x00, 0xc4, 0x00],
            ]),
        ),
    ];
    for (why, body) in cases {
        assert_malformed(&body, why);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // A Ping whose extra element is an array nested 100,000 deep.
    let mut body = vec![0x92, 0x0b];
    body.extend(std::iter::repeat_n(0x91, 100_000));
    body.push(0xc0);
    assert_malformed(&body, "deeply nested extra element");
}

#[test]
fn an_http_request_is_refused_by_its_first_four_bytes() {
    // "GET " read as a length is about 1.2 GB: far over any limit, so nothing more is read.
    let result = decode(b"GET / HTTP/1.1\r\nHost: mbus\r\n\r\n", DEFAULT_MAX_FRAME);
    assert_eq!(
        result,
        Err(DecodeError::TooLarge {
            len: u32::from_be_bytes(*b"GET "),
            max: DEFAULT_MAX_FRAME
        })
    );
}

#[test]
fn malformed_maps_to_its_error_code() {
    let err = Frame::parse(&[0x90]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Malformed);
    assert_eq!(err.to_string(), "malformed frame: frame array is empty");
}
