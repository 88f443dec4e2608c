//! Helpers shared by the store's tests: temporary data directories, frames, and reading a whole
//! topic back while collecting the offsets reported corrupt.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mbus_broker::store::{StoreConfig, StoreError, TopicStore};
use mbus_proto::{DEFAULT_MAX_FRAME, Frame, decode};

/// A directory under the system's temporary directory, unique to this test, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "mbus-store-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const TOPIC: &str = "orders";

/// A config with small segments and buffers, so that a few hundred records exercise rolling and
/// buffer flushes.
pub fn small(segment_bytes: u64) -> StoreConfig {
    StoreConfig {
        segment_bytes,
        retention_bytes: u64::MAX,
        retention_age: None,
        write_buffer: 512,
    }
}

/// The payload of offset `i`: 1 to 300 bytes, different for every offset.
pub fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 300 + 1) as usize;
    (0..len).map(|j| (i as usize * 7 + j) as u8).collect()
}

/// The time the records of these tests are stored at: a record whose first offset is `o` at
/// `TIME + o`.
pub const TIME: u64 = 1_796_205_600_000;

/// The encoded `Deliver` frame of `offset` of [`TOPIC`], stored at `TIME + offset`.
pub fn frame(offset: u64, data: &[u8]) -> Vec<u8> {
    Frame::Deliver {
        topic: TOPIC,
        offset,
        time: TIME + offset,
        batch: mbus_proto::Batch::one(data),
    }
    .to_bytes()
}

/// The encoded `Deliver` frame of a batch of `data` from `offset` on, one record.
pub fn batch_frame(offset: u64, data: &[Vec<u8>]) -> Vec<u8> {
    let mut batch = mbus_proto::BatchBuilder::new();
    for (i, d) in data.iter().enumerate() {
        let headers: &[(&str, &[u8])] = if i % 2 == 1 { &[("k", b"v")] } else { &[] };
        batch.push(d, headers).unwrap();
    }
    Frame::Deliver {
        topic: TOPIC,
        offset,
        time: TIME + offset,
        batch: batch.batch().unwrap(),
    }
    .to_bytes()
}

/// Appends `n` offsets with [`payload`] after what the store holds, in batches of 1 to 5
/// messages (by the offset they start at).
pub fn fill_batches(store: &mut TopicStore, n: u64) {
    let end = store.next() + n;
    while store.next() < end {
        let at = store.next();
        let count = (at % 5 + 1).min(end - at);
        let data: Vec<Vec<u8>> = (at..at + count).map(payload).collect();
        store.append(at, &batch_frame(at, &data)).unwrap();
    }
}

pub fn open(dir: &Path, config: StoreConfig) -> TopicStore {
    TopicStore::open(dir, TOPIC, config).unwrap().0
}

/// Appends `n` records with [`payload`] after what the store holds.
pub fn fill(store: &mut TopicStore, n: u64) {
    for _ in 0..n {
        let offset = store.next();
        store
            .append(offset, &frame(offset, &payload(offset)))
            .unwrap();
    }
}

/// Splits `bytes` into `Deliver` frames and returns the offsets and payloads of their messages.
pub fn frames(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (frame, n) = decode(rest, DEFAULT_MAX_FRAME * 8)
            .unwrap()
            .expect("whole frames");
        match frame {
            Frame::Deliver {
                topic,
                offset,
                time,
                batch,
            } => {
                assert_eq!(topic, TOPIC);
                // A batch is stored at the time of its first offset, every message at delta 0.
                assert_eq!(time, TIME + offset);
                for (m, offset) in batch.iter().zip(offset..) {
                    assert_eq!(m.delta, 0);
                    out.push((offset, m.data.to_vec()));
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        rest = &rest[n..];
    }
    out
}

/// Reads everything from `first()` to `next()` in reads of `max_bytes`, going on after each
/// corrupt offset as a broker would. Returns the frames read and the offsets reported corrupt.
pub fn read_all(store: &mut TopicStore, max_bytes: usize) -> (Vec<(u64, Vec<u8>)>, Vec<u64>) {
    let mut good = Vec::new();
    let mut corrupt = Vec::new();
    let mut at = store.first();
    while at < store.next() {
        let mut out = Vec::new();
        match store.read(at, max_bytes, &mut out) {
            Ok(read) => {
                assert!(read.count() >= 1, "no progress at {at}");
                // The first record may be a batch that starts before `at`: a reader drops
                // what it holds before.
                let got: Vec<_> = frames(&out).into_iter().filter(|(o, _)| *o >= at).collect();
                assert_eq!(got.len() as u64, read.count());
                assert_eq!(out.len(), read.bytes);
                assert_eq!(got[0].0, at);
                good.extend(got);
                at = read.next;
            }
            Err(StoreError::Corrupt {
                topic,
                offset,
                until,
            }) => {
                assert_eq!(topic, TOPIC);
                assert_eq!(offset, at);
                assert!(until > offset && until <= store.next(), "{offset}..{until}");
                assert!(out.is_empty(), "a failed read appends nothing");
                corrupt.extend(offset..until);
                at = until;
            }
            Err(e) => panic!("read at {at}: {e}"),
        }
    }
    (good, corrupt)
}

/// The payloads expected at `range`.
pub fn expected(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, payload(i))).collect()
}

/// The topic directory's segment base offsets, from its `.log` files.
pub fn segment_bases(data_dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(data_dir.join("topics").join(TOPIC))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|b| b.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    bases
}

pub fn log_file(data_dir: &Path, base: u64) -> PathBuf {
    data_dir
        .join("topics")
        .join(TOPIC)
        .join(format!("{base:020}.log"))
}

pub fn idx_file(data_dir: &Path, base: u64) -> PathBuf {
    data_dir
        .join("topics")
        .join(TOPIC)
        .join(format!("{base:020}.idx"))
}

/// Record start positions in a segment log, found by walking its length prefixes.
pub fn record_starts(log: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut p = 0;
    while p < log.len() {
        starts.push(p);
        let len = u32::from_be_bytes(log[p + 4..p + 8].try_into().unwrap()) as usize;
        p += 8 + len;
    }
    assert_eq!(p, log.len());
    starts
}

/// The bytes of the example STORAGE.md marks with `<!-- marker -->`: the hex of the first code
/// block after the marker.
pub fn storage_example(marker: &str) -> Vec<u8> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../STORAGE.md")).unwrap();
    let block = doc
        .split(&format!("<!-- {marker} -->"))
        .nth(1)
        .unwrap_or_else(|| panic!("STORAGE.md marks no {marker}"));
    block
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}
