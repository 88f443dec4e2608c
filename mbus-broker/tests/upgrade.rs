//! A data directory of format 1, written by the broker before format 2 (`fixtures/v1-data-dir`),
//! upgraded at start and served whole: every message of every topic, in order, intact, with a
//! time; and an upgrade that a crash interrupted at each of its steps is finished at the next
//! start with nothing lost.

mod store_util;
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mbus_broker::engine::storage::Storage;
use mbus_broker::store::{FileStorage, Fsync, StoreConfig};
use mbus_broker::{Broker, BrokerConfig};
use mbus_proto::{Frame, Role, Start};
use store_util::TempDir;
use support::Owned;
use support::net::Client;

/// The fixture's topics and message counts.
const TOPICS: [(&str, u64); 3] = [("orders", 40), ("audit.log", 7), ("idle", 0)];

/// The payload the fixture holds at offset `i` of `topic` (as the program that wrote it with the
/// format 1 store made them: text, empty, binary, 300-odd bytes, JSON).
fn payload(topic: &str, i: u64) -> Vec<u8> {
    match i % 5 {
        0 => format!("{topic} message {i}").into_bytes(),
        1 => Vec::new(),
        2 => (0..=255u8).map(|b| b.wrapping_mul(i as u8 + 1)).collect(),
        3 => vec![b'x'; 300 + i as usize],
        _ => format!("{{\"n\":{i},\"t\":\"{topic}\"}}").into_bytes(),
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-data-dir")
}

/// A copy of the fixture to upgrade.
fn copy_fixture(name: &str) -> TempDir {
    let tmp = TempDir::new(name);
    copy_tree(&fixture(), tmp.path());
    tmp
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn storage(dir: &Path) -> FileStorage {
    FileStorage::new(dir.to_owned(), Fsync::Always, StoreConfig::default(), 64)
}

/// Every message of `topic` read from `storage`, with its time.
fn stored(storage: &mut FileStorage, topic: &str) -> Vec<(u64, u64, Vec<u8>)> {
    let mut store = storage.open(topic).unwrap();
    let mut out = Vec::new();
    let mut at = store.first();
    while at < store.next() {
        let mut buf = Vec::new();
        let read = store.read(at, 1 << 20, &mut buf).unwrap();
        let mut rest = &buf[..];
        while let Some((frame, n)) = mbus_proto::decode(rest, u32::MAX).unwrap() {
            let Frame::Deliver {
                offset,
                time,
                batch,
                ..
            } = frame
            else {
                panic!("{frame:?}");
            };
            out.push((offset, time, batch.single().unwrap().to_vec()));
            rest = &rest[n..];
        }
        at = read.next;
    }
    out
}

/// Checks that `dir` holds format 2 with every message of the fixture.
fn assert_upgraded(dir: &Path) {
    assert_eq!(fs::read_to_string(dir.join("VERSION")).unwrap(), "2\n");
    assert!(!dir.join("topics.v1").exists() && !dir.join("topics.v2").exists());
    let mut storage = storage(dir);
    let mut names = storage.topics().unwrap();
    names.sort();
    assert_eq!(names, ["audit.log", "idle", "orders"]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (topic, n) in TOPICS {
        let messages = stored(&mut storage, topic);
        let offsets: Vec<u64> = messages.iter().map(|m| m.0).collect();
        assert_eq!(offsets, (0..n).collect::<Vec<_>>(), "{topic}");
        for (offset, time, data) in &messages {
            assert_eq!(*data, payload(topic, *offset), "{topic} {offset}");
            assert!(*time > 0 && *time <= now, "{topic} {offset}: time {time}");
        }
        assert!(
            messages.windows(2).all(|w| w[0].1 <= w[1].1),
            "{topic}: times go back"
        );
    }
}

#[test]
fn the_fixture_is_format_1() {
    assert_eq!(
        fs::read_to_string(fixture().join("VERSION")).unwrap(),
        "1\n"
    );
    let orders = fs::read_dir(fixture().join("topics/orders"))
        .unwrap()
        .count();
    assert_eq!(
        orders, 8,
        "four segments of orders, a log and an index each"
    );
}

#[test]
fn a_format_1_directory_is_upgraded_at_start_with_every_message_intact() {
    let tmp = copy_fixture("upgrade");
    let report = mbus_broker::store::upgrade(tmp.path()).unwrap().unwrap();
    assert_eq!((report.topics, report.records, report.corrupt), (3, 47, 0));
    assert_upgraded(tmp.path());
    // Upgraded once: a second start finds format 2 and leaves it alone.
    assert_eq!(mbus_broker::store::upgrade(tmp.path()).unwrap(), None);
    assert_upgraded(tmp.path());
}

#[test]
fn the_broker_serves_an_upgraded_directory_and_goes_on_after_it() {
    let tmp = copy_fixture("upgrade-serve");
    let mut config = BrokerConfig::ephemeral();
    config.data_dir = Some(tmp.path().to_owned());
    let broker = Broker::spawn(config).unwrap();
    let mut p = Client::open(broker.producer_addr(), Role::Producer);
    p.send(Frame::publish("orders", b"after the upgrade"));
    assert_eq!(p.recv(), Some(Owned::Confirm(1)));
    let mut c = Client::open(broker.consumer_addr(), Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "orders",
        start: Start::Earliest,
    });
    assert_eq!(
        c.recv(),
        Some(Owned::Subscribed {
            topic: "orders".into(),
            offset: 0
        })
    );
    for offset in 0..41 {
        let want = if offset < 40 {
            payload("orders", offset)
        } else {
            b"after the upgrade".to_vec()
        };
        assert_eq!(
            c.recv(),
            Some(Owned::Deliver {
                topic: "orders".into(),
                offset,
                data: want
            })
        );
    }
    drop(broker);
}

/// The upgrade's steps, each a state a crash can leave: `topics.v2` partly written; written and
/// `topics` renamed to `topics.v1`; `topics.v2` renamed to `topics` with the marker still 1; the
/// marker written and `topics.v1` still there.
#[test]
fn an_upgrade_interrupted_at_any_step_is_finished_at_the_next_start() {
    for step in 0..4 {
        let tmp = copy_fixture(&format!("upgrade-crash-{step}"));
        let dir = tmp.path();
        let done = TempDir::new(&format!("upgrade-done-{step}"));
        copy_tree(&fixture(), done.path());
        mbus_broker::store::upgrade(done.path()).unwrap();
        let v2 = done.path().join("topics");
        match step {
            0 => {
                // Half of the new tree: one topic, and a segment file cut short.
                copy_tree(&v2.join("orders"), &dir.join("topics.v2/orders"));
                let log = dir.join("topics.v2/orders/00000000000000000013.log");
                let len = fs::metadata(&log).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
            1 => {
                fs::rename(dir.join("topics"), dir.join("topics.v1")).unwrap();
                copy_tree(&v2, &dir.join("topics.v2"));
            }
            2 => {
                fs::rename(dir.join("topics"), dir.join("topics.v1")).unwrap();
                copy_tree(&v2, &dir.join("topics"));
            }
            _ => {
                fs::rename(dir.join("topics"), dir.join("topics.v1")).unwrap();
                copy_tree(&v2, &dir.join("topics"));
                fs::write(dir.join("VERSION"), "2\n").unwrap();
            }
        }
        mbus_broker::store::upgrade(dir).unwrap();
        assert_upgraded(dir);
    }
}

#[test]
fn a_damaged_format_1_record_stays_a_corrupt_offset_and_the_rest_is_served() {
    let tmp = copy_fixture("upgrade-damage");
    // Flip a byte inside the payload of offset 15 (the third record of segment 13).
    let log = tmp.path().join("topics/orders/00000000000000000013.log");
    let idx = fs::read(tmp.path().join("topics/orders/00000000000000000013.idx")).unwrap();
    let pos = u64::from_le_bytes(idx[16..24].try_into().unwrap()) as usize;
    let mut bytes = fs::read(&log).unwrap();
    bytes[pos + 30] ^= 0x40;
    fs::write(&log, bytes).unwrap();
    let report = mbus_broker::store::upgrade(tmp.path()).unwrap().unwrap();
    assert_eq!((report.records, report.corrupt), (46, 1));
    let mut storage = storage(tmp.path());
    storage.topics().unwrap();
    let mut store = storage.open("orders").unwrap();
    let mut out = Vec::new();
    match store.read(15, 1 << 20, &mut out) {
        Err(mbus_broker::store::StoreError::Corrupt { offset, until, .. }) => {
            assert_eq!((offset, until), (15, 16))
        }
        other => panic!("{other:?}"),
    }
    let read = store.read(16, 1 << 20, &mut out).unwrap();
    assert_eq!(read.first, 16);
}

#[test]
fn what_is_not_a_topic_is_carried_over_and_a_topic_that_cannot_be_read_stops_the_upgrade() {
    let tmp = copy_fixture("upgrade-others");
    let topics = tmp.path().join("topics");
    fs::write(topics.join("READ ME.txt"), "notes of the operator").unwrap();
    fs::create_dir(topics.join("not a topic")).unwrap();
    fs::write(topics.join("not a topic/kept"), "x").unwrap();
    mbus_broker::store::upgrade(tmp.path()).unwrap().unwrap();
    assert_upgraded(tmp.path());
    assert_eq!(
        fs::read_to_string(topics.join("READ ME.txt")).unwrap(),
        "notes of the operator"
    );
    assert_eq!(
        fs::read_to_string(topics.join("not a topic/kept")).unwrap(),
        "x"
    );

    // A segment that cannot be read: the upgrade stops with an error and leaves format 1 as it
    // was, every byte, for the operator to repair.
    let tmp = copy_fixture("upgrade-unreadable");
    let bad = tmp.path().join("topics/audit.log/00000000000000000007.log");
    fs::create_dir(&bad).unwrap();
    assert!(mbus_broker::store::upgrade(tmp.path()).is_err());
    assert_eq!(
        fs::read_to_string(tmp.path().join("VERSION")).unwrap(),
        "1\n"
    );
    for (topic, _) in TOPICS {
        let dir = format!("topics/{topic}");
        for entry in fs::read_dir(fixture().join(&dir)).unwrap() {
            let name = entry.unwrap().file_name();
            let was = fs::read(fixture().join(&dir).join(&name)).unwrap();
            assert_eq!(fs::read(tmp.path().join(&dir).join(&name)).unwrap(), was);
        }
    }
    // Once it is repaired, the next start upgrades it.
    fs::remove_dir(&bad).unwrap();
    mbus_broker::store::upgrade(tmp.path()).unwrap().unwrap();
    assert_upgraded(tmp.path());
}
