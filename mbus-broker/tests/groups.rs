//! Consumer groups in the core, on a simulated clock: sharing, acks, redelivery after the ack
//! wait, naks, progress, dead letters, members that leave, credit, and groups beside plain
//! subscribers.

mod support;

use std::time::{Duration, Instant};

use mbus_broker::BrokerConfig;
use mbus_broker::engine::{ConnId, Progress};
use mbus_proto::{
    AckAction, AckRanges, BatchBuilder, ErrorCode, Frame, GroupOptions, GroupStats, Start, decode,
};
use support::group::{Got, take};
use support::{Harness, Owned};

struct Setup {
    h: Harness,
    t0: Instant,
    producer: ConnId,
}

fn setup() -> Setup {
    setup_with(BrokerConfig::default())
}

fn setup_with(config: BrokerConfig) -> Setup {
    let mut h = Harness::with(config.core());
    let t0 = Instant::now();
    h.core.handle_timeout(t0);
    let producer = h.producer();
    Setup { h, t0, producer }
}

impl Setup {
    fn publish(&mut self, n: u32) {
        for i in 0..n {
            let data = format!("job {i}");
            self.h.publish(self.producer, "jobs", data.as_bytes());
        }
        self.h.output(self.producer);
    }

    fn join(&mut self, group: &str, credit: u32, options: GroupOptions<'_>) -> ConnId {
        let c = self.h.consumer();
        self.h.core.receive(
            c,
            Frame::Join {
                topic: "jobs",
                group,
                start: Start::Earliest,
                credit,
                options,
            },
        );
        c
    }

    fn at(&mut self, after: Duration) {
        self.h.core.handle_timeout(self.t0 + after);
    }

    fn act(&mut self, c: ConnId, group: &str, action: AckAction, delay: u64, offsets: &[u64]) {
        let mut ranges = Vec::new();
        for &o in offsets {
            AckRanges::push(&mut ranges, o);
        }
        self.h.core.receive(
            c,
            Frame::Ack {
                topic: "jobs",
                group,
                action,
                delay,
                ranges: AckRanges::new(&ranges).unwrap(),
            },
        );
    }

    fn ack(&mut self, c: ConnId, offsets: &[u64]) {
        if !offsets.is_empty() {
            self.act(c, "workers", AckAction::Ack, 0, offsets);
        }
    }

    fn state(&mut self, group: &str) -> GroupStats {
        let c = self.h.consumer();
        self.h.core.receive(
            c,
            Frame::GroupInfo {
                topic: "jobs",
                group,
            },
        );
        let mut ready = Vec::new();
        self.h.core.take_ready(&mut ready);
        let mut sink = Vec::new();
        while self.h.core.write(c, &mut sink).unwrap() != Progress::Drained {}
        self.h.core.close(c);
        match decode(&sink, u32::MAX).unwrap() {
            Some((Frame::GroupState { state, .. }, _)) => state,
            other => panic!("expected GroupState, got {other:?}"),
        }
    }
}

fn joined(got: &Got) -> bool {
    got.other
        .first()
        .is_some_and(|f| matches!(f, Owned::Other(s) if s.starts_with("Joined")))
}

const DEFAULT: GroupOptions<'static> = GroupOptions {
    ack_wait: 0,
    max_deliver: 0,
    max_ack_pending: 0,
    dead_letter: None,
};

#[test]
fn two_members_split_a_topic_with_no_overlap() {
    let mut s = setup();
    s.publish(100);
    let a = s.join("workers", 10, DEFAULT);
    let b = s.join("workers", 10, DEFAULT);
    let mut seen = Vec::new();
    let (mut from_a, mut from_b) = (0, 0);
    for _ in 0..20 {
        for (c, count) in [(a, &mut from_a), (b, &mut from_b)] {
            let got = take(&mut s.h.core, c);
            *count += got.messages.len();
            assert!(got.messages.iter().all(|m| m.1 == 1), "first deliveries");
            let offsets = got.offsets();
            s.ack(c, &offsets);
            seen.extend(offsets);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>(), "each message once");
    assert!(
        from_a >= 40 && from_b >= 40,
        "shared: {from_a} and {from_b}"
    );
    let state = s.state("workers");
    assert_eq!((state.floor, state.next, state.in_flight), (100, 100, 0));
    assert_eq!(state.members, 2);
}

#[test]
fn joined_names_the_groups_settings_capped_by_the_broker() {
    let mut s = setup();
    let asked = GroupOptions {
        ack_wait: 3_600_000,
        max_deliver: 2,
        max_ack_pending: 50,
        dead_letter: Some("failed-jobs"),
    };
    let c = s.join("workers", 5, asked);
    let mut ready = Vec::new();
    s.h.core.take_ready(&mut ready);
    let mut sink = Vec::new();
    while s.h.core.write(c, &mut sink).unwrap() != Progress::Drained {}
    let Some((
        Frame::Joined {
            floor,
            next,
            options,
            ..
        },
        _,
    )) = decode(&sink, u32::MAX).unwrap()
    else {
        panic!("no Joined")
    };
    assert_eq!((floor, next), (0, 0));
    // An ack wait over the broker's 30 s is cut to it; less is kept as asked.
    assert_eq!(
        options,
        GroupOptions {
            ack_wait: 30_000,
            max_deliver: 2,
            max_ack_pending: 50,
            dead_letter: Some("failed-jobs"),
        }
    );
    // A later member gets the group's settings, whatever it asks for.
    let d = s.join("workers", 5, DEFAULT);
    let got = take(&mut s.h.core, d);
    assert_eq!(
        got.other,
        vec![Owned::Other(
            "Joined { topic: \"jobs\", group: \"workers\", floor: 0, next: 0, end: 0, \
             options: GroupOptions { ack_wait: 30000, max_deliver: 2, max_ack_pending: 50, \
             dead_letter: Some(\"failed-jobs\") } }"
                .into()
        )]
    );
}

#[test]
fn credit_is_never_exceeded() {
    let mut s = setup();
    s.publish(50);
    let c = s.join("workers", 7, DEFAULT);
    let mut all = Vec::new();
    for _ in 0..10 {
        let got = take(&mut s.h.core, c);
        assert!(got.messages.len() <= 7, "{} held", got.messages.len());
        // Nothing more until something is acked.
        assert!(take(&mut s.h.core, c).messages.is_empty());
        let offsets = got.offsets();
        s.ack(c, &offsets[..offsets.len().min(3)]);
        all.extend(offsets);
    }
    // 7 at first, then 3 for each ack of 3; the last ack left 4 held.
    assert_eq!(all.len(), 7 + 9 * 3);
    assert_eq!(s.state("workers").in_flight, 4);
}

#[test]
fn the_groups_bound_holds_over_all_members() {
    let mut s = setup();
    s.publish(50);
    let opts = GroupOptions {
        max_ack_pending: 8,
        ..DEFAULT
    };
    let members: Vec<ConnId> = (0..4).map(|_| s.join("workers", 5, opts)).collect();
    let total: usize = members
        .iter()
        .map(|&c| take(&mut s.h.core, c).messages.len())
        .sum();
    assert_eq!(total, 8);
    assert_eq!(s.state("workers").in_flight, 8);
}

#[test]
fn a_member_that_stops_acking_has_its_messages_redelivered_after_the_ack_wait() {
    let mut s = setup();
    s.publish(4);
    let opts = GroupOptions {
        ack_wait: 5_000,
        ..DEFAULT
    };
    let stuck = s.join("workers", 4, opts);
    assert_eq!(take(&mut s.h.core, stuck).offsets(), vec![0, 1, 2, 3]);
    let other = s.join("workers", 10, opts);
    assert!(take(&mut s.h.core, other).messages.is_empty());
    // The core asks to be woken when the ack wait ends, not at the next pull.
    assert_eq!(s.h.core.poll_timeout(), Some(s.t0 + Duration::from_secs(5)));
    s.at(Duration::from_millis(4_999));
    assert!(take(&mut s.h.core, other).messages.is_empty());
    s.at(Duration::from_secs(5));
    let got = take(&mut s.h.core, other);
    assert_eq!(
        got.messages.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        vec![(0, 2), (1, 2), (2, 2), (3, 2)]
    );
    // A late ack from the first member settles them all the same.
    s.ack(stuck, &[0, 1]);
    let state = s.state("workers");
    assert_eq!((state.floor, state.in_flight, state.redelivered), (2, 2, 4));
}

#[test]
fn a_nak_with_a_delay_redelivers_after_it() {
    let mut s = setup();
    s.publish(2);
    let c = s.join("workers", 10, DEFAULT);
    assert_eq!(take(&mut s.h.core, c).offsets(), vec![0, 1]);
    s.act(c, "workers", AckAction::Nak, 2_000, &[0]);
    s.ack(c, &[1]);
    assert!(take(&mut s.h.core, c).messages.is_empty());
    assert_eq!(s.h.core.poll_timeout(), Some(s.t0 + Duration::from_secs(2)));
    s.at(Duration::from_secs(2));
    let got = take(&mut s.h.core, c);
    assert_eq!(got.messages, vec![(0, 2, b"job 0".to_vec())]);
    // A nak without delay gives it out again at once.
    s.act(c, "workers", AckAction::Nak, 0, &[0]);
    assert_eq!(take(&mut s.h.core, c).messages[0].1, 3);
}

#[test]
fn progress_extends_the_deadline_up_to_a_cap() {
    let mut s = setup();
    s.publish(1);
    let opts = GroupOptions {
        ack_wait: 1_000,
        ..DEFAULT
    };
    let c = s.join("workers", 1, opts);
    assert_eq!(take(&mut s.h.core, c).offsets(), vec![0]);
    // Each progress restarts the ack wait, for up to ten ack waits after the delivery.
    for ms in (800..=8_800).step_by(800) {
        s.at(Duration::from_millis(ms));
        assert!(take(&mut s.h.core, c).messages.is_empty(), "at {ms} ms");
        s.act(c, "workers", AckAction::Progress, 0, &[0]);
    }
    assert_eq!(s.state("workers").in_flight, 1);
    s.at(Duration::from_millis(9_600));
    assert!(take(&mut s.h.core, c).messages.is_empty());
    // 10 s after delivery, the last extension (at 8.8 s) ran out and no further one was taken.
    s.act(c, "workers", AckAction::Progress, 0, &[0]);
    s.at(Duration::from_millis(9_800));
    assert_eq!(take(&mut s.h.core, c).messages[0].1, 2);
}

fn dead_letters(s: &mut Setup, topic: &str) -> Vec<Vec<(String, Vec<u8>)>> {
    let reader = s.h.consumer();
    s.h.core.receive(
        reader,
        Frame::Subscribe {
            topic,
            start: Start::Earliest,
        },
    );
    let mut ready = Vec::new();
    s.h.core.take_ready(&mut ready);
    let mut sink = Vec::new();
    while s.h.core.write(reader, &mut sink).unwrap() != Progress::Drained {}
    let mut out = Vec::new();
    let mut bytes = &sink[..];
    while let Some((frame, n)) = decode(bytes, u32::MAX).unwrap() {
        if let Frame::Deliver { batch, .. } = frame {
            for m in batch.iter() {
                let mut h: Vec<(String, Vec<u8>)> = m
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_vec()))
                    .collect();
                h.push(("data".into(), m.data.to_vec()));
                out.push(h);
            }
        }
        bytes = &bytes[n..];
    }
    out
}

fn header(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn max_deliveries_and_term_go_to_the_dead_letter_topic_with_headers() {
    let mut s = setup();
    s.publish(3);
    let opts = GroupOptions {
        ack_wait: 1_000,
        max_deliver: 2,
        ..DEFAULT
    };
    let c = s.join("workers", 10, opts);
    assert_eq!(take(&mut s.h.core, c).offsets(), vec![0, 1, 2]);
    s.act(c, "workers", AckAction::Term, 0, &[1]);
    s.ack(c, &[2]);
    s.at(Duration::from_secs(1));
    assert_eq!(
        take(&mut s.h.core, c).messages,
        vec![(0, 2, b"job 0".to_vec())]
    );
    s.at(Duration::from_secs(2));
    // Delivered twice, the most it may be: dead-lettered, and the group moves on.
    assert!(take(&mut s.h.core, c).messages.is_empty());
    let state = s.state("workers");
    assert_eq!((state.floor, state.dead_lettered), (3, 2));
    let dlq = dead_letters(&mut s, "jobs.dlq");
    assert_eq!(
        dlq,
        vec![
            header(&[
                ("mbus-topic", "jobs"),
                ("mbus-offset", "1"),
                ("mbus-group", "workers"),
                ("mbus-attempts", "1"),
                ("mbus-reason", "term"),
                ("data", "job 1"),
            ]),
            header(&[
                ("mbus-topic", "jobs"),
                ("mbus-offset", "0"),
                ("mbus-group", "workers"),
                ("mbus-attempts", "2"),
                ("mbus-reason", "max-deliver"),
                ("data", "job 0"),
            ]),
        ]
    );
}

#[test]
fn a_dead_letter_keeps_the_original_headers() {
    let mut s = setup();
    let mut b = BatchBuilder::new();
    b.push(b"payload", &[("trace-id", b"7f3a")]).unwrap();
    s.h.core.receive(
        s.producer,
        Frame::Publish {
            topic: "jobs",
            batch: b.batch().unwrap(),
        },
    );
    let c = s.join("workers", 1, DEFAULT);
    assert_eq!(take(&mut s.h.core, c).offsets(), vec![0]);
    s.act(c, "workers", AckAction::Term, 0, &[0]);
    let dlq = dead_letters(&mut s, "jobs.dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0][0], ("trace-id".into(), b"7f3a".to_vec()));
    assert_eq!(dlq[0][5], ("mbus-reason".into(), b"term".to_vec()));
}

#[test]
fn a_closed_members_messages_go_to_another_at_once() {
    let mut s = setup();
    s.publish(6);
    let a = s.join("workers", 3, DEFAULT);
    let b = s.join("workers", 3, DEFAULT);
    assert_eq!(take(&mut s.h.core, a).offsets(), vec![0, 1, 2]);
    assert_eq!(take(&mut s.h.core, b).offsets(), vec![3, 4, 5]);
    s.ack(b, &[3, 4, 5]);
    s.h.core.close(a);
    let got = take(&mut s.h.core, b);
    assert_eq!(
        got.messages.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        vec![(0, 2), (1, 2), (2, 2)]
    );
    assert_eq!(s.state("workers").members, 1);
}

#[test]
fn leaving_gives_back_what_the_member_held() {
    let mut s = setup();
    s.publish(2);
    let a = s.join("workers", 2, DEFAULT);
    assert_eq!(take(&mut s.h.core, a).offsets(), vec![0, 1]);
    s.h.core.receive(
        a,
        Frame::Leave {
            topic: "jobs",
            group: "workers",
        },
    );
    let b = s.join("workers", 2, DEFAULT);
    assert_eq!(take(&mut s.h.core, b).offsets(), vec![0, 1]);
    // The member that left gets nothing more, and its acks count for nothing.
    s.ack(a, &[0]);
    s.publish(1);
    assert!(take(&mut s.h.core, a).messages.is_empty());
    assert_eq!(s.state("workers").in_flight, 2);
}

#[test]
fn two_groups_and_a_plain_subscriber_each_get_everything() {
    let mut s = setup();
    let plain = s.h.consumer();
    s.h.core.receive(
        plain,
        Frame::Subscribe {
            topic: "jobs",
            start: Start::Earliest,
        },
    );
    let a = s.join("billing", 100, DEFAULT);
    let b = s.join("audit", 100, DEFAULT);
    s.publish(20);
    let got_a = take(&mut s.h.core, a);
    let got_b = take(&mut s.h.core, b);
    assert_eq!(got_a.offsets(), (0..20).collect::<Vec<_>>());
    assert_eq!(got_b.offsets(), (0..20).collect::<Vec<_>>());
    let plain_got = Harness::deliveries(&s.h.output(plain));
    assert_eq!(plain_got.len(), 20);
}

#[test]
fn a_run_is_shared_by_offsets_among_members() {
    let mut s = setup();
    let mut b = BatchBuilder::new();
    for i in 0..10 {
        b.push(format!("m{i}").as_bytes(), &[]).unwrap();
    }
    s.h.core.receive(
        s.producer,
        Frame::Publish {
            topic: "jobs",
            batch: b.batch().unwrap(),
        },
    );
    let a = s.join("workers", 4, DEFAULT);
    let c = s.join("workers", 4, DEFAULT);
    assert_eq!(take(&mut s.h.core, a).offsets(), vec![0, 1, 2, 3]);
    assert_eq!(take(&mut s.h.core, c).offsets(), vec![4, 5, 6, 7]);
    s.ack(a, &[0, 1, 2, 3]);
    assert_eq!(take(&mut s.h.core, a).offsets(), vec![8, 9]);
}

#[test]
fn joins_that_cannot_be_served_are_refused() {
    let mut s = setup();
    let refused = |s: &mut Setup, frame: Frame<'_>, code: ErrorCode| {
        let c = s.h.consumer();
        s.h.core.receive(c, frame);
        let out = s.h.output(c);
        assert!(
            matches!(out.last(), Some(Owned::Error { code: got, .. }) if *got == code),
            "{out:?}"
        );
    };
    let join = |group, credit, dead_letter| Frame::Join {
        topic: "jobs",
        group,
        start: Start::Earliest,
        credit,
        options: GroupOptions {
            dead_letter,
            ..DEFAULT
        },
    };
    refused(&mut s, join("workers", 0, None), ErrorCode::InvalidGroup);
    refused(&mut s, join("no/slash", 1, None), ErrorCode::InvalidGroup);
    refused(
        &mut s,
        join("workers", 1, Some("jobs")),
        ErrorCode::InvalidGroup,
    );
    refused(
        &mut s,
        join("workers", 1, Some("bad name")),
        ErrorCode::InvalidGroup,
    );
    // A connection reads a topic plainly or through one group, not both.
    let c = s.h.consumer();
    s.h.core.receive(
        c,
        Frame::Subscribe {
            topic: "jobs",
            start: Start::Earliest,
        },
    );
    s.h.core.receive(c, join("workers", 1, None));
    let out = s.h.output(c);
    assert!(matches!(
        out.last(),
        Some(Owned::Error {
            code: ErrorCode::InvalidGroup,
            ..
        })
    ));
    let d = s.join("workers", 1, DEFAULT);
    s.h.core.receive(d, join("others", 1, None));
    let out = s.h.output(d);
    assert!(matches!(
        out.last(),
        Some(Owned::Error {
            code: ErrorCode::InvalidGroup,
            ..
        })
    ));
    assert!(!s.state("others").exists);
}

#[test]
fn an_ack_naming_offsets_many_times_over_is_refused() {
    let mut s = setup();
    s.publish(10);
    let c = s.join("workers", 10, DEFAULT);
    take(&mut s.h.core, c);
    let mut ranges = Vec::new();
    // 2,000 times the 10 offsets: past the 16,000 the group may track.
    for _ in 0..2000 {
        ranges.extend_from_slice(&0u64.to_be_bytes());
        ranges.extend_from_slice(&10u32.to_be_bytes());
    }
    s.h.core.receive(
        c,
        Frame::Ack {
            topic: "jobs",
            group: "workers",
            action: AckAction::Ack,
            delay: 0,
            ranges: AckRanges::new(&ranges).unwrap(),
        },
    );
    let out = s.h.output(c);
    assert!(
        matches!(
            out.last(),
            Some(Owned::Error {
                code: ErrorCode::Malformed,
                ..
            })
        ),
        "{out:?}"
    );
}

#[test]
fn retention_that_removes_what_a_group_has_not_taken_is_a_gap_and_counted() {
    let mut config = BrokerConfig::default();
    config.retention_messages = 10;
    config.segment_bytes = 256;
    let mut s = setup_with(config);
    let c = s.join("workers", 5, DEFAULT);
    assert!(joined(&take(&mut s.h.core, c)));
    s.publish(100);
    let got = take(&mut s.h.core, c);
    let gap = got.other.iter().find_map(|f| match f {
        Owned::Gap { from, to, .. } => Some((*from, *to)),
        _ => None,
    });
    let (from, to) = gap.expect("a Gap");
    assert_eq!(from, 0);
    assert_eq!(got.offsets()[0], to);
    let state = s.state("workers");
    assert_eq!(state.lost, to);
}

#[test]
fn group_state_of_a_group_that_does_not_exist() {
    let mut s = setup();
    assert_eq!(s.state("nobody"), GroupStats::default());
}

#[test]
fn joining_again_changes_the_credit() {
    let mut s = setup();
    s.publish(10);
    let c = s.join("workers", 2, DEFAULT);
    assert_eq!(take(&mut s.h.core, c).offsets(), vec![0, 1]);
    s.h.core.receive(
        c,
        Frame::Join {
            topic: "jobs",
            group: "workers",
            start: Start::Latest,
            credit: 5,
            options: DEFAULT,
        },
    );
    assert_eq!(take(&mut s.h.core, c).offsets(), vec![2, 3, 4]);
    assert_eq!(s.state("workers").members, 1);
}
