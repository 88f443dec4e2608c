//! The on-disk topic store used as a caller would: appends and reads across segments, reopening,
//! rebuilding indexes, retention, and what it refuses.

mod store_util;

use std::fs;
use std::time::{Duration, SystemTime};

use mbus_broker::store::{StoreConfig, StoreError, TopicStore};
use store_util::*;

#[test]
fn frames_read_back_across_segments() {
    let tmp = TempDir::new("round-trip");
    let mut store = open(tmp.path(), small(2000));
    assert_eq!((store.first(), store.next(), store.bytes()), (0, 0, 0));
    fill(&mut store, 300);
    assert_eq!(store.next(), 300);
    assert!(segment_bases(tmp.path()).len() > 10, "small segments roll");
    let (good, corrupt) = read_all(&mut store, usize::MAX);
    assert!(corrupt.is_empty());
    assert_eq!(good, expected(0..300));
    store.flush().unwrap();
    let files: u64 = segment_bases(tmp.path())
        .iter()
        .map(|&b| {
            fs::metadata(log_file(tmp.path(), b)).unwrap().len()
                + fs::metadata(idx_file(tmp.path(), b)).unwrap().len()
        })
        .sum();
    assert_eq!(
        store.bytes(),
        files,
        "bytes() counts the log and index files"
    );
    drop(store);
    let (store, _) = TopicStore::open(tmp.path(), TOPIC, small(2000)).unwrap();
    assert_eq!(store.bytes(), files, "and so does a store opened on them");
}

#[test]
fn every_offset_reads_with_any_max_bytes() {
    let tmp = TempDir::new("max-bytes");
    let mut store = open(tmp.path(), small(1500));
    fill(&mut store, 60);
    for offset in 0..60 {
        for max_bytes in [0, 1, 40, 200, 700, 5000] {
            let mut out = b"kept".to_vec();
            let read = store.read(offset, max_bytes, &mut out).unwrap();
            assert_eq!(&out[..4], b"kept", "read appends");
            let got = frames(&out[4..]);
            assert_eq!(read.first, offset);
            assert!(read.count() >= 1);
            assert!(
                read.count() == 1 || read.bytes <= max_bytes,
                "{} bytes for max {max_bytes}",
                read.bytes
            );
            assert_eq!(got, expected(offset..read.next));
            // Nothing that would have fit was left out.
            if read.next < 60 && read.count() > 1 {
                let next_len = frame(read.next, &payload(read.next)).len();
                assert!(read.bytes + next_len > max_bytes);
            }
        }
        let (good, _) = read_all(&mut store, 100);
        assert_eq!(good, expected(0..60));
    }
    let mut out = Vec::new();
    let at_end = store.read(60, 1000, &mut out).unwrap();
    assert_eq!((at_end.count(), at_end.bytes), (0, 0));
    let past_end = store.read(70, 1000, &mut out).unwrap();
    assert_eq!((past_end.first, past_end.next), (70, 70));
}

#[test]
fn reads_see_appends_still_in_the_write_buffer() {
    let tmp = TempDir::new("buffered");
    let mut store = open(
        tmp.path(),
        StoreConfig {
            write_buffer: 1 << 20,
            ..small(1 << 30)
        },
    );
    fill(&mut store, 5);
    let log = log_file(tmp.path(), 0);
    assert_eq!(fs::metadata(&log).unwrap().len(), 0, "still buffered");
    assert_eq!(read_all(&mut store, usize::MAX).0, expected(0..5));
    store.flush().unwrap();
    fill(&mut store, 5);
    // Half flushed, half buffered, read in one go and one by one.
    assert_eq!(read_all(&mut store, usize::MAX).0, expected(0..10));
    assert_eq!(read_all(&mut store, 0).0, expected(0..10));
}

#[test]
fn reopening_recovers_first_next_and_the_data() {
    let tmp = TempDir::new("reopen");
    let mut store = open(tmp.path(), small(3000));
    fill(&mut store, 200);
    store.sync().unwrap();
    let bytes = store.bytes();
    drop(store);
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(3000)).unwrap();
    assert_eq!((recovery.first, recovery.next), (0, 200));
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(recovery.reindexed, 0);
    assert!(recovery.corrupt.is_empty());
    assert_eq!(recovery.segments, segment_bases(tmp.path()).len());
    assert_eq!(store.bytes(), bytes);
    assert_eq!(read_all(&mut store, 1000).0, expected(0..200));
    // Appends go on where they stopped, and survive another reopen.
    fill(&mut store, 50);
    drop(store);
    let mut store = open(tmp.path(), small(3000));
    assert_eq!(read_all(&mut store, 1000).0, expected(0..250));
}

#[test]
fn a_killed_process_keeps_what_was_flushed() {
    let tmp = TempDir::new("killed");
    let config = StoreConfig {
        write_buffer: 1 << 20,
        ..small(1 << 30)
    };
    let mut store = open(tmp.path(), config);
    fill(&mut store, 20);
    store.flush().unwrap();
    fill(&mut store, 20);
    // Forgetting the store is what kill -9 does to it: no destructor, buffers lost.
    std::mem::forget(store);
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, config).unwrap();
    assert_eq!(recovery.next, 20);
    assert_eq!(read_all(&mut store, usize::MAX).0, expected(0..20));
}

#[test]
fn a_new_topic_starts_empty_and_versions_the_data_directory() {
    let tmp = TempDir::new("new");
    let (store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(1000)).unwrap();
    assert_eq!(
        (recovery.first, recovery.next, recovery.segments),
        (0, 0, 1)
    );
    assert_eq!(store.topic(), TOPIC);
    assert_eq!(
        fs::read_to_string(tmp.path().join("VERSION")).unwrap(),
        "2\n"
    );
    assert!(log_file(tmp.path(), 0).exists());
    assert!(idx_file(tmp.path(), 0).exists());
    drop(store);
    // An empty topic directory is a new topic too.
    let dir = tmp.path().join("topics").join("empty");
    fs::create_dir_all(&dir).unwrap();
    let (_, recovery) = TopicStore::open(tmp.path(), "empty", small(1000)).unwrap();
    assert_eq!((recovery.first, recovery.next), (0, 0));
}

#[test]
fn another_format_version_is_refused() {
    let tmp = TempDir::new("version");
    fs::write(tmp.path().join("VERSION"), "3\n").unwrap();
    match TopicStore::open(tmp.path(), TOPIC, small(1000)) {
        Err(StoreError::UnsupportedVersion { found, .. }) => assert_eq!(found, "3"),
        other => panic!("{other:?}"),
    }
    assert!(!tmp.path().join("topics").exists());
}

#[test]
fn names_that_are_not_safe_directories_are_refused() {
    let tmp = TempDir::new("names");
    for name in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(256)] {
        match TopicStore::open(tmp.path(), name, small(1000)) {
            Err(StoreError::InvalidTopic { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    assert!(TopicStore::open(tmp.path(), "a.b_c-1", small(1000)).is_ok());
    assert!(TopicStore::open(tmp.path(), &"x".repeat(255), small(1000)).is_ok());
}

#[test]
fn appends_must_be_the_next_offsets_own_deliver_frame() {
    let tmp = TempDir::new("append");
    let mut store = open(tmp.path(), small(1000));
    fill(&mut store, 3);
    let mismatch = store.append(4, &frame(4, b"x"));
    assert!(matches!(
        mismatch,
        Err(StoreError::OffsetMismatch {
            expected: 3,
            got: 4,
            ..
        })
    ));
    let other_topic = mbus_proto::Frame::Deliver {
        topic: "other",
        offset: 3,
        time: 0,
        batch: mbus_proto::Batch::one(b"x"),
    }
    .to_bytes();
    let publish = mbus_proto::Frame::publish(TOPIC, b"x").to_bytes();
    let mut short = frame(3, b"xyz");
    short.pop();
    let mut long = frame(3, b"xyz");
    long.push(0);
    for bad in [
        frame(4, b"x"),
        other_topic,
        publish,
        short,
        long,
        vec![],
        vec![0, 0, 0],
    ] {
        assert!(
            matches!(
                store.append(3, &bad),
                Err(StoreError::InvalidFrame { offset: 3, .. })
            ),
            "{bad:02x?}"
        );
    }
    assert_eq!(store.next(), 3);
    assert_eq!(read_all(&mut store, usize::MAX).0, expected(0..3));
}

#[test]
fn frames_of_any_size_including_larger_than_a_segment() {
    let tmp = TempDir::new("sizes");
    let config = StoreConfig {
        write_buffer: 256,
        ..small(300)
    };
    let mut store = open(tmp.path(), config);
    let sizes = [0usize, 1, 5000, 10, 300, 100_000, 2, 255, 256, 70_000, 1];
    let data: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i + j) as u8).collect())
        .collect();
    for (i, d) in data.iter().enumerate() {
        store.append(i as u64, &frame(i as u64, d)).unwrap();
    }
    let want: Vec<(u64, Vec<u8>)> = data
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, d)| (i as u64, d))
        .collect();
    for max_bytes in [0, 100, 10_000, usize::MAX] {
        assert_eq!(read_all(&mut store, max_bytes).0, want, "max {max_bytes}");
    }
    // A segment holds one record that does not fit the segment size, and only that one.
    for &big in &[2u64, 5, 9] {
        assert!(segment_bases(tmp.path()).contains(&big));
        assert!(segment_bases(tmp.path()).contains(&(big + 1)));
    }
    drop(store);
    let mut store = open(tmp.path(), config);
    assert_eq!(read_all(&mut store, 1000).0, want);
}

#[test]
fn missing_or_short_indexes_are_rebuilt() {
    let tmp = TempDir::new("reindex");
    let mut store = open(tmp.path(), small(2000));
    fill(&mut store, 120);
    drop(store);
    let bases = segment_bases(tmp.path());
    assert!(bases.len() >= 4);
    let last = *bases.last().unwrap();
    fs::remove_file(idx_file(tmp.path(), bases[0])).unwrap();
    let cut = |base: u64, to: u64| {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(idx_file(tmp.path(), base))
            .unwrap();
        f.set_len(to).unwrap();
    };
    cut(bases[1], 16 * 3);
    cut(bases[2], 16 * 3 + 5);
    cut(last, 0);
    let expected_reindexed = (bases[1] - bases[0])
        + (bases[2] - bases[1] - 3)
        + (bases[3] - bases[2] - 3)
        + (120 - last);
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(2000)).unwrap();
    assert_eq!(recovery.reindexed, expected_reindexed);
    assert_eq!((recovery.first, recovery.next), (0, 120));
    assert!(recovery.corrupt.is_empty());
    assert_eq!(recovery.truncated_bytes, 0);
    for base in &bases {
        let n = fs::metadata(idx_file(tmp.path(), *base)).unwrap().len();
        let end = bases.iter().find(|&&b| b > *base).copied().unwrap_or(120);
        assert_eq!(n, 16 * (end - base), "index of {base}");
    }
    assert_eq!(read_all(&mut store, 500).0, expected(0..120));
    assert_eq!(read_all(&mut store, 0).0, expected(0..120));
}

#[test]
fn an_index_left_without_its_log_is_removed() {
    let tmp = TempDir::new("orphan");
    let mut store = open(tmp.path(), small(2000));
    fill(&mut store, 50);
    drop(store);
    let bases = segment_bases(tmp.path());
    // As a crash between deleting a segment's log and its index leaves it.
    fs::remove_file(log_file(tmp.path(), bases[0])).unwrap();
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(2000)).unwrap();
    assert!(!idx_file(tmp.path(), bases[0]).exists());
    assert_eq!((recovery.first, recovery.next), (bases[1], 50));
    assert_eq!(read_all(&mut store, 500).0, expected(bases[1]..50));
}

#[test]
fn byte_retention_deletes_whole_oldest_segments() {
    let tmp = TempDir::new("retention-bytes");
    let config = StoreConfig {
        retention_bytes: 5000,
        ..small(1000)
    };
    let mut store = open(tmp.path(), config);
    let mut out = Vec::new();
    for round in 0..10 {
        fill(&mut store, 30);
        let first = store.enforce_retention(SystemTime::now()).unwrap();
        assert_eq!(first, store.first());
        assert!(
            store.bytes() <= 5000 || segment_bases(tmp.path()).len() == 1,
            "round {round}"
        );
        // Only whole segments go: `first` is a segment's base and the one before it is gone.
        let bases = segment_bases(tmp.path());
        assert_eq!(bases[0], first);
        assert!(
            store.bytes() + 1000 > 5000 || first == 0,
            "no more deleted than needed"
        );
        assert!(matches!(
            store.read(first.saturating_sub(1), 100, &mut out),
            Err(StoreError::Deleted { .. }) | Ok(_)
        ));
    }
    let first = store.first();
    assert!(first > 0);
    assert!(matches!(
        store.read(first - 1, 100, &mut out),
        Err(StoreError::Deleted { offset, first: f, .. }) if offset == first - 1 && f == first
    ));
    assert_eq!(read_all(&mut store, 700).0, expected(first..300));
    assert!(!idx_file(tmp.path(), 0).exists());
    store.sync().unwrap();
    drop(store);
    let (_, recovery) = TopicStore::open(tmp.path(), TOPIC, config).unwrap();
    assert_eq!((recovery.first, recovery.next), (first, 300));
}

#[test]
fn age_retention_deletes_old_segments_but_never_the_active_one() {
    let tmp = TempDir::new("retention-age");
    let config = StoreConfig {
        retention_age: Some(Duration::from_secs(3600)),
        ..small(1000)
    };
    let mut store = open(tmp.path(), config);
    fill(&mut store, 100);
    store.flush().unwrap();
    let bases = segment_bases(tmp.path());
    assert!(bases.len() >= 5);
    let now = SystemTime::now();
    let age = |base: u64, secs: u64| {
        let f = fs::File::options()
            .write(true)
            .open(log_file(tmp.path(), base))
            .unwrap();
        f.set_modified(now - Duration::from_secs(secs)).unwrap();
    };
    for &base in &bases {
        age(base, 60);
    }
    age(bases[0], 7200);
    age(bases[1], 7200);
    // An old segment after a young one stays: segments go oldest first.
    age(bases[3], 7200);
    assert_eq!(store.enforce_retention(now).unwrap(), bases[2]);
    assert_eq!(segment_bases(tmp.path()), bases[2..]);
    // Much later, everything sealed is old, but the active segment stays.
    let later = now + Duration::from_secs(86_400);
    let last = *bases.last().unwrap();
    assert_eq!(store.enforce_retention(later).unwrap(), last);
    assert_eq!(segment_bases(tmp.path()), [last]);
    assert_eq!(read_all(&mut store, 1000).0, expected(last..100));
    fill(&mut store, 10);
    assert_eq!(read_all(&mut store, 1000).0, expected(last..110));
}

#[test]
fn sync_after_rolls_and_deletes_then_reopen() {
    let tmp = TempDir::new("sync");
    let config = StoreConfig {
        retention_bytes: 4000,
        ..small(1000)
    };
    let mut store = open(tmp.path(), config);
    for _ in 0..5 {
        fill(&mut store, 17);
        store.sync().unwrap();
        store.enforce_retention(SystemTime::now()).unwrap();
        store.sync().unwrap();
    }
    let (first, next) = (store.first(), store.next());
    drop(store);
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, config).unwrap();
    assert_eq!((recovery.first, recovery.next), (first, next));
    assert_eq!(read_all(&mut store, 1000).0, expected(first..next));
}

#[test]
fn storage_md_quotes_a_record_as_the_store_writes_it() {
    let tmp = TempDir::new("doc");
    let mut store = open(tmp.path(), small(1000));
    let data = b"look ma! a new order";
    store.append(0, &frame(0, data)).unwrap();
    store.flush().unwrap();
    let written = fs::read(log_file(tmp.path(), 0)).unwrap();
    let quoted = store_util::storage_example("record-example");
    assert_eq!(quoted, written);
    let entry = [[0; 8], TIME.to_le_bytes()].concat();
    assert_eq!(fs::read(idx_file(tmp.path(), 0)).unwrap(), entry);
}
