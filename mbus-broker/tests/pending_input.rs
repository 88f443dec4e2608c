//! What peers that send part of a frame and stop cost the real broker, measured as its resident
//! memory, beside healthy traffic: a length prefix alone before `Hello`, a large publish
//! trickled after it, and the broker-wide bound on incomplete frames.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use mbus_proto::{ErrorCode, Frame, PROTOCOL_VERSION, Role, Start};
use support::Owned;
use support::net::Client;
use support::process::BrokerProcess;

const PEERS: usize = 2_000;
const MIB: u64 = 1 << 20;

/// A publish and its delivery still work while the peers hold on.
fn healthy_round_trip(broker: &BrokerProcess) {
    let mut c = Client::open(broker.consumers, Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "healthy",
        start: Start::Latest,
    });
    assert!(matches!(c.recv(), Some(Owned::Subscribed { .. })));
    let mut p = Client::open(broker.producers, Role::Producer);
    p.send(Frame::publish("healthy", b"still here"));
    assert_eq!(p.recv(), Some(Owned::Confirm(1)));
    match c.recv() {
        Some(Owned::Deliver { data, .. }) => assert_eq!(data, b"still here"),
        other => panic!("expected the delivery, got {other:?}"),
    }
}

/// `PEERS` connections, each of which has sent `first` right after connecting (so that none
/// waits for the others, and a handshake deadline cannot come first).
fn connect_many(addr: SocketAddr, first: &[u8]) -> Vec<TcpStream> {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    (0..PEERS)
        .map(|_| {
            let mut peer = TcpStream::connect(addr).expect("connect");
            peer.write_all(first).unwrap();
            peer
        })
        .collect()
}

/// The broker's memory, once it has settled after `peers` sent their bytes.
fn settled_rss(broker: &BrokerProcess) -> u64 {
    thread::sleep(Duration::from_millis(500));
    broker.rss()
}

#[test]
fn peers_that_send_only_a_large_length_prefix_before_hello_cost_little() {
    let broker = BrokerProcess::start::<&str>(&[]);
    healthy_round_trip(&broker);
    let before = broker.rss();
    // A frame of 1 MiB announced, one byte of it sent.
    let mut peers = connect_many(broker.producers, &[0, 0x10, 0, 0, 0x93]);
    let after = settled_rss(&broker);
    let grown = after.saturating_sub(before);
    eprintln!(
        "{PEERS} peers with a 1 MiB prefix: broker RSS grew {} KiB",
        grown / 1024
    );
    assert!(
        grown < 50 * MIB,
        "{PEERS} peers with a 1 MiB prefix took {} MiB",
        grown / MIB
    );
    // Each was told why at once, rather than held until its handshake deadline.
    let mut first = Client::from_stream(peers.swap_remove(0));
    match first.recv() {
        Some(Owned::Error { code, .. }) => assert_eq!(code, ErrorCode::FrameTooLarge),
        other => panic!("expected an error frame, got {other:?}"),
    }
    healthy_round_trip(&broker);
}

#[test]
fn peers_that_trickle_a_large_publish_after_hello_cost_what_they_sent() {
    let broker = BrokerProcess::start::<&str>(&[]);
    healthy_round_trip(&broker);
    let before = broker.rss();
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
        role: Role::Producer,
        token: None,
    }
    .to_bytes();
    let mut peers = connect_many(broker.producers, &hello);
    let data = vec![b'x'; (MIB - 64) as usize];
    let publish = Frame::publish("big", &data).to_bytes();
    const SENT: usize = 32 << 10;
    for peer in &mut peers {
        let mut welcome = [0; 64];
        let n = peer.read(&mut welcome).unwrap();
        assert!(n > 0, "welcomed");
        peer.write_all(&publish[..SENT]).unwrap();
    }
    let after = settled_rss(&broker);
    let grown = after.saturating_sub(before);
    let sent = (PEERS * SENT) as u64;
    eprintln!(
        "{PEERS} peers trickling: sent {} KiB, broker RSS grew {} KiB",
        sent / 1024,
        grown / 1024
    );
    assert!(
        grown < sent + sent / 4 + 16 * MIB,
        "{PEERS} peers that sent {} MiB of a 1 MiB publish took {} MiB",
        sent / MIB,
        grown / MIB
    );
    healthy_round_trip(&broker);
}

#[test]
fn incomplete_frames_past_the_broker_wide_bound_are_refused() {
    let broker = BrokerProcess::start(&["--max-pending-input", "8388608"]);
    let data = vec![b'x'; (MIB - 64) as usize];
    let publish = Frame::publish("big", &data).to_bytes();
    let mut peers = Vec::new();
    for _ in 0..20 {
        let mut peer = Client::open(broker.producers, Role::Producer);
        peer.stream.write_all(&publish[..600 << 10]).unwrap();
        peers.push(peer);
    }
    thread::sleep(Duration::from_millis(300));
    let mut refused = 0;
    for p in &mut peers {
        p.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(Some(Owned::Error {
            code: ErrorCode::LimitReached,
            ..
        })) = p.try_recv()
        {
            refused += 1;
        }
    }
    eprintln!("{refused} of 20 peers refused under an 8 MiB bound");
    // 8 MiB holds 13 frames of 600 KiB; the rest are refused.
    assert!((5..=8).contains(&refused), "{refused} of 20 refused");
    healthy_round_trip(&broker);
}
