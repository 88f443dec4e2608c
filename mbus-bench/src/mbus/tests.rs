//! The mbus parser on frames encoded by `mbus-proto`, whole, split and failing.

use super::*;
use crate::target::testing::{Owned, parse_split_anywhere};

#[test]
fn the_pong_constant_is_the_encoded_pong_frame() {
    assert_eq!(
        Frame::Pong.to_bytes(),
        [0, 0, 0, 2, 0x91, 0x0c],
        "pong() must answer pings with a real Pong"
    );
}

#[test]
fn server_frames_split_anywhere_parse_the_same() {
    let mut bytes = Vec::new();
    Frame::Welcome {
        version: PROTOCOL_VERSION,
        max_frame: 1 << 20,
        idle_timeout: 60_000,
    }
    .encode(&mut bytes);
    Frame::Subscribed {
        topic: TOPIC,
        offset: 0,
        first: 0,
        next: 0,
    }
    .encode(&mut bytes);
    Frame::Deliver {
        topic: TOPIC,
        offset: 7,
        time: 0,
        batch: mbus_proto::Batch::one(b"payload"),
    }
    .encode(&mut bytes);
    Frame::Ping.encode(&mut bytes);
    Frame::Confirm { count: 1000 }.encode(&mut bytes);
    assert_eq!(
        parse_split_anywhere(parse, &bytes),
        [
            Owned::Other("Welcome".into()),
            Owned::Other("Subscribed".into()),
            Owned::Message(b"payload".to_vec()),
            Owned::Other("Ping".into()),
            Owned::Other("Confirmed(1000)".into()),
        ]
    );
}

#[test]
fn a_gap_or_an_error_fails_with_its_details() {
    let gap = Frame::Gap {
        topic: TOPIC,
        from: 5,
        to: 300,
    };
    let err = parse(&gap.to_bytes()).unwrap_err().to_string();
    assert!(err.contains("offsets 5 to 300"), "{err}");
    let error = Frame::Error {
        code: mbus_proto::ErrorCode::SlowConsumer,
        reason: "too slow",
    };
    let err = parse(&error.to_bytes()).unwrap_err().to_string();
    assert!(
        err.contains("SlowConsumer") && err.contains("too slow"),
        "{err}"
    );
}

#[test]
fn a_sample_is_read_by_its_exact_name() {
    let text = "# HELP mbus_commit_duration_seconds Time each group commit took\n\
                mbus_commit_duration_seconds_sum 0.25\n\
                mbus_commit_duration_seconds_count_other 9\n\
                mbus_commit_duration_seconds_count 1234\n\
                mbus_commit_duration_seconds_bucket{le=\"0.001\"} 1200\n";
    assert_eq!(
        sample(text, "mbus_commit_duration_seconds_count"),
        Some(1234.0)
    );
    assert_eq!(sample(text, "mbus_commit_duration_seconds_sum"), Some(0.25));
    assert_eq!(sample(text, "mbus_commit_duration_seconds"), None);
}
