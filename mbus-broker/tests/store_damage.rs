//! The store against damaged files: torn writes cut at every byte, single bit flips at every
//! position, and damage combined with a lost index. Recovery must never panic, cut only a torn
//! tail, and every record it keeps must read back intact or be reported corrupt by its offset.

mod store_util;

use std::fs;
use std::path::Path;

use mbus_broker::store::{Recovery, StoreConfig, TopicStore};
use store_util::*;

const CONFIG: StoreConfig = StoreConfig {
    segment_bytes: 1200,
    retention_bytes: u64::MAX,
    retention_age: None,
    write_buffer: 512,
};

/// A topic of `n` records over several segments, closed cleanly; returns the segment bases.
fn build(dir: &Path, n: u64) -> Vec<u64> {
    let mut store = open(dir, CONFIG);
    fill(&mut store, n);
    store.sync().unwrap();
    drop(store);
    let bases = segment_bases(dir);
    assert!(
        bases.len() >= 3,
        "the damage must be tried on sealed and last segments"
    );
    bases
}

/// The bytes of every file of the topic, to put back between trials.
struct Snapshot(Vec<(std::path::PathBuf, Vec<u8>)>);

impl Snapshot {
    fn take(dir: &Path) -> Snapshot {
        let topic = dir.join("topics").join(TOPIC);
        let mut files: Vec<_> = fs::read_dir(topic)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let bytes = fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        files.sort();
        Snapshot(files)
    }

    fn restore(&self) {
        for (p, bytes) in &self.0 {
            fs::write(p, bytes).unwrap();
        }
    }

    /// Puts back the files of one segment, the only ones a trial damaged.
    fn restore_segment(&self, dir: &Path, base: u64) {
        for (p, bytes) in &self.0 {
            if *p == log_file(dir, base) || *p == idx_file(dir, base) {
                fs::write(p, bytes).unwrap();
            }
        }
    }
}

#[test]
fn a_log_cut_at_every_byte_of_its_last_records_loses_only_those() {
    let tmp = TempDir::new("torn-log");
    let n = 40;
    let bases = build(tmp.path(), n);
    let last = *bases.last().unwrap();
    let snapshot = Snapshot::take(tmp.path());
    let log = fs::read(log_file(tmp.path(), last)).unwrap();
    let starts = record_starts(&log);
    assert!(starts.len() >= 2);
    // Every cut inside the last two records, and at the boundary between them.
    let from = starts[starts.len() - 2];
    for cut in from..log.len() {
        snapshot.restore();
        let f = fs::OpenOptions::new()
            .write(true)
            .open(log_file(tmp.path(), last))
            .unwrap();
        f.set_len(cut as u64).unwrap();
        drop(f);
        let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, CONFIG).unwrap();
        // Whole records before the cut stay, the torn one goes.
        let kept = starts.iter().filter(|&&s| s < cut).count() as u64;
        let whole = starts.partition_point(|&s| {
            s + 8 <= cut && {
                let len = u32::from_be_bytes(log[s + 4..s + 8].try_into().unwrap()) as usize;
                s + 8 + len <= cut
            }
        }) as u64;
        assert!(kept == whole || kept == whole + 1);
        // The index still lists every record: the ones the cut took are kept as lost, so that
        // the topic goes on after them.
        let indexed = starts.len() as u64;
        assert_eq!(recovery.next, last + indexed, "cut at {cut}");
        let boundary = if whole as usize == starts.len() {
            log.len()
        } else {
            starts[whole as usize]
        };
        assert_eq!(
            recovery.truncated_bytes,
            (cut - boundary) as u64,
            "cut at {cut}"
        );
        let lost: Vec<_> = (whole < indexed)
            .then(|| last + whole..last + indexed)
            .into_iter()
            .collect();
        assert_eq!(recovery.lost, lost, "cut at {cut}");
        assert_eq!(recovery.corrupt, lost, "cut at {cut}");
        let lost_offsets: Vec<u64> = (last + whole..last + indexed).collect();
        let (good, corrupt) = read_all(&mut store, 700);
        assert_eq!(corrupt, lost_offsets, "cut at {cut}");
        assert_eq!(good, expected(0..last + whole), "cut at {cut}");
        // The topic goes on after the lost offsets, and a reopen keeps what was appended.
        fill(&mut store, 3);
        drop(store);
        let mut store = open(tmp.path(), CONFIG);
        let mut want = expected(0..last + whole);
        want.extend(expected(last + indexed..last + indexed + 3));
        let (good, corrupt) = read_all(&mut store, 700);
        let got: Vec<u64> = good.iter().map(|g| g.0).collect();
        assert_eq!(corrupt, lost_offsets, "cut at {cut}: read {got:?}");
        assert_eq!(good, want, "cut at {cut}");
    }
}

#[test]
fn an_index_cut_at_every_byte_is_rebuilt() {
    let tmp = TempDir::new("torn-idx");
    let n = 40;
    let bases = build(tmp.path(), n);
    let snapshot = Snapshot::take(tmp.path());
    for &base in &[bases[0], *bases.last().unwrap()] {
        let idx_len = fs::metadata(idx_file(tmp.path(), base)).unwrap().len();
        for cut in 0..idx_len {
            snapshot.restore();
            let f = fs::OpenOptions::new()
                .write(true)
                .open(idx_file(tmp.path(), base))
                .unwrap();
            f.set_len(cut).unwrap();
            drop(f);
            let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, CONFIG).unwrap();
            assert_eq!(
                (recovery.first, recovery.next),
                (0, n),
                "segment {base} cut at {cut}"
            );
            assert_eq!(recovery.reindexed, (idx_len - cut).div_ceil(16));
            assert_eq!(recovery.truncated_bytes, 0);
            assert_eq!(
                fs::metadata(idx_file(tmp.path(), base)).unwrap().len(),
                idx_len
            );
            assert_eq!(read_all(&mut store, 300), (expected(0..n), vec![]));
        }
    }
}

/// The offset whose record holds byte `pos` of a segment log.
fn record_at(starts: &[usize], base: u64, pos: usize) -> u64 {
    base + (starts.partition_point(|&s| s <= pos) - 1) as u64
}

fn flip(path: &Path, pos: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[pos] ^= 1 << (pos % 8);
    fs::write(path, bytes).unwrap();
}

/// One bit flipped in a segment log: which record it hit, and how the store reopened.
struct LogFlip {
    base: u64,
    /// The offset after the flipped segment's last record.
    end: u64,
    hit: u64,
    /// The hit is the topic's very last record, which recovery cannot tell from a torn write.
    last_record: bool,
    /// It was cut off, its offset given up: the index that listed it was lost too. With the
    /// index kept, the offset it lists stays, as lost.
    tail: bool,
    case: String,
    store: TopicStore,
    recovery: Recovery,
}

impl LogFlip {
    /// Reads the whole store with `max_bytes` per read and checks that exactly the hit record
    /// is missing (reported corrupt, or cut off as the torn tail) and all others are intact.
    fn assert_only_the_hit_record_is_lost(&mut self, max_bytes: usize) {
        let (hit, tail, case) = (self.hit, self.tail, &self.case);
        let (good, corrupt) = read_all(&mut self.store, max_bytes);
        assert_eq!(corrupt, if tail { vec![] } else { vec![hit] }, "{case}");
        let want: Vec<_> = expected(0..self.recovery.next)
            .into_iter()
            .filter(|(o, _)| tail || *o != hit)
            .collect();
        assert_eq!(good, want, "{case}");
    }
}

/// For a sealed segment in the middle and for the last one, flips one bit at each byte of its
/// log in turn (on fresh copies of the files), loses its index too if `lose_index`, reopens the
/// store and hands the result to `check`.
fn each_log_flip(dir: &Path, n: u64, lose_index: bool, mut check: impl FnMut(LogFlip)) {
    let bases = build(dir, n);
    let snapshot = Snapshot::take(dir);
    let last = *bases.last().unwrap();
    for &base in &[bases[1], last] {
        snapshot.restore();
        let path = log_file(dir, base);
        let log = fs::read(&path).unwrap();
        let starts = record_starts(&log);
        let end = bases.iter().find(|&&b| b > base).copied().unwrap_or(n);
        for pos in 0..log.len() {
            snapshot.restore_segment(dir, base);
            flip(&path, pos);
            if lose_index {
                fs::remove_file(idx_file(dir, base)).unwrap();
            }
            let hit = record_at(&starts, base, pos);
            let (store, recovery) = TopicStore::open(dir, TOPIC, CONFIG).unwrap();
            check(LogFlip {
                base,
                end,
                hit,
                last_record: base == last && hit == n - 1,
                tail: base == last && hit == n - 1 && lose_index,
                case: format!("segment {base}, byte {pos}, record {hit}"),
                store,
                recovery,
            });
        }
    }
}

#[test]
fn a_bit_flip_anywhere_in_a_log_costs_exactly_its_record() {
    let tmp = TempDir::new("flip-log");
    let n = 40;
    each_log_flip(tmp.path(), n, false, |mut flip| {
        let case = &flip.case;
        // Every offset stays, even a damaged final record's, which cannot be told from a torn
        // write: its bytes are cut, and its offset, which the index lists, is kept as lost.
        assert_eq!(flip.recovery.next, n, "{case}");
        if flip.last_record {
            assert!(flip.recovery.truncated_bytes > 0, "{case}");
            assert_eq!(flip.recovery.lost, vec![n - 1..n], "{case}");
        } else {
            assert!(flip.recovery.lost.is_empty(), "{case}");
        }
        for max_bytes in [0, usize::MAX] {
            flip.assert_only_the_hit_record_is_lost(max_bytes);
        }
    });
}

#[test]
fn a_bit_flip_in_an_index_never_serves_a_wrong_record() {
    let tmp = TempDir::new("flip-idx");
    let n = 40;
    let bases = build(tmp.path(), n);
    let snapshot = Snapshot::take(tmp.path());
    for &base in &[bases[0], *bases.last().unwrap()] {
        snapshot.restore();
        let path = idx_file(tmp.path(), base);
        let len = fs::metadata(&path).unwrap().len() as usize;
        for pos in 0..len {
            snapshot.restore_segment(tmp.path(), base);
            flip(&path, pos);
            let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, CONFIG).unwrap();
            assert_eq!(recovery.next, n);
            let case = format!("segment {base}, index byte {pos}");
            for max_bytes in [0, 500] {
                // A damaged entry never serves a wrong record, and the log says where its
                // record is: every record is read, from whichever offset a read starts.
                let (good, corrupt) = read_all(&mut store, max_bytes);
                assert!(corrupt.is_empty(), "{case}: {corrupt:?}");
                assert_eq!(good, expected(0..n), "{case}");
                for start in [base + (pos / 16) as u64, base] {
                    let mut out = Vec::new();
                    let read = store.read(start, max_bytes, &mut out).unwrap();
                    assert_eq!(read.first, start, "{case}");
                    assert_eq!(frames(&out)[0], (start, payload(start)), "{case}");
                }
            }
        }
    }
}

#[test]
fn with_the_index_lost_too_a_damaged_record_is_found_and_skipped() {
    let tmp = TempDir::new("flip-reindex");
    let n = 40;
    each_log_flip(tmp.path(), n, true, |mut flip| {
        let (base, end, hit, case) = (flip.base, flip.end, flip.hit, &flip.case);
        if flip.tail {
            assert_eq!(flip.recovery.next, n - 1, "{case}");
            assert!(flip.recovery.corrupt.is_empty(), "{case}");
        } else {
            assert_eq!(flip.recovery.next, n, "{case}");
            assert_eq!(
                flip.recovery.corrupt,
                vec![std::ops::Range {
                    start: hit,
                    end: hit + 1
                }],
                "{case}"
            );
        }
        let reindexed = end - base - u64::from(flip.tail);
        assert_eq!(flip.recovery.reindexed, reindexed, "{case}");
        flip.assert_only_the_hit_record_is_lost(400);
    });
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let tmp = TempDir::new("garbage");
    let n = 30;
    let bases = build(tmp.path(), n);
    let last = *bases.last().unwrap();
    let path = log_file(tmp.path(), last);
    let mut log = fs::read(&path).unwrap();
    let len = log.len();
    // As a filesystem may show after a power loss: the size grew, the data did not arrive.
    log.extend_from_slice(&[0; 700]);
    fs::write(&path, &log).unwrap();
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, CONFIG).unwrap();
    assert_eq!(recovery.next, n);
    assert_eq!(recovery.truncated_bytes, 700);
    assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
    assert_eq!(read_all(&mut store, 1000), (expected(0..n), vec![]));
}

/// A sync makes only the newest segment's log durable, not its index: after a power loss the
/// index may have its size and none of its data. Recovery rebuilds it from the log.
#[test]
fn an_index_of_zeros_after_a_power_loss_is_rebuilt_from_its_log() {
    let tmp = TempDir::new("zero-idx");
    let n = 30;
    let bases = build(tmp.path(), n);
    let last = *bases.last().unwrap();
    let path = idx_file(tmp.path(), last);
    let len = fs::metadata(&path).unwrap().len();
    fs::write(&path, vec![0; len as usize]).unwrap();
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, CONFIG).unwrap();
    assert_eq!((recovery.first, recovery.next), (0, n));
    assert_eq!(recovery.reindexed, len / 16);
    assert!(recovery.lost.is_empty(), "{:?}", recovery.lost);
    assert_eq!(read_all(&mut store, 1000), (expected(0..n), vec![]));
}

#[test]
fn an_index_pointing_past_its_log_keeps_its_offsets_as_lost() {
    let tmp = TempDir::new("idx-ahead");
    let n = 30;
    let bases = build(tmp.path(), n);
    let last = *bases.last().unwrap();
    // The index reached the disk, the last records of the log did not.
    let log = fs::read(log_file(tmp.path(), last)).unwrap();
    let starts = record_starts(&log);
    let keep = starts[starts.len() - 3];
    let f = fs::OpenOptions::new()
        .write(true)
        .open(log_file(tmp.path(), last))
        .unwrap();
    f.set_len(keep as u64).unwrap();
    drop(f);
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, CONFIG).unwrap();
    // Offsets never go back: the three are lost, reported, and never handed out again.
    assert_eq!(recovery.next, n);
    assert_eq!(recovery.lost, vec![n - 3..n]);
    assert_eq!(
        read_all(&mut store, 1000),
        (expected(0..n - 3), (n - 3..n).collect())
    );
    assert_eq!(
        fs::metadata(idx_file(tmp.path(), last)).unwrap().len(),
        16 * (n - last)
    );
}

#[test]
fn a_lost_segment_in_the_middle_is_reported_not_renumbered() {
    let tmp = TempDir::new("lost-segment");
    let n = 40;
    let bases = build(tmp.path(), n);
    fs::remove_file(log_file(tmp.path(), bases[1])).unwrap();
    fs::remove_file(idx_file(tmp.path(), bases[1])).unwrap();
    let (mut store, recovery) = TopicStore::open(tmp.path(), TOPIC, CONFIG).unwrap();
    assert_eq!((recovery.first, recovery.next), (0, n));
    let lost = bases[1]..bases[2];
    assert_eq!(recovery.corrupt, vec![lost.clone()]);
    let (good, corrupt) = read_all(&mut store, 300);
    assert_eq!(corrupt, lost.clone().collect::<Vec<_>>());
    let want: Vec<_> = expected(0..n)
        .into_iter()
        .filter(|(o, _)| !lost.contains(o))
        .collect();
    assert_eq!(good, want);
}
