//! The turn API on a simulated clock: the core says when it must next be woken, and what it
//! owes on a timer (the batch sync above all) happens when it is.

mod store_util;
mod support;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use mbus_broker::BrokerConfig;
use mbus_broker::engine::Core;
use mbus_broker::store::memory::Crash;
use mbus_broker::store::{Fsync, MemoryStorage};
use mbus_proto::{Frame, Role};
use store_util::TempDir;
use support::net::Client;
use support::process::BrokerProcess;
use support::{Harness, Owned, peer};

fn batch_harness(start: Instant) -> (Harness, MemoryStorage) {
    let disk = MemoryStorage::new(Fsync::Batch, u64::MAX);
    let core = Core::start(
        BrokerConfig::default().core(),
        Some(Box::new(disk.clone())),
        start,
    );
    (
        Harness {
            core: core.unwrap(),
        },
        disk,
    )
}

#[test]
fn batch_fsync_syncs_within_250_ms_of_a_confirmed_publish() {
    let start = Instant::now();
    let (mut h, disk) = batch_harness(start);
    let p = h.producer();
    h.publish(p, "t", b"one");
    h.core.commit();
    assert_eq!(
        h.output(p),
        vec![Owned::Confirm(1)],
        "confirmed once written"
    );
    assert_eq!(disk.survives("t", Crash::Process), 0..1);
    assert_eq!(disk.survives("t", Crash::PowerLoss), 0..0, "not synced yet");
    let wake = h.core.poll_timeout().expect("a sync is due");
    assert!(
        wake <= start + Duration::from_millis(250),
        "the core asks to be woken {:?} after the confirm",
        wake - start
    );
    h.core.handle_timeout(wake - Duration::from_millis(1));
    assert_eq!(
        disk.survives("t", Crash::PowerLoss),
        0..0,
        "not before it is due"
    );
    h.core.handle_timeout(wake);
    assert_eq!(
        disk.survives("t", Crash::PowerLoss),
        0..1,
        "synced when due"
    );
    assert!(
        h.core.poll_timeout().is_none_or(|t| t > wake),
        "nothing more is due at once"
    );
}

#[test]
fn an_idle_core_without_connections_or_storage_needs_no_wake_up() {
    let start = Instant::now();
    let mut h = Harness::with(BrokerConfig::default().core());
    assert_eq!(h.core.poll_timeout(), None);
    h.core.handle_timeout(start);
    let id = h.core.open(Role::Producer, peer());
    let handshake = BrokerConfig::default().handshake_timeout;
    assert_eq!(h.core.poll_timeout(), Some(start + handshake));
    h.core.close(id);
}

#[test]
fn the_idle_timer_follows_the_shorter_idle_timeout_after_the_handshake() {
    let start = Instant::now();
    let config = mbus_broker::engine::CoreConfig {
        idle_timeout: Duration::from_secs(2),
        ..BrokerConfig::default().core()
    };
    let mut h = Harness::with(config);
    h.core.handle_timeout(start);
    let c = h.consumer();
    let wake = h.core.poll_timeout().expect("the idle timer is set");
    assert!(wake <= start + Duration::from_secs(2), "{:?}", wake - start);
    h.core.handle_timeout(start + Duration::from_secs(2));
    assert_eq!(h.output(c), vec![Owned::Other("Ping".into())]);
}

#[test]
fn the_real_broker_with_batch_fsync_syncs_within_250_ms_of_a_confirm() {
    let dir = TempDir::new("batch-binary");
    let args = [
        OsStr::new("--data-dir"),
        dir.path().as_os_str(),
        OsStr::new("--fsync"),
        OsStr::new("batch"),
    ];
    let broker = BrokerProcess::start_logging(&args, "info,mbus_broker::engine=debug");
    // An idle broker first, so that nothing but this publish can have set the sync's timer.
    std::thread::sleep(Duration::from_millis(300));
    let mut producer = Client::open(broker.producers, Role::Producer);
    producer.send(Frame::publish("t", b"one"));
    assert_eq!(producer.recv(), Some(Owned::Confirm(1)));
    let confirmed = Instant::now();
    let synced = broker
        .wait_for_log(
            "batch sync of 1 topics",
            confirmed - Duration::from_millis(50),
            Duration::from_secs(3),
        )
        .expect("the broker logged no batch sync");
    let late = synced.saturating_duration_since(confirmed);
    assert!(
        late <= Duration::from_millis(250),
        "synced {late:?} after the confirm"
    );
}
