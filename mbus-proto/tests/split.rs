//! Streaming: a frame split at any byte is incomplete until its last byte, and frames sent back
//! to back come apart at the right places.

mod common;

use mbus_proto::{DEFAULT_MAX_FRAME, Frame, check, decode};

#[test]
fn every_prefix_of_a_frame_is_incomplete() {
    for frame in common::every_frame() {
        let bytes = frame.to_bytes();
        for cut in 0..bytes.len() {
            let (head, _) = bytes.split_at(cut);
            assert_eq!(
                decode(head, DEFAULT_MAX_FRAME),
                Ok(None),
                "{} cut at {cut} of {}",
                frame.name(),
                bytes.len()
            );
            assert_eq!(check(head, DEFAULT_MAX_FRAME), Ok(None));
        }
        assert_eq!(
            decode(&bytes, DEFAULT_MAX_FRAME),
            Ok(Some((frame, bytes.len())))
        );
    }
}

#[test]
fn a_frame_split_in_two_reassembles_at_every_offset() {
    // What a reader does with a socket: append what arrived, try to decode, repeat.
    for frame in common::every_frame()
        .into_iter()
        .filter(|f| f.to_bytes().len() < 4096)
    {
        let bytes = frame.to_bytes();
        for cut in 0..=bytes.len() {
            let mut buf = bytes[..cut].to_vec();
            let first = decode(&buf, DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(
                first.is_some(),
                cut == bytes.len(),
                "{frame:?} cut at {cut}"
            );
            buf.extend_from_slice(&bytes[cut..]);
            assert_eq!(
                decode(&buf, DEFAULT_MAX_FRAME),
                Ok(Some((frame, bytes.len())))
            );
        }
    }
}

#[test]
fn check_tells_the_full_length_once_everything_is_there() {
    for frame in common::every_frame() {
        let mut bytes = frame.to_bytes();
        let len = bytes.len();
        assert_eq!(check(&bytes, DEFAULT_MAX_FRAME), Ok(Some(len)));
        // Bytes of a following frame do not change where this one ends.
        bytes.extend_from_slice(&[0, 0, 0, 1, 0x91]);
        assert_eq!(check(&bytes, DEFAULT_MAX_FRAME), Ok(Some(len)));
    }
}

#[test]
fn concatenated_frames_decode_one_after_another() {
    let frames = common::every_frame();
    let mut stream = Vec::new();
    let mut ends = Vec::new();
    for frame in &frames {
        frame.encode(&mut stream);
        ends.push(stream.len());
    }

    let mut at = 0;
    let mut decoded = Vec::new();
    while let Some((frame, used)) = decode(&stream[at..], DEFAULT_MAX_FRAME).unwrap() {
        assert_eq!(used, frame.to_bytes().len());
        at += used;
        assert_eq!(
            Some(&at),
            ends.get(decoded.len()),
            "frame {} ended early or late",
            decoded.len()
        );
        decoded.push(frame);
    }
    assert_eq!(at, stream.len(), "bytes left over");
    assert_eq!(decoded, frames);
}

#[test]
fn concatenated_frames_with_a_partial_tail_stop_at_the_tail() {
    let whole = [
        Frame::Ping,
        Frame::Confirm { count: 3 },
        Frame::publish("orders", b"look ma! a new order"),
    ];
    let mut stream = Vec::new();
    for frame in &whole {
        frame.encode(&mut stream);
    }
    let complete = stream.len();
    let tail = Frame::Deliver {
        topic: "orders",
        offset: 9,
        time: 0,
        batch: mbus_proto::Batch::one(b"half"),
    }
    .to_bytes();
    stream.extend_from_slice(&tail[..tail.len() / 2]);

    let mut at = 0;
    for expected in whole {
        let (frame, used) = decode(&stream[at..], DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(frame, expected);
        at += used;
    }
    assert_eq!(at, complete);
    assert_eq!(decode(&stream[at..], DEFAULT_MAX_FRAME), Ok(None));
}
