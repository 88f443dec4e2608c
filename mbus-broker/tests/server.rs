//! The broker over real loopback sockets: persistent producers and their confirms.

mod support;

use std::io::Write;
use std::thread;

use mbus_broker::{Broker, BrokerConfig};
use mbus_proto::{Frame, Role};
use support::Owned;
use support::net::Client;

/// Publishes `count` messages on one connection in large batches, then waits for the confirm of
/// the last one.
fn produce(addr: std::net::SocketAddr, producer: u32, topic: &str, count: u32) {
    let mut c = Client::open(addr, Role::Producer);
    let mut batch = Vec::new();
    for seq in 0..count {
        let data = format!("{producer}:{seq}");
        Frame::publish(topic, data.as_bytes()).encode(&mut batch);
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
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let addr = broker.producer_addr();
    let threads: Vec<_> = (0..3)
        .map(|p| thread::spawn(move || produce(addr, p, "orders", 10_000)))
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
    let server = broker.stop().unwrap();
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
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut c = Client::open(broker.producer_addr(), Role::Producer);
    let frame = Frame::publish("t", &[7; 1000]).to_bytes();
    c.stream.write_all(&frame[..500]).unwrap();
    drop(c);
    produce(broker.producer_addr(), 1, "t", 100);
    let server = broker.stop().unwrap();
    assert_eq!(server.core().topic_range("t"), Some(0..100));
}

#[test]
fn an_embedded_broker_reports_live_stats_and_stops_when_dropped() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let addr = broker.producer_addr();
    produce(addr, 1, "t", 10);
    let _idle = Client::open(addr, Role::Producer);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stats = loop {
        let stats = broker.stats();
        if stats.messages == 10 && stats.connections == 1 {
            break stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats stay at {stats:?}"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!((stats.topics, stats.connections_total), (1, 2));
    drop(broker);
    // The thread was joined and the listeners closed with it.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn stop_waits_no_longer_than_the_shutdown_grace_for_a_consumer_that_never_reads() {
    let mut config = BrokerConfig::ephemeral();
    config.shutdown_grace = std::time::Duration::from_millis(200);
    let broker = Broker::spawn(config).unwrap();
    // 20 MB, far more than socket buffers hold for a consumer that reads nothing.
    let mut p = Client::open(broker.producer_addr(), Role::Producer);
    let data = vec![b'x'; 1024];
    let mut batch = Vec::new();
    for _ in 0..20_000 {
        Frame::publish("t", &data).encode(&mut batch);
    }
    p.stream.write_all(&batch).unwrap();
    while !matches!(p.recv(), Some(Owned::Confirm(20_000))) {}
    let mut stalled = Client::open(broker.consumer_addr(), Role::Consumer);
    stalled.send(Frame::Subscribe {
        topic: "t",
        start: mbus_proto::Start::Earliest,
    });
    thread::sleep(std::time::Duration::from_millis(100));
    let asked = std::time::Instant::now();
    broker.stop().unwrap();
    let took = asked.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2),
        "stop took {took:?} with a grace of 200 ms"
    );
}

#[test]
fn a_hello_with_a_4000_byte_token_fits_the_limit_before_hello_and_a_larger_frame_is_refused() {
    let token = "t".repeat(4000);
    let mut config = BrokerConfig::ephemeral();
    config.auth_token = Some(token.clone());
    let broker = Broker::spawn(config).unwrap();
    // Accepted: Client::open_with asserts the Welcome.
    let _welcomed = Client::open_with(broker.producer_addr(), Role::Producer, Some(&token));
    let long = "t".repeat(5000);
    let mut refused = Client::raw(broker.producer_addr());
    refused.send(Frame::Hello {
        version: mbus_proto::PROTOCOL_VERSION,
        role: Role::Producer,
        token: Some(&long),
    });
    match refused.recv() {
        Some(Owned::Error { code, reason }) => {
            assert_eq!(code, mbus_proto::ErrorCode::FrameTooLarge);
            assert!(reason.contains("4096"), "{reason}");
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}
