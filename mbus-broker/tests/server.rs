//! The broker over real loopback sockets: persistent producers and their confirms.

mod support;

use std::io::Write;
use std::thread;

use mbus_broker::BrokerConfig;
use mbus_proto::{Frame, Role};
use support::Owned;
use support::net::{Client, Running};

/// Publishes `count` messages on one connection in large batches, then waits for the confirm of
/// the last one.
fn produce(addr: std::net::SocketAddr, producer: u32, topic: &str, count: u32) {
    let mut c = Client::open(addr, Role::Producer);
    let mut batch = Vec::new();
    for seq in 0..count {
        let data = format!("{producer}:{seq}");
        Frame::Publish {
            topic,
            data: data.as_bytes(),
        }
        .encode(&mut batch);
        if batch.len() > 32 << 10 || seq + 1 == count {
            c.stream.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    let mut last = 0;
    while last < u64::from(count) {
        match c.recv() {
            Some(Owned::Confirm(n)) => {
                assert!(n > last, "confirms only grow");
                last = n;
            }
            other => panic!("producer {producer}: unexpected {other:?}"),
        }
    }
    assert_eq!(last, u64::from(count));
}

#[test]
fn three_persistent_producers_get_every_message_stored_once_in_order() {
    let broker = Running::start(BrokerConfig::ephemeral());
    let addr = broker.producers;
    let threads: Vec<_> = (0..3)
        .map(|p| thread::spawn(move || produce(addr, p, "orders", 10_000)))
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
    let server = broker.stop();
    let core = server.core();
    assert_eq!(core.topic_range("orders"), Some(0..30_000));
    let mut next = [0u32; 3];
    for offset in 0..30_000 {
        let data = std::str::from_utf8(core.message("orders", offset).unwrap()).unwrap();
        let (p, seq) = data.split_once(':').unwrap();
        let p: usize = p.parse().unwrap();
        assert_eq!(
            seq.parse::<u32>().unwrap(),
            next[p],
            "producer {p} in order, once"
        );
        next[p] += 1;
    }
    assert_eq!(next, [10_000; 3]);
}

#[test]
fn a_peer_that_vanishes_mid_frame_harms_no_one() {
    let broker = Running::start(BrokerConfig::ephemeral());
    let mut c = Client::open(broker.producers, Role::Producer);
    let frame = Frame::Publish {
        topic: "t",
        data: &[7; 1000],
    }
    .to_bytes();
    c.stream.write_all(&frame[..500]).unwrap();
    drop(c);
    produce(broker.producers, 1, "t", 100);
    let server = broker.stop();
    assert_eq!(server.core().topic_range("t"), Some(0..100));
}
