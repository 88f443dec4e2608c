//! Consumers over real loopback sockets: fan-out of every message to every subscriber, in order.

mod support;

use std::io::Write;
use std::thread;

use mbus_broker::{Broker, BrokerConfig};
use mbus_proto::{Frame, Role, Start};
use support::Owned;
use support::net::Client;

fn consume(addr: std::net::SocketAddr, topic: &str, count: u64) -> Vec<(u64, Vec<u8>)> {
    let mut c = Client::open(addr, Role::Consumer);
    c.send(Frame::Subscribe {
        topic,
        start: Start::Earliest,
    });
    assert_eq!(
        c.recv(),
        Some(Owned::Subscribed {
            topic: topic.into(),
            offset: 0
        })
    );
    let mut got = Vec::new();
    while (got.len() as u64) < count {
        match c.recv() {
            Some(Owned::Deliver {
                topic: t,
                offset,
                data,
            }) => {
                assert_eq!(t, topic);
                got.push((offset, data));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

#[test]
fn every_consumer_gets_every_message_once_in_offset_order() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let caddr = broker.consumer_addr();
    let consumers: Vec<_> = (0..3)
        .map(|_| thread::spawn(move || consume(caddr, "fan", 10_000)))
        .collect();
    let paddr = broker.producer_addr();
    let producers: Vec<_> = (0..2u8)
        .map(|p| {
            thread::spawn(move || {
                let mut c = Client::open(paddr, Role::Producer);
                let mut buf = Vec::new();
                for seq in 0..5_000u32 {
                    let mut data = vec![p];
                    data.extend_from_slice(&seq.to_be_bytes());
                    Frame::publish("fan", &data).encode(&mut buf);
                }
                c.stream.write_all(&buf).unwrap();
                while c.recv() != Some(Owned::Confirm(5_000)) {}
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    for c in consumers {
        let got = c.join().unwrap();
        let mut next = [0u32; 2];
        for (i, (offset, data)) in got.iter().enumerate() {
            assert_eq!(*offset, i as u64);
            let p = data[0] as usize;
            assert_eq!(u32::from_be_bytes(data[1..5].try_into().unwrap()), next[p]);
            next[p] += 1;
        }
        assert_eq!(next, [5_000, 5_000]);
    }
    broker.stop().unwrap();
}
