//! The frame size limit: an oversized length prefix is refused from its four bytes alone, and a
//! frame exactly at the limit is accepted.

mod common;

use mbus_proto::{DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame, HEADER_LEN, check, decode};

/// A `Publish` whose body is exactly `body_len` bytes: array, kind, topic "t" and a bin 32
/// header take 9 bytes.
fn publish_of_body_len(data: &mut Vec<u8>, body_len: u32) -> Frame<'_> {
    // 93 03 a1 74, then 91 92 00 and a bin 32 header of 5 bytes.
    data.resize(body_len as usize - 12, 0xab);
    Frame::publish("t", data)
}

#[test]
fn default_limit_is_one_mebibyte() {
    assert_eq!(DEFAULT_MAX_FRAME, 1024 * 1024);
    assert_eq!(HEADER_LEN, 4);
}

#[test]
fn oversized_prefix_is_refused_from_the_prefix_alone() {
    for (len, max) in [
        (DEFAULT_MAX_FRAME + 1, DEFAULT_MAX_FRAME),
        (u32::MAX, DEFAULT_MAX_FRAME),
        (1, 0),
        (17, 16),
    ] {
        let prefix = len.to_be_bytes();
        let expected = DecodeError::TooLarge { len, max };
        assert_eq!(check(&prefix, max), Err(expected.clone()));
        assert_eq!(decode(&prefix, max), Err(expected.clone()));
        // Whatever follows the prefix does not matter.
        let mut more = prefix.to_vec();
        more.extend_from_slice(&[0x91, 0x0b]);
        assert_eq!(decode(&more, max), Err(expected));
    }
}

#[test]
fn fewer_than_four_bytes_are_never_refused() {
    // Not even the largest possible length can be known before the fourth byte arrives.
    for n in 0..HEADER_LEN {
        assert_eq!(decode(&[0xff; 3][..n], 0), Ok(None));
    }
}

#[test]
fn prefix_at_the_limit_waits_for_its_body() {
    let prefix = DEFAULT_MAX_FRAME.to_be_bytes();
    assert_eq!(check(&prefix, DEFAULT_MAX_FRAME), Ok(None));
    assert_eq!(decode(&prefix, DEFAULT_MAX_FRAME), Ok(None));
}

#[test]
fn frame_exactly_at_the_limit_is_accepted() {
    let mut data = Vec::new();
    let frame = publish_of_body_len(&mut data, DEFAULT_MAX_FRAME);
    let bytes = frame.to_bytes();
    assert_eq!(bytes.len() - HEADER_LEN, DEFAULT_MAX_FRAME as usize);
    assert_eq!(
        decode(&bytes, DEFAULT_MAX_FRAME),
        Ok(Some((frame, bytes.len())))
    );
    // One byte less of limit and the same frame is refused.
    assert_eq!(
        decode(&bytes, DEFAULT_MAX_FRAME - 1),
        Err(DecodeError::TooLarge {
            len: DEFAULT_MAX_FRAME,
            max: DEFAULT_MAX_FRAME - 1
        })
    );
}

#[test]
fn small_limit_applies_to_the_body_not_the_prefix() {
    let bytes = Frame::Ping.to_bytes();
    assert_eq!(bytes, [0, 0, 0, 2, 0x91, 0x0b]);
    assert_eq!(decode(&bytes, 2), Ok(Some((Frame::Ping, 6))));
    assert_eq!(
        decode(&bytes, 1),
        Err(DecodeError::TooLarge { len: 2, max: 1 })
    );
}

#[test]
fn zero_length_body_is_malformed_not_too_large() {
    assert!(matches!(
        decode(&[0, 0, 0, 0], 0),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn too_large_maps_to_its_error_code() {
    let err = check(&u32::MAX.to_be_bytes(), 10).unwrap_err();
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert_eq!(
        err.to_string(),
        "frame of 4294967295 bytes exceeds the limit of 10 bytes"
    );
}

#[test]
fn every_sample_frame_is_refused_by_a_limit_one_below_its_body() {
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        let body = u32::try_from(bytes.len() - HEADER_LEN).unwrap();
        assert_eq!(
            decode(&bytes, body - 1),
            Err(DecodeError::TooLarge {
                len: body,
                max: body - 1
            }),
            "{}",
            frame.name()
        );
    }
}

#[test]
fn the_largest_publish_payload_is_the_largest_that_fits_the_frame() {
    use mbus_proto::max_publish_data;
    for topic in ["t", &"x".repeat(40), &"y".repeat(255)] {
        for max_frame in [40u32, 300, 4096, 65_600, 70_000, DEFAULT_MAX_FRAME] {
            let most = max_publish_data(topic, max_frame);
            let body = |n: usize| {
                Frame::publish(topic, &vec![0; n]).to_bytes().len() - mbus_proto::HEADER_LEN
            };
            if most > 0 || body(0) <= max_frame as usize {
                assert!(
                    body(most) <= max_frame as usize,
                    "{topic}/{max_frame}: {most}"
                );
            }
            assert!(
                body(most + 1) > max_frame as usize,
                "{topic}/{max_frame}: {most}"
            );
        }
    }
}

#[test]
fn a_publish_of_any_batch_is_as_long_as_publish_len_says() {
    use mbus_proto::{BatchBuilder, publish_len};
    for topic in ["t", &"x".repeat(40), &"y".repeat(300)] {
        let mut builder = BatchBuilder::new();
        for i in 0..70usize {
            let headers: &[(&str, &[u8])] = if i % 3 == 0 { &[("k", b"v")] } else { &[] };
            builder.push(&vec![1; i * 37], headers).unwrap();
            let batch = builder.batch().unwrap();
            let body = Frame::Publish { topic, batch }.to_bytes().len() - HEADER_LEN;
            assert_eq!(
                publish_len(topic, batch.encoded_len()),
                body,
                "{topic}, {i}"
            );
        }
    }
}

#[test]
fn the_message_pushed_last_can_be_taken_back_once() {
    use mbus_proto::BatchBuilder;
    let mut builder = BatchBuilder::new();
    builder.push(b"one", &[]).unwrap();
    let one = builder.clone();
    builder.push(b"two", &[("h", b"x")]).unwrap();
    assert!(builder.undo_last());
    assert_eq!((builder.len(), builder.batch()), (1, one.batch()));
    assert!(!builder.undo_last(), "only the message pushed last");
    builder.clear();
    assert!(!builder.undo_last());
}
