//! Running out of file descriptors on accept neither kills nor spins the event loop, and the
//! connections left waiting are served once descriptors are free again.
//!
//! This file holds a single test because it lowers the limit for the whole test process.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use mbus_broker::{Broker, BrokerConfig};
use mbus_proto::{Frame, Role};
use rlimit::Resource;
use support::Owned;
use support::net::Client;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

fn welcomed(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0; 64];
    matches!(std::io::Read::read(stream, &mut buf), Ok(n) if n > 0)
}

#[test]
fn accept_backs_off_when_descriptors_run_out() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let (soft, hard) = Resource::NOFILE.get().unwrap();
    Resource::NOFILE.set(open_fds() + 40, hard).unwrap();

    let hello = Frame::Hello {
        version: mbus_proto::PROTOCOL_VERSION,
        role: Role::Producer,
        token: None,
    }
    .to_bytes();
    // Take every descriptor left. A client's socket is created before its connection exists, so
    // a descriptor freed below mostly goes to the next client and the broker's accept finds
    // none; when the broker's retry wins one instead, the client frees another.
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
    }
    // Clients connect one at a time until one is left waiting: the broker found no descriptor
    // to accept it with. The ones it did accept are kept connected, so their descriptors stay
    // taken.
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    while waiting.is_empty() {
        assert!(served.len() < 50, "the broker never ran out of descriptors");
        assert!(filler.pop().is_some(), "ran out of descriptors to free");
        let Ok(mut c) = TcpStream::connect(broker.producer_addr()) else {
            continue; // the broker's retry took the descriptor first
        };
        c.write_all(&hello).unwrap();
        if welcomed(&mut c, Duration::from_millis(300)) {
            served.push(c);
        } else {
            waiting.push(c);
        }
    }

    // Free descriptors: the broker takes the connections that waited in the backlog.
    drop(filler);
    Resource::NOFILE.set(soft, hard).unwrap();
    for c in &mut waiting {
        assert!(
            welcomed(c, Duration::from_secs(5)),
            "a waiting client was served"
        );
    }
    let mut p = Client::open(broker.producer_addr(), Role::Producer);
    p.send(Frame::publish("t", b"x"));
    assert_eq!(p.recv(), Some(Owned::Confirm(1)));

    let server = broker.stop().unwrap();
    assert!(
        server.turns() < 10_000,
        "the loop did not spin: {} turns",
        server.turns()
    );
}
