//! Streams with one thing wrong each, and the report each must get.

use super::{Expected, Kind, MessageId, check};

const EXPECTED: Expected = Expected {
    topic: "integration",
    producers: 3,
    per_producer: 4,
};

fn line(offset: u64, data: &str) -> String {
    serde_json::json!({ "topic": "integration", "offset": offset, "data": data }).to_string()
}

/// What a consumer prints when all goes well: producers interleaved, offsets 0, 1, 2, ...
fn good_stream() -> Vec<String> {
    let mut lines = Vec::new();
    for seq in 0..EXPECTED.per_producer {
        for producer in 0..EXPECTED.producers {
            let data = MessageId { producer, seq }.data();
            lines.push(line(lines.len() as u64, &data));
        }
    }
    lines
}

fn kind_of(lines: &[String]) -> Kind {
    match check(lines, &EXPECTED) {
        Ok(()) => panic!("the stream passed"),
        Err(failure) => {
            // The report must name what went wrong in words, not only as a kind.
            assert!(!failure.to_string().is_empty());
            failure.kind
        }
    }
}

#[test]
fn a_correct_stream_passes() {
    check(&good_stream(), &EXPECTED).unwrap();
}

#[test]
fn a_message_lost_in_the_middle_fails_at_the_line_after_the_gap() {
    let mut lines = good_stream();
    lines.remove(5);
    let failure = check(&lines, &EXPECTED).unwrap_err();
    assert_eq!(failure.kind, Kind::Lost);
    assert_eq!(failure.detail, "offset 5 never arrived");
    assert_eq!(failure.line, Some((6, lines[5].clone())));
}

#[test]
fn a_stream_that_ends_early_is_lost() {
    let mut lines = good_stream();
    lines.pop();
    let failure = check(&lines, &EXPECTED).unwrap_err();
    assert_eq!(failure.kind, Kind::Lost);
    assert_eq!(
        failure.to_string(),
        "lost: got 11 of 12 messages; offset 11 and later never arrived"
    );
}

#[test]
fn an_empty_stream_is_lost() {
    assert_eq!(kind_of(&[]), Kind::Lost);
}

#[test]
fn a_message_delivered_twice_is_a_duplicate() {
    let mut lines = good_stream();
    lines.insert(4, lines[3].clone());
    let failure = check(&lines, &EXPECTED).unwrap_err();
    assert_eq!(failure.kind, Kind::Duplicate);
    assert_eq!(
        failure.to_string(),
        format!(
            "duplicate: p0-1 was already delivered on line 4 (line 5: {})",
            lines[4]
        )
    );
}

#[test]
fn a_message_published_twice_is_a_duplicate_even_with_fresh_offsets() {
    let mut lines = good_stream();
    lines[4] = line(4, "p0-1");
    assert_eq!(kind_of(&lines), Kind::Duplicate);
}

#[test]
fn an_offset_delivered_twice_is_a_duplicate() {
    let mut lines = good_stream();
    lines[4] = line(3, "p1-1");
    assert_eq!(kind_of(&lines), Kind::Duplicate);
}

#[test]
fn two_swapped_deliveries_are_reordered() {
    let mut lines = good_stream();
    lines.swap(6, 7);
    let failure = check(&lines, &EXPECTED).unwrap_err();
    assert_eq!(failure.kind, Kind::Reordered);
    assert_eq!(failure.detail, "offset 7 arrived before offset 6");
    assert_eq!(failure.line.unwrap().0, 7);
}

#[test]
fn a_producer_whose_messages_swapped_places_is_reordered() {
    let mut lines = good_stream();
    // Offsets stay in order; p2's messages 1 and 2 traded places in the log.
    lines[5] = line(5, "p2-2");
    lines[8] = line(8, "p2-1");
    let failure = check(&lines, &EXPECTED).unwrap_err();
    assert_eq!(failure.kind, Kind::Reordered);
    assert_eq!(failure.detail, "p2-2 arrived before p2-1");
}

#[test]
fn a_stream_that_does_not_start_at_offset_0_is_lost() {
    let lines = good_stream();
    assert_eq!(kind_of(&lines[1..]), Kind::Lost);
}

#[test]
fn lines_that_are_not_deliveries_of_this_run_are_malformed() {
    let bad = [
        "not json".to_owned(),
        r#"{"topic":"integration","data":"p0-0"}"#.to_owned(),
        r#"{"topic":"integration","offset":0,"data_base64":"/w=="}"#.to_owned(),
        r#"{"topic":"other","offset":0,"data":"p0-0"}"#.to_owned(),
        line(0, "hello"),
        line(0, "p3-0"),
        line(0, "p0-4"),
        line(0, "p0-+1"),
    ];
    for text in bad {
        let failure = check(std::slice::from_ref(&text), &EXPECTED).unwrap_err();
        assert_eq!(failure.kind, Kind::Malformed, "{text}");
        assert_eq!(failure.line, Some((1, text)));
    }
}

#[test]
fn message_ids_round_trip() {
    let id = MessageId {
        producer: 12,
        seq: 24_999,
    };
    assert_eq!(MessageId::parse(&id.data()), Some(id));
    assert_eq!(MessageId::parse("p-1"), None);
    assert_eq!(MessageId::parse("p1-"), None);
    assert_eq!(MessageId::parse("q1-1"), None);
}
