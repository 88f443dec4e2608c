//! Idempotent producers in the core: a publish resent under the same identity and number is
//! confirmed and not stored again, in memory and across restarts on the file store, where the
//! producer file is kept only as far as the log kept the publishes (PROTOCOL.md section 13,
//! STORAGE.md section 12).

mod store_util;
mod support;

use std::path::Path;
use std::time::Instant;

use mbus_broker::BrokerConfig;
use mbus_broker::engine::{ConnId, Core};
use mbus_broker::store::memory::Crash;
use mbus_broker::store::{FileStorage, Fsync, MemoryStorage, StoreConfig};
use mbus_proto::{ErrorCode, Frame, Start};
use store_util::TempDir;
use support::{Harness, Owned};

const TOPIC: &str = "orders";

/// A producer connection that resumed the session of `producer` at publish `sequence`.
fn identified(h: &mut Harness, producer: &str, sequence: u64) -> ConnId {
    let p = h.producer();
    h.core.receive(p, Frame::Identify { producer, sequence });
    assert_eq!(h.output(p), vec![Owned::Identified(sequence)]);
    p
}

/// Publishes messages `numbers` (each its own publish, numbered as the message).
fn publish_all(h: &mut Harness, p: ConnId, numbers: std::ops::RangeInclusive<u64>) {
    for n in numbers {
        h.publish(p, TOPIC, format!("m{n}").as_bytes());
    }
}

/// Every payload of the topic, from offset 0.
fn stored(h: &mut Harness) -> Vec<String> {
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: TOPIC,
            start: Start::Earliest,
        },
    );
    Harness::deliveries(&h.output(c))
        .into_iter()
        .map(|(_, _, data)| String::from_utf8(data).unwrap())
        .collect()
}

fn expected(numbers: std::ops::RangeInclusive<u64>) -> Vec<String> {
    numbers.map(|n| format!("m{n}")).collect()
}

fn file_harness(dir: &Path) -> Harness {
    let storage = FileStorage::new(dir.to_owned(), Fsync::Always, StoreConfig::default(), 64);
    let core = Core::start(
        BrokerConfig::default().core(),
        Some(Box::new(storage)),
        Instant::now(),
    );
    Harness {
        core: core.unwrap(),
    }
}

fn memory_harness(disk: &MemoryStorage) -> Harness {
    let core = Core::start(
        BrokerConfig::default().core(),
        Some(Box::new(disk.clone())),
        Instant::now(),
    );
    Harness {
        core: core.unwrap(),
    }
}

#[test]
fn a_resend_on_a_new_connection_is_confirmed_and_stored_once() {
    let mut h = Harness::new();
    let first = identified(&mut h, "web-1", 1);
    publish_all(&mut h, first, 1..=3);
    assert_eq!(h.output(first), vec![Owned::Confirm(3)]);
    // The producer saw only the first confirm, say, and resends 2 and 3 before going on.
    let again = identified(&mut h, "web-1", 2);
    publish_all(&mut h, again, 2..=4);
    assert_eq!(
        h.output(again),
        vec![Owned::Confirm(3)],
        "the connection's publishes, counted from 1"
    );
    assert_eq!(stored(&mut h), expected(1..=4));
    // Another identity, or none, is not a resend.
    let other = identified(&mut h, "web-2", 2);
    publish_all(&mut h, other, 2..=2);
    let plain = h.producer();
    publish_all(&mut h, plain, 2..=2);
    assert_eq!(stored(&mut h).len(), 6);
}

#[test]
fn numbers_are_remembered_per_topic_so_a_failed_commit_of_one_costs_nothing() {
    use mbus_broker::store::memory::Op;
    let disk = MemoryStorage::new(Fsync::Always, u64::MAX);
    let mut h = memory_harness(&disk);
    let p = identified(&mut h, "web-1", 1);
    h.publish(p, TOPIC, b"m1");
    h.publish(p, "a", b"m2");
    // The commit of TOPIC, the first appended to, fails: publish 1 is taken back, 2 stays.
    disk.fail_next(Op::Commit, 1);
    h.core.commit();
    assert!(matches!(
        h.output(p).last(),
        Some(Owned::Error {
            code: ErrorCode::Internal,
            ..
        })
    ));
    let again = identified(&mut h, "web-1", 1);
    h.publish(again, TOPIC, b"m1");
    h.publish(again, "a", b"m2");
    h.core.commit();
    assert_eq!(h.output(again), vec![Owned::Confirm(2)]);
    assert_eq!(stored(&mut h), expected(1..=1), "1 is stored when resent");
    assert_eq!(h.core.topic_range("a"), Some(0..1), "2 is stored once");
}

#[test]
fn identify_comes_once_before_any_publish_with_a_valid_identity_and_number() {
    let mut h = Harness::new();
    let cases: [(&str, u64, bool, ErrorCode); 2] = [
        ("no spaces", 1, false, ErrorCode::Malformed),
        ("web-1", 1, true, ErrorCode::UnexpectedFrame),
    ];
    for (producer, sequence, publish_first, code) in cases {
        let p = h.producer();
        if publish_first {
            h.publish(p, TOPIC, b"x");
        }
        h.core.receive(p, Frame::Identify { producer, sequence });
        let out = h.output(p);
        assert!(
            matches!(out.last(), Some(Owned::Error { code: c, .. }) if *c == code),
            "{producer} {sequence}: {out:?}"
        );
    }
    let twice = identified(&mut h, "web-1", 1);
    h.core.receive(twice, Frame::publish(TOPIC, b"x"));
    h.core.receive(
        twice,
        Frame::Identify {
            producer: "web-1",
            sequence: 1,
        },
    );
    assert!(matches!(
        h.output(twice).last(),
        Some(Owned::Error {
            code: ErrorCode::UnexpectedFrame,
            ..
        })
    ));
    let too_long = "p".repeat(65);
    let p = h.producer();
    h.core.receive(
        p,
        Frame::Identify {
            producer: &too_long,
            sequence: 1,
        },
    );
    assert!(matches!(
        h.output(p).last(),
        Some(Owned::Error {
            code: ErrorCode::Malformed,
            ..
        })
    ));
}

#[test]
fn a_new_session_goes_on_after_the_highest_number_any_topic_remembers() {
    let mut h = Harness::new();
    let p = h.producer();
    h.core.receive(
        p,
        Frame::Identify {
            producer: "web-1",
            sequence: 0,
        },
    );
    assert_eq!(h.output(p), vec![Owned::Identified(1)], "a new identity");
    h.publish(p, "a", b"1");
    h.publish(p, "b", b"2");
    h.publish(p, "a", b"3");
    // The process restarts with the same identity: its numbers go on after 3, so its first
    // publish is new to both topics.
    let restarted = h.producer();
    h.core.receive(
        restarted,
        Frame::Identify {
            producer: "web-1",
            sequence: 0,
        },
    );
    assert_eq!(h.output(restarted), vec![Owned::Identified(4)]);
    h.publish(restarted, "b", b"4");
    assert_eq!(h.core.topic_range("b"), Some(0..2));
}

#[test]
fn a_resend_in_the_same_turn_is_confirmed_by_the_commit_of_the_original() {
    let disk = MemoryStorage::new(Fsync::Always, u64::MAX);
    let mut h = memory_harness(&disk);
    let old = identified(&mut h, "web-1", 1);
    publish_all(&mut h, old, 1..=1);
    // The producer gave up on the old connection and resent before the broker committed.
    let new = identified(&mut h, "web-1", 1);
    publish_all(&mut h, new, 1..=1);
    assert_eq!(
        h.output(new),
        vec![],
        "nothing is confirmed before the commit"
    );
    h.core.commit();
    assert_eq!(h.output(new), vec![Owned::Confirm(1)]);
    assert_eq!(stored(&mut h), expected(1..=1));
}

#[test]
fn after_a_restart_a_resend_of_what_was_stored_is_stored_once() {
    let dir = TempDir::new("producers-restart");
    {
        let mut h = file_harness(dir.path());
        let p = identified(&mut h, "web-1", 1);
        publish_all(&mut h, p, 1..=3);
        h.core.commit();
        assert_eq!(h.output(p), vec![Owned::Confirm(3)]);
    }
    let mut h = file_harness(dir.path());
    // The confirm of 3 was lost with the broker: 2 and 3 come again.
    let p = identified(&mut h, "web-1", 2);
    publish_all(&mut h, p, 2..=4);
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(3)]);
    assert_eq!(stored(&mut h), expected(1..=4));
}

#[test]
fn a_crash_that_loses_publishes_loses_their_entries_too() {
    for crash in [Crash::Process, Crash::PowerLoss, Crash::Torn] {
        let disk = MemoryStorage::new(Fsync::Batch, u64::MAX);
        {
            let mut h = memory_harness(&disk);
            let p = identified(&mut h, "web-1", 1);
            publish_all(&mut h, p, 1..=2);
            h.core.commit();
            h.core
                .handle_timeout(Instant::now() + std::time::Duration::from_secs(1));
            // 3 is appended, its entry written, and the broker dies before the commit.
            publish_all(&mut h, p, 3..=3);
        }
        disk.crash(crash);
        let mut h = memory_harness(&disk);
        let p = identified(&mut h, "web-1", 3);
        publish_all(&mut h, p, 3..=3);
        h.core.commit();
        assert_eq!(h.output(p), vec![Owned::Confirm(1)], "{crash:?}");
        assert_eq!(
            stored(&mut h),
            expected(1..=3),
            "{crash:?}: 3 is stored again"
        );
    }
}

/// The bytes of one producer file entry, as STORAGE.md section 12 gives them.
fn entry_bytes(producer: &str, sequence: u64, end: u64, time: u64) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&sequence.to_le_bytes());
    body.extend_from_slice(&end.to_le_bytes());
    body.extend_from_slice(&time.to_le_bytes());
    body.extend_from_slice(producer.as_bytes());
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn the_producer_file_is_cut_after_the_last_entry_the_log_holds() {
    let dir = TempDir::new("producers-cut");
    let file = dir.path().join("topics").join(TOPIC).join("producers");
    {
        let mut h = file_harness(dir.path());
        let p = identified(&mut h, "web-1", 1);
        publish_all(&mut h, p, 1..=2);
        h.core.commit();
    }
    let kept = std::fs::read(&file).unwrap();
    assert_eq!(kept.len(), 2 * entry_bytes("web-1", 1, 1, 0).len());
    // An entry for a publish the log does not hold (offsets 2..10), then a torn one.
    let mut bytes = kept.clone();
    bytes.extend(entry_bytes("web-2", 9, 10, 0));
    bytes.extend(&entry_bytes("web-3", 1, 11, 0)[..20]);
    std::fs::write(&file, &bytes).unwrap();
    let mut h = file_harness(dir.path());
    assert_eq!(std::fs::read(&file).unwrap(), kept, "cut after web-1's two");
    // web-2's publish 9 is not stored, so it is stored when it comes; web-1's 2 was.
    let p = identified(&mut h, "web-2", 9);
    h.publish(p, TOPIC, b"m9");
    let q = identified(&mut h, "web-1", 2);
    h.publish(q, TOPIC, b"m2");
    h.core.commit();
    assert_eq!(stored(&mut h), ["m1", "m2", "m9"]);
}

#[test]
fn a_large_producer_file_is_rewritten_with_what_the_topic_remembers() {
    let dir = TempDir::new("producers-rewrite");
    let file = dir.path().join("topics").join(TOPIC).join("producers");
    let config = mbus_broker::engine::CoreConfig {
        producers: mbus_broker::engine::producers::ProducerLimits {
            max_per_topic: 3,
            ..Default::default()
        },
        ..BrokerConfig::default().core()
    };
    let storage = |dir: &Path| {
        Box::new(FileStorage::new(
            dir.to_owned(),
            Fsync::Always,
            StoreConfig::default(),
            64,
        ))
    };
    {
        let core = Core::start(config.clone(), Some(storage(dir.path())), Instant::now());
        let mut h = Harness {
            core: core.unwrap(),
        };
        // 25,000 entries of 29 bytes pass 1 MiB; four identities take turns, so the topic,
        // which remembers three, forgets one each time the fourth comes back.
        let mut conns = Vec::new();
        for i in 0..4 {
            conns.push(identified(&mut h, &format!("p{i}"), 1));
        }
        for n in 0..25_000u64 {
            let p = conns[(n % 4) as usize];
            h.publish(p, TOPIC, b"x");
            if n % 100 == 99 {
                h.core.commit();
            }
        }
        h.core.commit();
        let len = std::fs::metadata(&file).unwrap().len();
        assert!(len < 1 << 20, "rewritten: {len} bytes");
    }
    let core = Core::start(config, Some(storage(dir.path())), Instant::now());
    let mut h = Harness {
        core: core.unwrap(),
    };
    // p3 published the last message, number 6,250 of its own.
    let p = identified(&mut h, "p3", 6250);
    h.publish(p, TOPIC, b"x");
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(1)]);
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: TOPIC,
            start: Start::Offset(24_999),
        },
    );
    let last: Vec<u64> = Harness::deliveries(&h.output(c))
        .iter()
        .map(|d| d.1)
        .collect();
    assert_eq!(last, [24_999], "not stored again");
}

#[test]
fn storage_md_quotes_a_producer_record_as_the_store_writes_it() {
    let dir = TempDir::new("producers-doc");
    let storage = FileStorage::new(
        dir.path().to_owned(),
        Fsync::Always,
        StoreConfig::default(),
        64,
    );
    let mut core = Core::start(
        BrokerConfig::default().core(),
        Some(Box::new(storage)),
        Instant::now(),
    )
    .unwrap();
    // 2026-12-02T10:00:00Z
    core.set_wall_clock(1_796_205_600_000);
    let mut h = Harness { core };
    let plain = h.producer();
    publish_all(&mut h, plain, 1..=41);
    let p = identified(&mut h, "web-1", 1001);
    publish_all(&mut h, p, 1..=1);
    h.core.commit();
    let written = std::fs::read(dir.path().join("topics/orders/producers")).unwrap();
    assert_eq!(store_util::storage_example("producer-example"), written);
}

#[test]
fn publish_numbers_past_the_largest_are_refused_by_name() {
    let mut h = Harness::new();
    let p = identified(&mut h, "web-1", u64::MAX);
    publish_all(&mut h, p, 1..=1);
    assert_eq!(
        h.output(p),
        vec![Owned::Confirm(1)],
        "number 2^64 - 1 is taken"
    );
    publish_all(&mut h, p, 2..=2);
    let refused = |out: Vec<Owned>| match out.last() {
        Some(Owned::Error { code, reason }) => {
            assert_eq!(*code, ErrorCode::LimitReached);
            assert!(reason.contains("publish numbers went past"), "{reason}");
        }
        other => panic!("{other:?}"),
    };
    refused(h.output(p));
    // A new session would start after 2^64 - 1.
    let q = h.producer();
    h.core.receive(
        q,
        Frame::Identify {
            producer: "web-1",
            sequence: 0,
        },
    );
    refused(h.output(q));
    assert_eq!(stored(&mut h), expected(1..=1));
}
