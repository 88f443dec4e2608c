//! The core with a data directory, driven in memory: confirms and deliveries wait for the group
//! commit, a new core recovers what the old one stored, and consumers behind the memory cache are
//! served from disk.

mod support;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use mbus_broker::BrokerConfig;
use mbus_broker::core::CoreConfig;
use mbus_broker::core::durable::{Fsync, Storage};
use mbus_broker::core::log::Retention;
use mbus_broker::store::StoreConfig;
use mbus_proto::{Frame, Start};
use support::{Harness, Owned};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        TempDir(std::env::temp_dir().join(format!("mbus-{name}-{}-{nanos}", std::process::id())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn config(dir: &TempDir, cache_bytes: usize) -> CoreConfig {
    CoreConfig {
        retention: Retention {
            max_bytes: cache_bytes,
            max_messages: u64::MAX,
            segment_bytes: 1024,
        },
        storage: Some(Storage {
            data_dir: dir.0.clone(),
            fsync: Fsync::Always,
            store: StoreConfig {
                segment_bytes: 4096,
                ..StoreConfig::default()
            },
        }),
        ..BrokerConfig::default().core()
    }
}

fn durable_harness(dir: &TempDir, cache_bytes: usize) -> Harness {
    let mut h = Harness::with(config(dir, cache_bytes));
    h.core.recover().unwrap();
    h
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
