//! A commit that fails for want of space, on real files: the topic goes back to its last
//! commit (deleting the segment the failed batch started), refuses only the producers of what
//! it could not write, and takes publishes again once there is room, without a restart.
//!
//! The file size limit (RLIMIT_FSIZE) stands in for a full disk: a write past it fails with
//! EFBIG after writing what fits, as a write to a full disk fails with ENOSPC. This file holds a
//! single test because the limit is the whole test process's.

mod store_util;
mod support;

use std::time::Instant;

use mbus_broker::BrokerConfig;
use mbus_broker::engine::memlog::Retention;
use mbus_broker::engine::{Core, CoreConfig};
use mbus_broker::store::{FileStorage, Fsync, StoreConfig};
use mbus_proto::{ErrorCode, Frame, Start};
use rlimit::Resource;
use store_util::TempDir;
use support::{Harness, Owned};

const SEGMENT: u64 = 4096;

fn harness(dir: &TempDir) -> Harness {
    let config = CoreConfig {
        retention: Retention {
            max_bytes: 1 << 20,
            max_messages: u64::MAX,
            segment_bytes: 1024,
        },
        ..BrokerConfig::default().core()
    };
    let storage = FileStorage::new(
        dir.path().to_owned(),
        Fsync::Always,
        StoreConfig {
            segment_bytes: SEGMENT,
            ..StoreConfig::default()
        },
        16,
    );
    Harness {
        core: Core::start(config, Some(Box::new(storage)), Instant::now()).unwrap(),
    }
}

fn everything(h: &mut Harness) -> Vec<(u64, Vec<u8>)> {
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "t",
            start: Start::Earliest,
        },
    );
    Harness::deliveries(&h.output(c))
        .into_iter()
        .map(|(_, offset, data)| (offset, data))
        .collect()
}

fn segment_files(dir: &TempDir) -> usize {
    std::fs::read_dir(dir.path().join("topics").join("t"))
        .unwrap()
        .count()
}

#[test]
fn a_commit_past_the_space_left_goes_back_to_the_last_commit_and_the_topic_resumes() {
    // SAFETY: ignoring a signal has no preconditions; a write past the limit then fails instead
    // of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = TempDir::new("full-disk");
    let mut h = harness(&dir);
    let msg = |i: u32| {
        let mut data = vec![b'.'; 100];
        data[..4].copy_from_slice(&i.to_be_bytes());
        data
    };
    let p1 = h.producer();
    for i in 0..10 {
        h.publish(p1, "t", &msg(i));
    }
    h.core.commit();
    assert_eq!(h.output(p1), vec![Owned::Confirm(10)]);
    assert_eq!(segment_files(&dir), 2);

    // Room for the first segment to be filled and sealed, not for the record after it, which
    // is larger than a segment and so starts one of its own.
    let (soft, hard) = Resource::FSIZE.get().unwrap();
    Resource::FSIZE.set(SEGMENT + 256, hard).unwrap();
    for i in 10..40 {
        h.publish(p1, "t", &msg(i));
    }
    h.publish(p1, "t", &[b'L'; 6000]);
    let other = h.producer();
    h.publish(other, "elsewhere", b"small");
    h.core.commit();
    let out = h.output(p1);
    assert!(
        matches!(out.last(), Some(Owned::Error { code: ErrorCode::Internal, reason }) if reason.contains("File too large")),
        "{out:?}"
    );
    assert_eq!(
        h.output(other),
        vec![Owned::Confirm(1)],
        "what fitted is confirmed"
    );
    assert_eq!(
        segment_files(&dir),
        2,
        "the segment the failed batch started is deleted"
    );
    assert_eq!(
        everything(&mut h).len(),
        10,
        "nothing of the failed commit is shown"
    );

    // Room again: the topic goes on from offset 10, and rolls its segment as it fills.
    Resource::FSIZE.set(soft, hard).unwrap();
    let p2 = h.producer();
    for i in 100..170 {
        h.publish(p2, "t", &msg(i));
    }
    h.core.commit();
    assert_eq!(h.output(p2), vec![Owned::Confirm(70)]);
    let expected: Vec<(u64, Vec<u8>)> = (0..10)
        .chain(100..170)
        .enumerate()
        .map(|(offset, i)| (offset as u64, msg(i)))
        .collect();
    assert_eq!(everything(&mut h), expected);

    // The files hold exactly that: a restart recovers it, with nothing cut or damaged.
    drop(h);
    let mut h = harness(&dir);
    assert_eq!(everything(&mut h), expected);
}
