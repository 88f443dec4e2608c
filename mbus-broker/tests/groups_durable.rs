//! Durable consumer groups: what a group saved at a commit is what a restart finds, on the file
//! store and through crashes of the in-memory one: nothing acked is given out again, everything
//! else is, and attempt counts carry over.

mod store_util;
mod support;

use std::time::{Duration, Instant};

use mbus_broker::BrokerConfig;
use mbus_broker::engine::{ConnId, Core};
use mbus_broker::store::memory::Crash;
use mbus_broker::store::{FileStorage, Fsync, MemoryStorage, StoreConfig};
use mbus_proto::{AckAction, AckRanges, Frame, GroupOptions, Start};
use store_util::TempDir;
use support::Harness;
use support::group::take;

fn file_core(dir: &TempDir, fsync: Fsync, now: Instant) -> Harness {
    let storage = FileStorage::new(dir.path().to_owned(), fsync, StoreConfig::default(), 64);
    let core = Core::start(BrokerConfig::default().core(), Some(Box::new(storage)), now);
    Harness {
        core: core.unwrap(),
    }
}

fn memory_core(disk: &MemoryStorage, now: Instant) -> Harness {
    let core = Core::start(
        BrokerConfig::default().core(),
        Some(Box::new(disk.clone())),
        now,
    );
    Harness {
        core: core.unwrap(),
    }
}

fn publish(h: &mut Harness, n: u32) {
    let p = h.producer();
    for i in 0..n {
        h.publish(p, "jobs", format!("job {i}").as_bytes());
    }
    h.core.commit();
    h.output(p);
}

fn join(h: &mut Harness, credit: u32, max_deliver: u32) -> ConnId {
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Join {
            topic: "jobs",
            group: "workers",
            start: Start::Earliest,
            credit,
            options: GroupOptions {
                max_deliver,
                ..GroupOptions::default()
            },
        },
    );
    c
}

fn act(h: &mut Harness, c: ConnId, action: AckAction, offsets: impl IntoIterator<Item = u64>) {
    let mut ranges = Vec::new();
    for o in offsets {
        AckRanges::push(&mut ranges, o);
    }
    h.core.receive(
        c,
        Frame::Ack {
            topic: "jobs",
            group: "workers",
            action,
            delay: 0,
            ranges: AckRanges::new(&ranges).unwrap(),
        },
    );
}

#[test]
fn a_restart_gives_out_again_what_was_not_acked_and_nothing_that_was() {
    let dir = TempDir::new("groups-restart");
    let now = Instant::now();
    let mut h = file_core(&dir, Fsync::Always, now);
    publish(&mut h, 10);
    let c = join(&mut h, 10, 0);
    assert_eq!(take(&mut h.core, c).offsets(), (0..10).collect::<Vec<_>>());
    act(&mut h, c, AckAction::Ack, [0, 1, 2, 5, 7]);
    h.core.commit();
    // Acked after the last commit: not durable, so given out again.
    act(&mut h, c, AckAction::Ack, [3]);
    drop(h);
    assert!(
        dir.path().join("topics/jobs/groups/workers").is_file(),
        "the group's file is in its topic's directory"
    );

    let mut h = file_core(&dir, Fsync::Always, now);
    let c = join(&mut h, 10, 0);
    let got = take(&mut h.core, c);
    assert_eq!(
        got.messages.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        vec![(3, 2), (4, 2), (6, 2), (8, 2), (9, 2)]
    );
    // New messages go on after what the group had given out.
    publish(&mut h, 1);
    act(&mut h, c, AckAction::Ack, [3, 4]);
    assert_eq!(take(&mut h.core, c).offsets(), vec![10]);
}

#[test]
fn attempts_survive_a_restart_and_the_last_one_dead_letters() {
    let dir = TempDir::new("groups-attempts");
    let now = Instant::now();
    let mut h = file_core(&dir, Fsync::Always, now);
    publish(&mut h, 2);
    let c = join(&mut h, 10, 2);
    assert_eq!(take(&mut h.core, c).offsets(), vec![0, 1]);
    act(&mut h, c, AckAction::Nak, [0, 1]);
    assert_eq!(take(&mut h.core, c).messages[0].1, 2, "the second delivery");
    h.core.commit();
    drop(h);

    // Both were delivered twice, the most they may be: the restart dead-letters them.
    let mut h = file_core(&dir, Fsync::Always, now);
    h.core.commit();
    let c = join(&mut h, 10, 2);
    assert!(take(&mut h.core, c).messages.is_empty());
    assert_eq!(h.core.topic_range("jobs.dlq"), Some(0..2));
}

#[test]
fn a_torn_last_record_leaves_the_one_before() {
    let dir = TempDir::new("groups-torn");
    let now = Instant::now();
    let mut h = file_core(&dir, Fsync::Always, now);
    publish(&mut h, 4);
    let c = join(&mut h, 10, 0);
    take(&mut h.core, c);
    act(&mut h, c, AckAction::Ack, [0, 1]);
    h.core.commit();
    act(&mut h, c, AckAction::Ack, [2, 3]);
    h.core.commit();
    drop(h);
    let file = dir.path().join("topics/jobs/groups/workers");
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len - 3).unwrap();

    let mut h = file_core(&dir, Fsync::Always, now);
    let c = join(&mut h, 10, 0);
    assert_eq!(take(&mut h.core, c).offsets(), vec![2, 3]);
}

#[test]
fn a_process_crash_keeps_what_was_committed_and_power_loss_what_was_synced() {
    let now = Instant::now();
    let disk = MemoryStorage::new(Fsync::Batch, u64::MAX);
    let mut h = memory_core(&disk, now);
    publish(&mut h, 6);
    let c = join(&mut h, 10, 0);
    take(&mut h.core, c);
    act(&mut h, c, AckAction::Ack, [0, 1]);
    h.core.commit();
    // The batch sync makes it survive power loss.
    h.core.handle_timeout(now + Duration::from_secs(1));
    act(&mut h, c, AckAction::Ack, [2, 3]);
    h.core.commit();
    drop(h);
    disk.crash(Crash::Process);
    let mut h = memory_core(&disk, now);
    let c = join(&mut h, 10, 0);
    assert_eq!(take(&mut h.core, c).offsets(), vec![4, 5]);
    drop(h);
    disk.crash(Crash::PowerLoss);
    let mut h = memory_core(&disk, now);
    let c = join(&mut h, 10, 0);
    assert_eq!(take(&mut h.core, c).offsets(), vec![2, 3, 4, 5]);
}

#[test]
fn a_group_file_that_cannot_be_read_costs_that_group_only() {
    let dir = TempDir::new("groups-garbage");
    let now = Instant::now();
    let mut h = file_core(&dir, Fsync::Always, now);
    publish(&mut h, 3);
    let c = join(&mut h, 10, 0);
    take(&mut h.core, c);
    act(&mut h, c, AckAction::Ack, [0, 1, 2]);
    h.core.commit();
    drop(h);
    std::fs::write(dir.path().join("topics/jobs/groups/workers"), b"garbage").unwrap();
    std::fs::write(dir.path().join("topics/jobs/groups/bad name"), b"x").unwrap();
    let mut h = file_core(&dir, Fsync::Always, now);
    // The topic serves, from disk; the group starts anew where its next member asks.
    let c = join(&mut h, 10, 0);
    assert_eq!(take(&mut h.core, c).offsets(), vec![0, 1, 2]);
}

#[test]
fn storage_md_quotes_a_group_record_as_the_store_writes_it() {
    let dir = TempDir::new("groups-doc");
    let mut h = file_core(&dir, Fsync::Always, Instant::now());
    publish(&mut h, 6);
    let c = join(&mut h, 10, 0);
    take(&mut h.core, c);
    act(&mut h, c, AckAction::Ack, [0, 1, 2, 4]);
    h.core.commit();
    drop(h);
    let written = std::fs::read(dir.path().join("topics/jobs/groups/workers")).unwrap();
    let quoted = store_util::storage_example("group-example");
    let shown: Vec<String> = written.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(quoted, written, "the store wrote {}", shown.join(" "));
}

#[test]
fn a_save_that_fails_is_made_again_at_the_next_commit() {
    let dir = TempDir::new("groups-save-fails");
    let now = Instant::now();
    let mut h = file_core(&dir, Fsync::Always, now);
    publish(&mut h, 3);
    let c = join(&mut h, 10, 0);
    take(&mut h.core, c);
    h.core.commit();
    // The groups directory becomes a file: the next save cannot be written.
    let groups = dir.path().join("topics/jobs/groups");
    std::fs::remove_dir_all(&groups).unwrap();
    std::fs::write(&groups, b"in the way").unwrap();
    act(&mut h, c, AckAction::Ack, [0, 1]);
    h.core.commit();
    // The broker goes on; the group is still to be saved, and is once the disk allows.
    std::fs::remove_file(&groups).unwrap();
    h.core.commit();
    drop(h);
    let mut h = file_core(&dir, Fsync::Always, now);
    let c = join(&mut h, 10, 0);
    assert_eq!(take(&mut h.core, c).offsets(), vec![2]);
}
