//! Crash safety with real processes: a broker with a data directory is killed with SIGKILL at
//! random moments while producers publish, and restarted, again and again. At the end a consumer
//! reading from `earliest` must see every confirmed message exactly once, in each producer's
//! order; unconfirmed messages may or may not be there, but never twice and never damaged.
//!
//! `MBUS_CRASH_CYCLES` sets the number of kill-and-restart cycles (default 20);
//! `cargo xtask crash --cycles N` runs this test with it.

mod store_util;
mod support;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mbus_proto::{Frame, Role, Start};
use store_util::TempDir;
use support::Owned;
use support::net::Client;
use support::process::BrokerProcess;

const PRODUCERS: usize = 2;
const TOPIC: &str = "crash";

fn payload(p: usize, seq: u64) -> Vec<u8> {
    let mut data = format!("p{p}:{seq}:").into_bytes();
    data.resize(48, b'.');
    data
}

/// Publishes from `first` on, in batches, until the broker goes away; returns how many were
/// sent and how many of those the broker confirmed.
fn produce(addr: SocketAddr, p: usize, first: u64) -> (u64, u64) {
    let Some(mut c) = Client::try_open(addr, Role::Producer) else {
        return (0, 0);
    };
    let (mut sent, mut confirmed) = (0u64, 0u64);
    loop {
        let mut batch = Vec::new();
        for _ in 0..50 {
            Frame::publish(TOPIC, &payload(p, first + sent)).encode(&mut batch);
            sent += 1;
        }
        if std::io::Write::write_all(&mut c.stream, &batch).is_err() {
            return (sent, confirmed);
        }
        while confirmed < sent {
            match c.recv() {
                Some(Owned::Confirm(n)) => confirmed = n,
                _ => return (sent, confirmed),
            }
        }
    }
}

#[test]
fn confirmed_messages_survive_repeated_sigkill() {
    let cycles: u32 = std::env::var("MBUS_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = TempDir::new("crash");
    let mut rng = (nanos as u64) | 1;
    let mut next_seq = [0u64; PRODUCERS];
    let mut confirmed: Vec<Vec<std::ops::Range<u64>>> = vec![Vec::new(); PRODUCERS];

    for _ in 0..cycles {
        let broker = BrokerProcess::start(&[OsStr::new("--data-dir"), dir.path().as_os_str()]);
        let addr = broker.producers;
        let workers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let first = next_seq[p];
                thread::spawn(move || (first, produce(addr, p, first)))
            })
            .collect();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        thread::sleep(Duration::from_millis(20 + rng % 200));
        drop(broker);
        for (p, worker) in workers.into_iter().enumerate() {
            let (first, (sent, acked)) = worker.join().unwrap();
            confirmed[p].push(first..first + acked);
            next_seq[p] = first + sent;
        }
    }

    // A last clean start: read everything from the beginning.
    let broker = BrokerProcess::start(&[OsStr::new("--data-dir"), dir.path().as_os_str()]);
    let mut c = Client::open(broker.consumers, Role::Consumer);
    c.send(Frame::Subscribe {
        topic: TOPIC,
        start: Start::Earliest,
    });
    let total_confirmed: u64 = confirmed.iter().flatten().map(|r| r.end - r.start).sum();
    assert!(total_confirmed > 0, "the producers got messages confirmed");
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); PRODUCERS];
    let mut next_offset = None;
    // Read until the last confirmed message of each producer has arrived (each producer's
    // messages come in order); a stalled read fails the test through the read timeout.
    let last_confirmed: Vec<Option<u64>> = confirmed
        .iter()
        .map(|ranges| {
            ranges
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| r.end - 1)
                .max()
        })
        .collect();
    while !last_confirmed
        .iter()
        .zip(&seen)
        .all(|(last, got)| last.is_none_or(|l| got.last().is_some_and(|&g| g >= l)))
    {
        let frame = c.try_recv().unwrap_or_else(|e| {
            panic!("confirmed messages missing: producers confirmed up to {last_confirmed:?}, arrived up to {:?} ({e})", seen.iter().map(|s| s.last()).collect::<Vec<_>>())
        });
        match frame {
            Some(Owned::Subscribed { offset, .. }) => next_offset = Some(offset),
            Some(Owned::Deliver { offset, data, .. }) => {
                assert_eq!(Some(offset), next_offset, "offsets in order, none skipped");
                next_offset = Some(offset + 1);
                let text = std::str::from_utf8(&data).expect("payload intact");
                let mut parts = text.split(':');
                let p: usize = parts.next().unwrap()[1..].parse().unwrap();
                let seq: u64 = parts.next().unwrap().parse().unwrap();
                assert_eq!(data, payload(p, seq), "payload intact");
                if let Some(&last) = seen[p].last() {
                    assert!(
                        seq > last,
                        "producer {p}: {seq} after {last}: never twice, in order"
                    );
                }
                seen[p].push(seq);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for p in 0..PRODUCERS {
        for range in &confirmed[p] {
            for seq in range.clone() {
                assert!(
                    seen[p].binary_search(&seq).is_ok(),
                    "producer {p}: confirmed message {seq} is missing"
                );
            }
        }
    }
    drop(broker);
}
