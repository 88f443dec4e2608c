//! Where a subscription starts: the last N messages, the first message at or after a time (found
//! through the time index, in memory and on disk, across a restart, without reading what comes
//! before it), `Subscribed`'s report of the topic's range, and the times the broker stamps.

mod store_util;
mod support;

use std::time::Instant;

use mbus_broker::BrokerConfig;
use mbus_broker::engine::memlog::Retention;
use mbus_broker::engine::{ConnId, Core, CoreConfig};
use mbus_broker::store::{FileStorage, Fsync, MemoryStorage, StoreConfig};
use mbus_proto::{BatchBuilder, Frame, Start};
use store_util::TempDir;
use support::{Harness, Owned};

/// 2026-12-02T10:00:00Z.
const T0: u64 = 1_796_205_600_000;

/// A core whose memory keeps only the newest few messages of a topic (the rest stay on disk),
/// on `storage`, or in memory alone without one.
fn core(storage: Option<Box<dyn mbus_broker::engine::storage::Storage>>) -> Harness {
    let config = CoreConfig {
        retention: Retention {
            max_bytes: 2048,
            max_messages: u64::MAX,
            segment_bytes: 512,
        },
        ..BrokerConfig::default().core()
    };
    let core = match storage {
        Some(storage) => Core::start(config, Some(storage), Instant::now()).unwrap(),
        None => Core::new(config, Instant::now()),
    };
    Harness { core }
}

/// Storage in `dir` whose segments are small, so that 200 messages take several.
fn files(dir: &TempDir) -> FileStorage {
    let config = StoreConfig {
        segment_bytes: 1024,
        ..StoreConfig::default()
    };
    FileStorage::new(dir.path().to_owned(), Fsync::Always, config, 64)
}

/// Publishes 200 messages to `t`, message `i` at `T0 + 1000 * (i / 2)`: two per second.
fn publish_200(h: &mut Harness) {
    let p = h.producer();
    for i in 0..200u64 {
        h.core.set_wall_clock(T0 + 1000 * (i / 2));
        h.publish(p, "t", format!("m{i}").as_bytes());
        h.core.commit();
    }
    assert_eq!(h.output(p).last(), Some(&Owned::Confirm(200)));
}

/// The `Subscribed` frame's fields and the offsets delivered after it, for a subscription of
/// `t` from `start`.
fn subscribe(h: &mut Harness, start: Start) -> ((u64, u64, u64), Vec<u64>) {
    let c = h.consumer();
    h.core.receive(c, Frame::Subscribe { topic: "t", start });
    raw(h, c)
}

/// What `c` is owed, with `Subscribed` read whole: (offset, first, next) and the offsets.
fn raw(h: &mut Harness, c: ConnId) -> ((u64, u64, u64), Vec<u64>) {
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    let mut sink = Vec::new();
    while h.core.write(c, &mut sink).unwrap() != mbus_broker::engine::Progress::Drained {}
    let mut rest = &sink[..];
    let mut subscribed = None;
    let mut offsets = Vec::new();
    while let Some((frame, n)) = mbus_proto::decode(rest, u32::MAX).unwrap() {
        match frame {
            Frame::Subscribed {
                offset,
                first,
                next,
                ..
            } => subscribed = Some((offset, first, next)),
            Frame::Deliver { offset, batch, .. } => {
                offsets.extend((0..batch.len() as u64).map(|i| offset + i))
            }
            other => panic!("{other:?}"),
        }
        rest = &rest[n..];
    }
    (subscribed.expect("Subscribed"), offsets)
}

#[test]
fn the_last_n_messages_and_the_topics_range() {
    let mut h = core(None);
    publish_200(&mut h);
    let ((offset, first, next), offsets) = subscribe(&mut h, Start::Last(10));
    // Memory keeps the newest 2 KiB only: `first` is where it starts.
    assert_eq!((offset, next), (190, 200));
    assert!(first > 0 && first < 190, "{first}");
    assert_eq!(offsets, (190..200).collect::<Vec<_>>());
    // More than the topic holds is all of it; none is nothing.
    assert_eq!(subscribe(&mut h, Start::Last(1_000)).0, (first, first, 200));
    assert_eq!(subscribe(&mut h, Start::Last(0)).0, (200, first, 200));
    // A topic never published to holds 0..0.
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "new",
            start: Start::Last(5),
        },
    );
    let frames = h.output(c);
    assert_eq!(
        frames,
        [Owned::Subscribed {
            topic: "new".into(),
            offset: 0
        }]
    );
}

#[test]
fn a_time_in_memory_finds_the_first_message_at_or_after_it() {
    let mut h = core(None);
    publish_200(&mut h);
    let (first, _) = {
        let ((_, first, next), _) = subscribe(&mut h, Start::Latest);
        (first, next)
    };
    // Second 95 holds messages 190 and 191; a time between seconds finds the next second's.
    assert_eq!(subscribe(&mut h, Start::Time(T0 + 95_000)).0.0, 190);
    assert_eq!(subscribe(&mut h, Start::Time(T0 + 95_001)).0.0, 192);
    assert_eq!(subscribe(&mut h, Start::Time(T0 + 99_000)).1, [198, 199]);
    // After the last message: the next offset. Before what memory holds: its first.
    assert_eq!(subscribe(&mut h, Start::Time(T0 + 100_000)).0.0, 200);
    assert_eq!(subscribe(&mut h, Start::Time(0)).0.0, first);
}

/// The time of message `i` in [`publish_200`], and the offset a subscription from time `t` must
/// start at: the first message at or after it.
fn expected_offset(t: u64) -> u64 {
    (0..200).find(|i| T0 + 1000 * (i / 2) >= t).unwrap_or(200)
}

#[test]
fn a_time_on_disk_is_found_through_the_index_reading_nothing_before_it_across_a_restart() {
    let disk = MemoryStorage::new(Fsync::Always, u64::MAX);
    {
        let mut h = core(Some(Box::new(disk.clone())));
        publish_200(&mut h);
    }
    // A new core: memory holds nothing of the topic, its times are on disk only.
    let mut h = core(Some(Box::new(disk.clone())));
    for t in [
        T0,
        T0 + 500,
        T0 + 17_000,
        T0 + 17_001,
        T0 + 99_000,
        T0 + 100_000,
    ] {
        let want = expected_offset(t);
        let before = disk.reads("t").len();
        let ((offset, first, next), offsets) = subscribe(&mut h, Start::Time(t));
        assert_eq!((offset, first, next), (want, 0, 200), "time {t}");
        assert_eq!(offsets, (want..200).collect::<Vec<_>>(), "time {t}");
        // Every read of the topic started at or after the answer: nothing before it was read.
        let reads = &disk.reads("t")[before..];
        assert!(reads.iter().all(|&at| at >= want), "time {t}: {reads:?}");
    }
}

#[test]
fn a_time_in_the_file_store_is_found_in_its_segment_across_a_restart() {
    let dir = TempDir::new("time-files");
    let storage = || files(&dir);
    {
        let mut h = core(Some(Box::new(storage())));
        publish_200(&mut h);
        // Before the restart, from memory or disk alike.
        for t in [T0, T0 + 42_000, T0 + 99_999] {
            assert_eq!(subscribe(&mut h, Start::Time(t)).0.0, expected_offset(t));
        }
    }
    let segments = std::fs::read_dir(dir.path().join("topics/t"))
        .unwrap()
        .count()
        / 2;
    assert!(segments > 5, "{segments} segments");
    let mut h = core(Some(Box::new(storage())));
    for second in 0..=100 {
        for t in [T0 + 1000 * second - 1, T0 + 1000 * second] {
            let want = expected_offset(t);
            let (subscribed, offsets) = subscribe(&mut h, Start::Time(t));
            assert_eq!(subscribed, (want, 0, 200), "time {t}");
            assert_eq!(offsets.first().copied().unwrap_or(200), want);
        }
    }
}

#[test]
fn times_never_go_back_within_a_topic_and_headers_reach_consumers() {
    let mut h = core(None);
    let p = h.producer();
    h.core.set_wall_clock(T0 + 5_000);
    h.publish(p, "t", b"first");
    // The clock is set back: the next message keeps the newest time.
    h.core.set_wall_clock(T0);
    let mut batch = BatchBuilder::new();
    batch.push(b"second", &[("trace-id", b"7f3a")]).unwrap();
    batch.push(b"third", &[]).unwrap();
    h.core.receive(
        p,
        Frame::Publish {
            topic: "t",
            batch: batch.batch().unwrap(),
        },
    );
    assert_eq!(h.output(p), [Owned::Confirm(2)]);
    let times: Vec<u64> = (0..3)
        .map(|o| h.core.message_at("t", o).unwrap().0)
        .collect();
    assert_eq!(times, [T0 + 5_000; 3]);
    let (_, second) = h.core.message_at("t", 1).unwrap();
    assert_eq!(second.headers.get("trace-id"), Some(&b"7f3a"[..]));
    assert!(h.core.message_at("t", 2).unwrap().1.headers.is_empty());
    // A batch takes consecutive offsets and counts as one publish.
    assert_eq!(h.core.topic_range("t"), Some(0..3));
}

#[test]
fn a_time_index_that_cannot_be_read_refuses_that_subscription_only() {
    let dir = TempDir::new("time-unreadable");
    let storage = || files(&dir);
    {
        let mut h = core(Some(Box::new(storage())));
        publish_200(&mut h);
    }
    let mut h = core(Some(Box::new(storage())));
    // A sealed segment's index goes missing while the broker runs.
    let topic = dir.path().join("topics/t");
    let mut bases: Vec<String> = std::fs::read_dir(&topic)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".idx"))
        .collect();
    bases.sort();
    std::fs::remove_file(topic.join(&bases[1])).unwrap();
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "t",
            start: Start::Time(T0 + 1000),
        },
    );
    match h.output(c).last() {
        Some(Owned::Error { code, reason }) => {
            assert_eq!(*code, mbus_proto::ErrorCode::Internal);
            assert!(reason.starts_with("cannot find time"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Other subscriptions, and the topic, are served.
    assert_eq!(subscribe(&mut h, Start::Last(2)).1, [198, 199]);
}
