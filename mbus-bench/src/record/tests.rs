//! The payload layout and the checker on streams with one thing wrong each.

use super::{Checker, Wrong, payload, read_id, read_stamp, write_id, write_stamp};

fn message(publisher: u32, seq: u64) -> Vec<u8> {
    let mut p = payload(32);
    write_id(&mut p, publisher, seq);
    p
}

/// Feeds `stream` to a checker for 2 publishers of 3 messages each and returns the first
/// failure, or whether the stream was complete.
fn check(stream: &[(u32, u64)]) -> Result<bool, Wrong> {
    let mut checker = Checker::new(2, 3, 32);
    let mut complete = false;
    for &(publisher, seq) in stream {
        complete = checker.accept(&message(publisher, seq))?;
    }
    Ok(complete)
}

#[test]
fn identity_and_stamp_round_trip() {
    let mut p = payload(128);
    write_id(&mut p, 3, 1 << 40);
    write_stamp(&mut p, 123_456_789);
    assert_eq!(read_id(&p), Some((3, 1 << 40)));
    assert_eq!(read_stamp(&p), Some(123_456_789));
    assert_eq!(p.len(), 128);
    assert_eq!(read_id(&p[..11]), None);
}

#[test]
fn interleaved_publishers_in_their_own_order_pass() {
    let stream = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (1, 2)];
    assert_eq!(check(&stream), Ok(true));
    assert_eq!(check(&stream[..5]), Ok(false));
}

#[test]
fn a_gap_is_lost_or_reordered() {
    let err = check(&[(0, 0), (0, 2)]).unwrap_err().0;
    assert_eq!(
        err,
        "lost or reordered: publisher 0's message 2 arrived where message 1 was due"
    );
}

#[test]
fn a_repeat_is_a_duplicate() {
    let err = check(&[(0, 0), (1, 0), (0, 0)]).unwrap_err().0;
    assert_eq!(
        err,
        "duplicate: publisher 0's message 0 arrived a second time"
    );
}

#[test]
fn anything_after_the_last_message_is_a_duplicate() {
    let all = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)];
    assert_eq!(check(&all), Ok(true));
    let mut more = all.to_vec();
    more.push((1, 2));
    assert!(check(&more).unwrap_err().0.starts_with("duplicate"));
}

#[test]
fn strangers_and_wrong_sizes_are_refused() {
    let err = check(&[(2, 0)]).unwrap_err().0;
    assert_eq!(
        err,
        "a message from publisher 2 arrived, but only 2 publish"
    );
    let err = check(&[(0, 3)]).unwrap_err().0;
    assert_eq!(err, "publisher 0's message 3 arrived, but it sends only 3");
    let mut checker = Checker::new(1, 1, 32);
    let err = checker.accept(&payload(64)).unwrap_err().0;
    assert_eq!(
        err,
        "a message of 64 bytes arrived where every message has 32"
    );
}

#[test]
fn an_early_end_names_what_is_missing() {
    let mut checker = Checker::new(2, 3, 32);
    for (publisher, seq) in [(0, 0), (0, 1), (0, 2), (1, 0)] {
        checker.accept(&message(publisher, seq)).unwrap();
    }
    assert_eq!(
        checker.missing(),
        "lost: 4 of 6 messages arrived; missing publisher 1 from message 1"
    );
}
