//! Many more durable topics than the process has file descriptors: the real broker, limited to
//! 1,024 descriptors, takes a message for each of 20,000 topics and serves every one, before
//! and after a restart, with segment files opened on use and the least recently used closed.

mod store_util;
mod support;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use mbus_proto::{Frame, Role, Start};
use store_util::TempDir;
use support::Owned;
use support::net::Client;
use support::process::BrokerProcess;

const TOPICS: usize = 20_000;
const NOFILE: u64 = 1024;
/// Subscriptions per consumer connection, so that no connection owes more replies than it may.
const PER_CONSUMER: usize = 500;

fn topic(i: usize) -> String {
    format!("t{i:05}")
}

fn payload(i: usize, round: u64) -> Vec<u8> {
    format!("{}/{round}", topic(i)).into_bytes()
}

fn start(dir: &TempDir) -> BrokerProcess {
    let mut args: Vec<OsString> = [
        "--fsync",
        "never",
        "--max-topics",
        "20000",
        "--max-connections",
        "100",
        "--max-subscriptions",
        "20000",
        "--data-dir",
    ]
    .map(OsString::from)
    .into();
    args.push(dir.path().into());
    // Per-topic lines would be 40,000; the start and warnings are what this test reads.
    BrokerProcess::start_with(&args, "info,mbus_broker::store=warn", Some(NOFILE))
}

/// Publishes message `round` to every topic on one connection and waits for all confirms.
fn publish_each(producers: SocketAddr, round: u64) {
    let mut p = Client::open(producers, Role::Producer);
    for i in 0..TOPICS {
        p.send(Frame::publish(&topic(i), &payload(i, round)));
    }
    loop {
        match p.recv() {
            Some(Owned::Confirm(n)) if n == TOPICS as u64 => break,
            Some(Owned::Confirm(_)) => {}
            other => panic!("round {round}: expected confirms, got {other:?}"),
        }
    }
}

/// Subscribes to every topic from its start and checks that each delivers exactly its messages
/// `0..rounds`, in order.
fn consume_each(consumers: SocketAddr, rounds: u64) {
    for chunk in (0..TOPICS).collect::<Vec<_>>().chunks(PER_CONSUMER) {
        let mut c = Client::open(consumers, Role::Consumer);
        for &i in chunk {
            c.send(Frame::Subscribe {
                topic: &topic(i),
                start: Start::Earliest,
            });
        }
        let mut next = vec![0u64; chunk.len()];
        let mut left = chunk.len() as u64 * rounds;
        while left > 0 {
            match c.recv() {
                Some(Owned::Subscribed { .. }) => {}
                Some(Owned::Deliver {
                    topic: name,
                    offset,
                    data,
                }) => {
                    let i: usize = name[1..].parse().unwrap();
                    let k = i - chunk[0];
                    assert_eq!(offset, next[k], "{name} delivers in order");
                    assert_eq!(data, payload(i, offset), "{name} offset {offset}");
                    next[k] += 1;
                    left -= 1;
                }
                other => panic!("expected deliveries, got {other:?}"),
            }
        }
        assert!(next.iter().all(|&n| n == rounds), "every topic delivered");
    }
}

#[test]
fn twenty_thousand_durable_topics_work_under_1024_descriptors() {
    let dir = TempDir::new("many-topics");
    let mut broker = start(&dir);
    publish_each(broker.producers, 0);
    consume_each(broker.consumers, 1);
    let fds = broker.open_fds();
    assert!(fds < NOFILE as usize, "{fds} descriptors open");
    assert!(broker.terminate(Duration::from_secs(30)).success());

    // Recovery opens every topic, and keeps no more files than before.
    let broker = start(&dir);
    consume_each(broker.consumers, 1);
    publish_each(broker.producers, 1);
    consume_each(broker.consumers, 2);
    let fds = broker.open_fds();
    assert!(fds < NOFILE as usize, "{fds} descriptors open");
    let log = broker.log.lock().unwrap();
    for (_, line) in log.iter() {
        assert!(
            !line.contains("Too many open files") && !line.contains("cannot accept"),
            "{line}"
        );
    }
}
