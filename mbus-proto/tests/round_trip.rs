//! Round trips: every frame kind, with edge-case fields, decodes back to the frame that was encoded.

mod common;

use mbus_proto::{DEFAULT_MAX_FRAME, Frame, HEADER_LEN, decode};

#[test]
fn every_frame_decodes_to_itself() {
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        let (decoded, used) = decode(&bytes, DEFAULT_MAX_FRAME)
            .unwrap_or_else(|e| panic!("{}: {e}", frame.name()))
            .unwrap_or_else(|| panic!("{}: reported incomplete", frame.name()));
        assert_eq!(decoded, frame);
        assert_eq!(used, bytes.len(), "{}", frame.name());
    }
}

#[test]
fn body_parses_to_the_frame_without_the_prefix() {
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        assert_eq!(Frame::parse(&bytes[HEADER_LEN..]), Ok(frame));
    }
}

#[test]
fn prefix_holds_the_body_length() {
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        let prefix = u32::from_be_bytes(bytes[..HEADER_LEN].try_into().unwrap());
        assert_eq!(prefix as usize, bytes.len() - HEADER_LEN, "{frame:?}");
    }
}

#[test]
fn kind_is_the_second_body_byte() {
    let mut seen = Vec::new();
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        assert_eq!(bytes[HEADER_LEN + 1], frame.kind(), "{}", frame.name());
        seen.push(frame.kind());
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        (1..=21).collect::<Vec<u8>>(),
        "a frame kind is missing from the samples"
    );
}

#[test]
fn encode_appends_without_touching_what_is_there() {
    let frame = Frame::Confirm { count: 7 };
    let mut buf = b"already here".to_vec();
    frame.encode(&mut buf);
    assert_eq!(&buf[..12], b"already here");
    assert_eq!(buf[12..], frame.to_bytes());
}
