//! Records of several messages: a publish's batch is one record of as many offsets, read from
//! any of them, recovered after the index is cut among its entries or the log torn inside it,
//! and lost as a whole when its bytes are damaged.

mod store_util;

use std::fs;

use mbus_broker::store::{StoreError, TopicStore};
use store_util::*;

const N: u64 = 120;

fn build(tmp: &TempDir) -> Vec<u64> {
    let mut store = open(tmp.path(), small(1500));
    fill_batches(&mut store, N);
    store.sync().unwrap();
    drop(store);
    segment_bases(tmp.path())
}

#[test]
fn every_offset_of_a_batch_reads_its_record_and_the_rest_follow() {
    let tmp = TempDir::new("batches-read");
    let bases = build(&tmp);
    assert!(bases.len() >= 4, "{bases:?}");
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(1500)).unwrap();
    assert_eq!(
        (recovery.first, recovery.next, recovery.reindexed),
        (0, N, 0)
    );
    for max_bytes in [0, 300, 1 << 20] {
        assert_eq!(read_all(&mut store, max_bytes), (expected(0..N), vec![]));
    }
    for at in 0..N {
        let mut out = Vec::new();
        let read = store.read(at, 0, &mut out).unwrap();
        let got = frames(&out);
        // One record: the batch that holds `at`, from its first offset.
        let first = got[0].0;
        assert!(first <= at && at < first + 5, "{at}: {first}");
        assert_eq!(got, expected(first..read.next), "{at}");
    }
    // Segments hold whole batches: each segment starts at a batch's first offset.
    for base in &bases {
        let mut out = Vec::new();
        store.read(*base, 0, &mut out).unwrap();
        assert_eq!(frames(&out)[0].0, *base);
    }
}

#[test]
fn an_index_cut_among_a_batchs_entries_is_completed() {
    let tmp = TempDir::new("batches-idx");
    let bases = build(&tmp);
    let last = *bases.last().unwrap();
    let snapshot = fs::read(idx_file(tmp.path(), last)).unwrap();
    for cut in (0..=snapshot.len()).step_by(16).chain([5, 37]) {
        fs::write(idx_file(tmp.path(), last), &snapshot[..cut]).unwrap();
        let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(1500)).unwrap();
        assert_eq!(recovery.next, N, "cut at {cut}");
        assert!(
            recovery.corrupt.is_empty(),
            "cut at {cut}: {:?}",
            recovery.corrupt
        );
        assert_eq!(
            read_all(&mut store, 0),
            (expected(0..N), vec![]),
            "cut at {cut}"
        );
        drop(store);
        assert_eq!(
            fs::read(idx_file(tmp.path(), last)).unwrap(),
            snapshot,
            "cut at {cut}"
        );
    }
}

#[test]
fn a_log_torn_inside_the_last_batch_loses_that_batch_whole() {
    let tmp = TempDir::new("batches-torn");
    let bases = build(&tmp);
    let last = *bases.last().unwrap();
    let log = fs::read(log_file(tmp.path(), last)).unwrap();
    let starts = record_starts(&log);
    let tail = *starts.last().unwrap();
    // The last record's offsets: from what the record before ends with.
    let mut store = open(tmp.path(), small(1500));
    let mut out = Vec::new();
    store.read(N - 1, 0, &mut out).unwrap();
    let batch_first = frames(&out)[0].0;
    drop(store);
    // The index made it to the disk, the end of the log did not: the batch's offsets are lost,
    // never given out again.
    fs::write(
        log_file(tmp.path(), last),
        &log[..tail + (log.len() - tail) / 2],
    )
    .unwrap();
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(1500)).unwrap();
    assert_eq!(recovery.next, N);
    assert_eq!(recovery.lost, vec![batch_first..N]);
    let (good, corrupt) = read_all(&mut store, 1 << 20);
    assert_eq!(good, expected(0..batch_first));
    assert_eq!(corrupt, (batch_first..N).collect::<Vec<_>>());
    // Both cut: the log torn and the index without the batch; the batch is a torn tail, cut,
    // and its offsets are the next append's.
    drop(store);
    let tmp = TempDir::new("batches-torn-both");
    let bases = build(&tmp);
    let last = *bases.last().unwrap();
    fs::write(log_file(tmp.path(), last), &log[..tail + 3]).unwrap();
    let idx = fs::read(idx_file(tmp.path(), last)).unwrap();
    let keep = ((batch_first - last) * 16) as usize;
    fs::write(idx_file(tmp.path(), last), &idx[..keep]).unwrap();
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(1500)).unwrap();
    assert_eq!(recovery.next, batch_first);
    assert!(recovery.lost.is_empty());
    assert_eq!(read_all(&mut store, 0), (expected(0..batch_first), vec![]));
    let _ = bases;
}

#[test]
fn a_damaged_batch_is_one_corrupt_range_and_the_records_after_it_are_served() {
    let tmp = TempDir::new("batches-damage");
    let bases = build(&tmp);
    let base = bases[1];
    let log_p = log_file(tmp.path(), base);
    let mut log = fs::read(&log_p).unwrap();
    let starts = record_starts(&log);
    // A record of several messages, not the segment's first: find its offsets, then flip a
    // byte of its payload.
    let mut store = open(tmp.path(), small(1500));
    let (mut from, mut to, mut record) = (base, base, 0);
    while to - from < 2 || record == 0 {
        let mut out = Vec::new();
        let read = store.read(to, 0, &mut out).unwrap();
        record += usize::from(to > base);
        (from, to) = (to, read.next);
    }
    drop(store);
    let starts = &starts[record..];
    log[starts[0] + 40] ^= 0x10;
    fs::write(&log_p, &log).unwrap();
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, small(1500)).unwrap();
    assert_eq!(recovery.next, N);
    for at in from..to {
        let mut out = Vec::new();
        match store.read(at, 1 << 20, &mut out) {
            Err(StoreError::Corrupt { offset, until, .. }) => {
                assert_eq!((offset, until), (at, to), "{at}")
            }
            other => panic!("{at}: {other:?}"),
        }
    }
    let (good, corrupt) = read_all(&mut store, 700);
    assert_eq!(corrupt, (from..to).collect::<Vec<_>>());
    let want: Vec<_> = expected(0..N)
        .into_iter()
        .filter(|(o, _)| !(from..to).contains(o))
        .collect();
    assert_eq!(good, want);
}
