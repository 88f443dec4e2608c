//! The core with a data directory, driven in memory: confirms and deliveries wait for the group
//! commit, a new core recovers what the old one stored, and consumers behind the memory cache are
//! served from disk.

mod store_util;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mbus_broker::BrokerConfig;
use mbus_broker::engine::memlog::Retention;
use mbus_broker::engine::{ConnId, Core, CoreConfig};
use mbus_broker::store::{FileStorage, Fsync, StoreConfig};
use mbus_proto::{ErrorCode, Frame, Start};
use store_util::TempDir;
use support::{Harness, Owned};

/// Segment files of the store are this large, so that a few dozen messages roll one.
const STORE_SEGMENT: u64 = 4096;

fn config(cache_bytes: usize) -> CoreConfig {
    CoreConfig {
        // Small, so that a test sees whether frames read from disk count as replies.
        max_control_bytes: 256,
        retention: Retention {
            max_bytes: cache_bytes,
            max_messages: u64::MAX,
            segment_bytes: 1024,
        },
        ..BrokerConfig::default().core()
    }
}

/// A core on `disk` (shared with the test, which injects faults and crashes), started at `now`.
fn memory_harness(disk: &mbus_broker::store::MemoryStorage, now: Instant) -> Harness {
    let core = Core::start(config(1 << 20), Some(Box::new(disk.clone())), now);
    Harness {
        core: core.unwrap(),
    }
}

fn durable_harness(dir: &TempDir, cache_bytes: usize) -> Harness {
    let storage = FileStorage::new(
        dir.path().to_owned(),
        Fsync::Always,
        StoreConfig {
            segment_bytes: STORE_SEGMENT,
            ..StoreConfig::default()
        },
        64,
    );
    let core = Core::start(config(cache_bytes), Some(Box::new(storage)), Instant::now());
    Harness {
        core: core.unwrap(),
    }
}

#[test]
fn confirms_and_deliveries_wait_for_the_commit() {
    let dir = TempDir::new("commit");
    let mut h = durable_harness(&dir, 1 << 20);
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "t",
            start: Start::Earliest,
        },
    );
    assert_eq!(h.output(c).len(), 1, "Subscribed");
    let p = h.producer();
    h.publish(p, "t", b"one");
    h.publish(p, "t", b"two");
    assert_eq!(h.output(p), vec![], "no confirm before the data is durable");
    assert_eq!(
        h.output(c),
        vec![],
        "no delivery before the data is durable"
    );
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(2)]);
    let got: Vec<_> = Harness::deliveries(&h.output(c))
        .into_iter()
        .map(|d| d.2)
        .collect();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn a_new_core_recovers_what_was_committed_and_continues_the_offsets() {
    let dir = TempDir::new("recover");
    {
        let mut h = durable_harness(&dir, 1 << 20);
        let p = h.producer();
        for i in 0..50u32 {
            h.publish(p, "orders", &i.to_be_bytes());
        }
        h.core.commit();
        assert_eq!(h.output(p), vec![Owned::Confirm(50)]);
    }
    let mut h = durable_harness(&dir, 1 << 20);
    assert_eq!(h.core.stats().topics, 1, "the topic was found on disk");
    let p = h.producer();
    h.publish(p, "orders", &50u32.to_be_bytes());
    h.core.commit();
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "orders",
            start: Start::Earliest,
        },
    );
    let got = Harness::deliveries(&h.output(c));
    assert_eq!(got.len(), 51);
    for (i, (_, offset, data)) in got.iter().enumerate() {
        assert_eq!(*offset, i as u64);
        assert_eq!(data, &(i as u32).to_be_bytes());
    }
}

#[test]
fn consumers_behind_the_memory_cache_are_served_from_disk() {
    let dir = TempDir::new("cache");
    // A cache of 2 KiB holds a few dozen messages; the topic has a thousand.
    let mut h = durable_harness(&dir, 2048);
    let p = h.producer();
    for i in 0..1000u32 {
        h.publish(p, "big", &i.to_be_bytes());
        if i % 100 == 99 {
            h.core.commit();
        }
    }
    assert!(
        h.core.stored_bytes() <= 2048 + 1024,
        "memory holds only the cache"
    );
    for start in [Start::Earliest, Start::Offset(500)] {
        let c = h.consumer();
        h.core.receive(
            c,
            Frame::Subscribe {
                topic: "big",
                start,
            },
        );
        let out = h.output(c);
        assert!(
            !out.iter().any(|f| matches!(f, Owned::Gap { .. })),
            "no gap: disk has it all"
        );
        let got = Harness::deliveries(&out);
        let first = if start == Start::Earliest { 0 } else { 500 };
        assert_eq!(got.len() as u64, 1000 - first);
        for (k, (_, offset, data)) in got.iter().enumerate() {
            assert_eq!(*offset, first + k as u64);
            assert_eq!(data, &(*offset as u32).to_be_bytes());
        }
    }
}

#[test]
fn a_consumer_reading_from_disk_gets_nothing_the_next_commit_has_yet_to_make_durable() {
    let dir = TempDir::new("disk-visible");
    let mut h = durable_harness(&dir, 2048);
    let p = h.producer();
    for i in 0..10u32 {
        h.publish(p, "t", &i.to_be_bytes());
    }
    h.core.commit();
    // A burst larger than the cache, not committed yet: memory keeps only its newest part, so
    // a consumer from offset 0 is served from disk, where the whole burst already is.
    for i in 10..500u32 {
        h.publish(p, "t", &i.to_be_bytes());
    }
    let (c, out) = subscribe_from_earliest(&mut h, "t");
    let offsets: Vec<u64> = payloads(&out).into_iter().map(|(o, _)| o).collect();
    assert_eq!(
        offsets,
        (0..10).collect::<Vec<_>>(),
        "only what was committed"
    );
    h.core.commit();
    let rest = payloads(&h.output(c));
    assert_eq!(rest.first().map(|r| r.0), Some(10));
    assert_eq!(rest.last().map(|r| r.0), Some(499));
}

/// A consumer subscribed to `topic` from its oldest message, and what it was sent after the
/// `Subscribed` answer.
fn subscribe_from_earliest(h: &mut Harness, topic: &str) -> (ConnId, Vec<Owned>) {
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic,
            start: Start::Earliest,
        },
    );
    let mut out = h.output(c);
    assert!(matches!(out.first(), Some(Owned::Subscribed { .. })));
    out.remove(0);
    (c, out)
}

fn payloads(frames: &[Owned]) -> Vec<(u64, Vec<u8>)> {
    Harness::deliveries(frames)
        .into_iter()
        .map(|(_, offset, data)| (offset, data))
        .collect()
}

/// Bytes a record of one message of `data` takes in a segment file of topic `t` (at a one-byte
/// offset, time 0): STORAGE.md's records are a 4-byte checksum and the Deliver frame.
fn record_len(data: &[u8]) -> u64 {
    let frame = Frame::Deliver {
        topic: "t",
        offset: 1,
        time: 0,
        batch: mbus_proto::Batch::one(data),
    };
    4 + frame.to_bytes().len() as u64
}

fn topic_dir(dir: &TempDir, topic: &str) -> PathBuf {
    dir.path().join("topics").join(topic)
}

/// Asserts that `frames` end with an `Internal` error whose reason contains `words`.
fn assert_internal_error(frames: &[Owned], words: &str) {
    match frames.last() {
        Some(Owned::Error {
            code: ErrorCode::Internal,
            reason,
        }) => assert!(reason.contains(words), "{reason}"),
        other => panic!("expected an Internal error about {words:?}, got {other:?}"),
    }
}

/// A segment file name the store will want for its next segment, taken by a file of our own:
/// creating the segment fails, as it would on a full or failing disk.
fn block_segment(topic_dir: &Path, base: u64) -> PathBuf {
    let path = topic_dir.join(format!("{base:020}.log"));
    std::fs::write(&path, b"").unwrap();
    path
}

#[test]
fn a_publish_the_store_refuses_is_never_delivered_and_the_topic_goes_on() {
    let dir = TempDir::new("refused");
    let mut h = durable_harness(&dir, 1 << 20);
    let (c, _) = subscribe_from_earliest(&mut h, "t");
    // Messages of one size, so that the offset of the first roll follows from it.
    let (data, refused, stored) = ([7u8; 100], [0xeeu8; 100], [0x55u8; 100]);
    // The offset whose record no longer fits the first segment file.
    let roll = STORE_SEGMENT / record_len(&data);
    let p1 = h.producer();
    for _ in 0..roll {
        h.publish(p1, "t", &data);
    }
    h.core.commit();
    assert_eq!(h.output(p1), vec![Owned::Confirm(roll)]);
    assert_eq!(payloads(&h.output(c)).len() as u64, roll);

    let blocker = block_segment(&topic_dir(&dir, "t"), roll);
    h.publish(p1, "t", &refused);
    h.core.commit();
    assert_internal_error(&h.output(p1), "cannot store topic t");
    assert_eq!(h.output(c), vec![], "the refused message is not delivered");

    // The disk recovers; another producer's message takes the offset the refused one would have.
    std::fs::remove_file(blocker).unwrap();
    let p2 = h.producer();
    h.publish(p2, "t", &stored);
    h.core.commit();
    assert_eq!(h.output(p2), vec![Owned::Confirm(1)]);
    assert_eq!(payloads(&h.output(c)), vec![(roll, stored.to_vec())]);

    // After a restart the files hold exactly what was confirmed.
    drop(h);
    let mut h = durable_harness(&dir, 1 << 20);
    let (_, out) = subscribe_from_earliest(&mut h, "t");
    let got = payloads(&out);
    assert_eq!(got.len() as u64, roll + 1);
    assert_eq!(got.last(), Some(&(roll, stored.to_vec())));
    assert!(got.iter().all(|(_, d)| d[..] != refused[..]));
}

#[test]
fn a_batch_is_one_record_stored_whole_or_refused_whole() {
    let dir = TempDir::new("batch-refused");
    let mut h = durable_harness(&dir, 1 << 20);
    let (c, _) = subscribe_from_earliest(&mut h, "t");
    let data = [7u8; 100];
    let roll = STORE_SEGMENT / record_len(&data);
    let p1 = h.producer();
    for _ in 0..roll - 2 {
        h.publish(p1, "t", &data);
    }
    h.core.commit();
    assert_eq!(h.output(p1), vec![Owned::Confirm(roll - 2)]);
    assert_eq!(payloads(&h.output(c)).len() as u64, roll - 2);

    // Another producer's message fits the segment; then a batch of two, one record, which does
    // not: the next segment cannot be created, and the batch is refused whole.
    let blocker = block_segment(&topic_dir(&dir, "t"), roll - 1);
    let p2 = h.producer();
    h.publish(p2, "t", &[9; 100]);
    let p3 = h.producer();
    let mut batch = mbus_proto::BatchBuilder::new();
    batch.push(&[1; 100], &[]).unwrap();
    batch.push(&[2; 100], &[("k", b"v")]).unwrap();
    h.core.receive(
        p3,
        Frame::Publish {
            topic: "t",
            batch: batch.batch().unwrap(),
        },
    );
    assert_internal_error(&h.output(p3), "cannot store topic t");
    h.core.commit();
    assert_eq!(h.output(p2), vec![Owned::Confirm(1)]);
    assert_eq!(payloads(&h.output(c)), vec![(roll - 2, vec![9; 100])]);

    // Once the disk takes it, a batch is one record of consecutive offsets.
    std::fs::remove_file(blocker).unwrap();
    let p4 = h.producer();
    h.core.receive(
        p4,
        Frame::Publish {
            topic: "t",
            batch: batch.batch().unwrap(),
        },
    );
    h.core.commit();
    assert_eq!(h.output(p4), vec![Owned::Confirm(1)]);
    let want = vec![(roll - 1, vec![1; 100]), (roll, vec![2; 100])];
    assert_eq!(payloads(&h.output(c)), want);
    drop(h);
    let mut h = durable_harness(&dir, 1 << 20);
    let (_, out) = subscribe_from_earliest(&mut h, "t");
    let got = payloads(&out);
    assert_eq!(got.len() as u64, roll + 1);
    assert_eq!(got[got.len() - 2..], want[..]);
    // The second segment holds the batch alone: two index entries, both at its one record.
    let idx = std::fs::read(topic_dir(&dir, "t").join(format!("{:020}.idx", roll - 1))).unwrap();
    assert_eq!(idx.len(), 32);
    assert_eq!((&idx[..8], &idx[16..24]), (&[0; 8][..], &[0; 8][..]));
}

#[test]
fn a_failed_commit_drops_what_it_held_retries_with_the_next_and_spares_the_others() {
    let dir = TempDir::new("commit-failed");
    let mut h = durable_harness(&dir, 1 << 20);
    let (c, _) = subscribe_from_earliest(&mut h, "t");
    let p = h.producer();
    h.publish(p, "t", b"unknown");
    // The new topic's directory vanishes before its first commit: the records are written (the
    // files are open), but the commit cannot make the directory that names them durable.
    std::fs::remove_dir_all(topic_dir(&dir, "t")).unwrap();
    h.core.commit();
    assert_internal_error(&h.output(p), "could not store");
    assert_eq!(
        h.output(c),
        vec![],
        "what the failed commit held is not shown"
    );

    // The topic went back to its last commit and tries again with the next publish, which
    // fails the same way while the cause lasts.
    let p2 = h.producer();
    h.publish(p2, "t", b"later");
    let p3 = h.producer();
    h.publish(p3, "other", b"fine");
    h.core.commit();
    assert_internal_error(&h.output(p2), "could not store");
    assert_eq!(h.output(c), vec![], "nor anything after it");
    assert_eq!(
        h.output(p3),
        vec![Owned::Confirm(1)],
        "a producer of another topic in the same turn is confirmed"
    );
}

#[test]
fn a_record_torn_by_a_crash_is_cut_and_its_offset_taken_by_the_next_publish() {
    use mbus_broker::store::MemoryStorage;
    use mbus_broker::store::memory::Crash;
    let disk = MemoryStorage::new(Fsync::Always, u64::MAX);
    let start = |disk: &MemoryStorage| memory_harness(disk, Instant::now());
    let mut h = start(&disk);
    let p = h.producer();
    for i in 0..3u8 {
        h.publish(p, "t", &[i]);
    }
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(3)]);
    h.publish(p, "t", b"never confirmed");
    drop(h);
    disk.crash(Crash::Torn);
    let mut h = start(&disk);
    assert_eq!(disk.torn_cut("t"), 1, "the half-written record is cut");
    let p = h.producer();
    h.publish(p, "t", b"next");
    h.core.commit();
    let (_, out) = subscribe_from_earliest(&mut h, "t");
    let got: Vec<(u64, Vec<u8>)> = payloads(&out);
    assert_eq!(
        got,
        vec![
            (0, vec![0]),
            (1, vec![1]),
            (2, vec![2]),
            (3, b"next".to_vec())
        ]
    );
}

#[test]
fn frames_read_from_disk_are_no_unread_replies_and_a_ping_is_answered() {
    let dir = TempDir::new("disk-replies");
    let mut h = durable_harness(&dir, 2048);
    let p = h.producer();
    for i in 0..1000u32 {
        h.publish(p, "t", &i.to_be_bytes());
    }
    h.core.commit();
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "t",
            start: Start::Earliest,
        },
    );
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    // The consumer takes a little of a chunk read from disk, far more than 256 bytes, and pings.
    let mut sink = support::Throttled {
        taken: Vec::new(),
        room: 100,
    };
    let _ = h.core.write(c, &mut sink).unwrap();
    h.core.writable(c);
    h.core.receive(c, Frame::Ping);
    sink.room = usize::MAX;
    while h.core.write(c, &mut sink).unwrap() != mbus_broker::engine::Progress::Drained {}
    let out = support::frames(&sink.taken);
    assert!(
        !out.iter().any(|f| matches!(f, Owned::Error { .. })),
        "not slow"
    );
    assert!(out.contains(&Owned::Pong));
    assert_eq!(Harness::deliveries(&out).len(), 1000);
}

/// Keeps the log lines about one topic, so that a test can count them.
struct Capture(std::sync::Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}", record.level(), record.args());
        if line.contains("lost-middle") {
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(std::sync::Mutex::new(Vec::new()));

#[test]
fn a_lost_middle_segment_is_one_gap_for_each_consumer_and_one_log_line() {
    log::set_logger(&LOGS).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let dir = TempDir::new("lost-middle");
    let topic = "lost-middle";
    {
        let mut h = durable_harness(&dir, 2048);
        let p = h.producer();
        for i in 0..400u32 {
            h.publish(p, topic, &[i as u8; 100]);
        }
        h.core.commit();
    }
    let mut logs: Vec<u64> = std::fs::read_dir(topic_dir(&dir, topic))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|b| b.parse().unwrap())
        })
        .collect();
    logs.sort();
    assert!(logs.len() >= 5, "segments: {logs:?}");
    let (lost_from, lost_to) = (logs[2], logs[3]);
    for ext in ["log", "idx"] {
        let name = format!("{lost_from:020}.{ext}");
        std::fs::remove_file(topic_dir(&dir, topic).join(name)).unwrap();
    }
    let mut h = durable_harness(&dir, 2048);
    for _ in 0..2 {
        let (_, out) = subscribe_from_earliest(&mut h, topic);
        let gaps: Vec<&Owned> = out
            .iter()
            .filter(|f| matches!(f, Owned::Gap { .. }))
            .collect();
        assert_eq!(
            gaps,
            vec![&Owned::Gap {
                topic: topic.into(),
                from: lost_from,
                to: lost_to
            }]
        );
        assert_eq!(
            payloads(&out).len() as u64,
            400 - (lost_to - lost_from),
            "everything else arrives"
        );
    }
    let errors: Vec<String> = LOGS
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("ERROR"))
        .cloned()
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn a_topic_that_cannot_be_opened_is_counted_unavailable_and_the_rest_recover() {
    let dir = TempDir::new("unavailable");
    {
        let mut h = durable_harness(&dir, 1 << 20);
        let p = h.producer();
        h.publish(p, "fine", b"kept");
        h.core.commit();
    }
    std::fs::write(dir.path().join("topics").join("broken"), b"not a directory").unwrap();
    let mut h = durable_harness(&dir, 1 << 20);
    let stats = h.core.stats();
    assert_eq!((stats.topics, stats.unavailable_topics), (2, 1));
    let (_, out) = subscribe_from_earliest(&mut h, "fine");
    assert_eq!(payloads(&out), vec![(0, b"kept".to_vec())]);
}

#[test]
fn a_topic_that_cannot_be_opened_for_want_of_descriptors_is_a_limit_not_an_internal_error() {
    use mbus_broker::store::MemoryStorage;
    use mbus_broker::store::memory::Op;
    let disk = MemoryStorage::new(Fsync::Always, u64::MAX);
    let mut h = memory_harness(&disk, Instant::now());
    for (errno, code) in [(24, ErrorCode::LimitReached), (28, ErrorCode::Internal)] {
        disk.fail_next_with(Op::Open, 1, errno);
        let p = h.producer();
        h.publish(p, "new", b"x");
        match &h.output(p)[..] {
            [Owned::Error { code: got, reason }] => assert_eq!(*got, code, "{reason}"),
            other => panic!("errno {errno}: {other:?}"),
        }
    }
    // Once descriptors are free again the topic is created as usual.
    let p = h.producer();
    h.publish(p, "new", b"x");
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(1)]);
}

#[test]
fn a_commit_that_fails_on_a_full_disk_drops_only_its_own_and_the_topic_resumes() {
    use mbus_broker::store::MemoryStorage;
    use mbus_broker::store::memory::{Crash, Op};
    let disk = MemoryStorage::new(Fsync::Always, u64::MAX);
    let start = |disk: &MemoryStorage| memory_harness(disk, Instant::now());
    let mut h = start(&disk);
    let (c, _) = subscribe_from_earliest(&mut h, "t");
    let p1 = h.producer();
    for data in [&b"a"[..], b"b"] {
        h.publish(p1, "t", data);
    }
    h.core.commit();
    assert_eq!(h.output(p1), vec![Owned::Confirm(2)]);
    assert_eq!(payloads(&h.output(c)).len(), 2);

    // The disk is full for one commit: its publishes are refused, nothing of them is shown.
    disk.fail_next_with(Op::Commit, 1, 28);
    for data in [&b"lost 1"[..], b"lost 2"] {
        h.publish(p1, "t", data);
    }
    h.core.commit();
    assert_internal_error(&h.output(p1), "No space left on device");
    assert_eq!(
        h.output(c),
        vec![],
        "what the failed commit held is not shown"
    );
    assert_eq!(
        disk.next("t"),
        2,
        "the storage went back to its last commit"
    );

    // Space is free again: the topic takes the next publish without a restart, at the offset
    // the refused ones would have had.
    let p2 = h.producer();
    h.publish(p2, "t", b"next");
    h.core.commit();
    assert_eq!(h.output(p2), vec![Owned::Confirm(1)]);
    assert_eq!(payloads(&h.output(c)), vec![(2, b"next".to_vec())]);

    // What a restart finds is exactly what was confirmed.
    drop(h);
    disk.crash(Crash::Process);
    let mut h = start(&disk);
    let (_, out) = subscribe_from_earliest(&mut h, "t");
    let got: Vec<Vec<u8>> = payloads(&out).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, [&b"a"[..], b"b", b"next"]);
}

#[test]
fn subscribing_alone_leaves_nothing_on_disk_and_the_first_publish_creates_the_files() {
    let dir = TempDir::new("subscribe-only");
    let mut h = durable_harness(&dir, 1 << 20);
    let (c, out) = subscribe_from_earliest(&mut h, "typo");
    assert_eq!(out, vec![]);
    assert!(
        !topic_dir(&dir, "typo").exists(),
        "a subscription alone made a directory"
    );
    // The subscriber waits for the first message; publishing creates the files.
    let p = h.producer();
    h.publish(p, "typo", b"first");
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(1)]);
    assert_eq!(payloads(&h.output(c)), vec![(0, b"first".to_vec())]);
    assert!(topic_dir(&dir, "typo").is_dir());
    // After a restart the topic is there with its message, and a name only ever subscribed to
    // is not.
    subscribe_from_earliest(&mut h, "never-published");
    drop(h);
    let mut h = durable_harness(&dir, 1 << 20);
    let (_, out) = subscribe_from_earliest(&mut h, "typo");
    assert_eq!(payloads(&out), vec![(0, b"first".to_vec())]);
    assert!(!topic_dir(&dir, "never-published").exists());
}

#[test]
fn a_failed_commit_after_a_batch_sync_still_goes_back_to_the_last_commit() {
    use mbus_broker::store::MemoryStorage;
    use mbus_broker::store::memory::Op;
    let disk = MemoryStorage::new(Fsync::Batch, u64::MAX);
    let now = Instant::now();
    let mut h = memory_harness(&disk, now);
    let (c, _) = subscribe_from_earliest(&mut h, "t");
    let p = h.producer();
    h.publish(p, "t", b"committed");
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(1)]);
    // Appended, then the batch sync comes due before the turn's commit, which fails: the sync
    // wrote the appended records, but they were never committed.
    h.publish(p, "t", b"lost");
    h.core.handle_timeout(now + Duration::from_secs(1));
    disk.fail_next(Op::Commit, 1);
    h.core.commit();
    assert_internal_error(&h.output(p), "could not store");
    assert_eq!(
        disk.next("t"),
        1,
        "the storage went back to its last commit"
    );
    let p2 = h.producer();
    h.publish(p2, "t", b"next");
    h.core.commit();
    assert_eq!(h.output(p2), vec![Owned::Confirm(1)]);
    assert_eq!(
        payloads(&h.output(c)),
        vec![(0, b"committed".to_vec()), (1, b"next".to_vec())],
        "the consumer is not left waiting for what was taken back"
    );
}
