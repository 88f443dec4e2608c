//! Hostile peers over real sockets, one test per kind of bad input. Each runs healthy traffic
//! (a producer and a consumer) alongside and checks that it is delivered in full, that the bad
//! peer gets the right error frame, and that the broker is still serving afterwards.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use mbus_broker::{Broker, BrokerConfig};
use mbus_proto::{ErrorCode, Frame, Role, Start};
use support::Owned;
use support::net::Client;

const HEALTHY: u32 = 5_000;

/// A producer and a consumer that move `HEALTHY` messages while the test misbehaves.
fn healthy_traffic(broker: &Broker, token: Option<&'static str>) -> impl FnOnce() {
    // Both connect before the attack starts, so that they hold their connections.
    let mut c = Client::open_with(broker.consumer_addr(), Role::Consumer, token);
    let mut p = Client::open_with(broker.producer_addr(), Role::Producer, token);
    let consumer = thread::spawn(move || {
        c.send(Frame::Subscribe {
            topic: "healthy",
            start: Start::Earliest,
        });
        let mut next = 0u64;
        while next < u64::from(HEALTHY) {
            match c.recv() {
                Some(Owned::Deliver { offset, data, .. }) => {
                    assert_eq!(offset, next);
                    assert_eq!(data, offset.to_be_bytes());
                    next += 1;
                }
                Some(Owned::Subscribed { .. }) => {}
                other => panic!("healthy consumer got {other:?}"),
            }
        }
    });
    let producer = thread::spawn(move || {
        for i in 0..u64::from(HEALTHY) {
            p.send(Frame::publish("healthy", &i.to_be_bytes()));
            if i % 500 == 0 {
                thread::sleep(Duration::from_millis(2));
            }
        }
        while p.recv() != Some(Owned::Confirm(u64::from(HEALTHY))) {}
    });
    move || {
        producer.join().expect("healthy producer served in full");
        consumer.join().expect("healthy consumer served in full");
    }
}

/// Runs `attack` against a broker carrying healthy traffic; returns what the attacker received.
fn under_attack(
    config: BrokerConfig,
    attack: impl FnOnce(SocketAddr, SocketAddr) -> Vec<Owned>,
) -> Vec<Owned> {
    let token = config.auth_token.clone().map(|t| &*t.leak());
    let broker = Broker::spawn(config).unwrap();
    let healthy = healthy_traffic(&broker, token);
    let answer = attack(broker.producer_addr(), broker.consumer_addr());
    healthy();
    // Still serving: a new producer is welcomed and confirmed.
    let mut p = Client::open_with(broker.producer_addr(), Role::Producer, token);
    p.send(Frame::publish("after", b"still here"));
    assert_eq!(p.recv(), Some(Owned::Confirm(1)));
    broker.stop().unwrap();
    answer
}

fn send_raw(addr: SocketAddr, hello: Option<Role>, bytes: &[u8]) -> Vec<Owned> {
    let mut c = match hello {
        Some(role) => Client::open(addr, role),
        None => Client::raw(addr),
    };
    c.stream.write_all(bytes).unwrap();
    c.recv_until_closed()
}

fn assert_error(frames: &[Owned], code: ErrorCode, words: &str) {
    match frames.last() {
        Some(Owned::Error { code: c, reason }) if *c == code && reason.contains(words) => {}
        other => panic!("expected {code:?} mentioning {words:?}, got {other:?} in {frames:?}"),
    }
}

fn body(bytes: &[u8]) -> Vec<u8> {
    let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(bytes);
    frame
}

#[test]
fn garbage_bytes() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        send_raw(
            p,
            Some(Role::Producer),
            b"\x00\x00\x00\x05\xff\xfe\xfd\xfc\xfb",
        )
    });
    assert_error(&out, ErrorCode::Malformed, "not a msgpack array");
}

#[test]
fn garbage_before_hello() {
    let out = under_attack(BrokerConfig::ephemeral(), |_, c| {
        send_raw(c, None, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    });
    assert_error(&out, ErrorCode::FrameTooLarge, "exceeds the limit");
}

#[test]
fn oversized_length_prefix() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        send_raw(p, Some(Role::Producer), &[0x00, 0x10, 0x00, 0x01])
    });
    assert_error(
        &out,
        ErrorCode::FrameTooLarge,
        "1048577 bytes exceeds the limit of 1048576",
    );
}

#[test]
fn truncated_frame_then_close() {
    under_attack(BrokerConfig::ephemeral(), |p, _| {
        let mut c = Client::open(p, Role::Producer);
        let frame = Frame::publish("healthy", &[1; 100]).to_bytes();
        c.stream.write_all(&frame[..60]).unwrap();
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let out = c.recv_until_closed();
        assert_eq!(out, vec![], "nothing was stored or confirmed");
        out
    });
}

#[test]
fn consumer_frame_on_the_producer_port() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        let subscribe = Frame::Subscribe {
            topic: "healthy",
            start: Start::Earliest,
        };
        send_raw(p, Some(Role::Producer), &subscribe.to_bytes())
    });
    assert_error(
        &out,
        ErrorCode::UnexpectedFrame,
        "Subscribe is not accepted on the producer port",
    );
}

#[test]
fn producer_frame_on_the_consumer_port() {
    let out = under_attack(BrokerConfig::ephemeral(), |_, c| {
        let publish = Frame::publish("healthy", b"sneaky");
        send_raw(c, Some(Role::Consumer), &publish.to_bytes())
    });
    assert_error(
        &out,
        ErrorCode::UnexpectedFrame,
        "Publish is not accepted on the consumer port",
    );
}

#[test]
fn producer_hello_on_the_consumer_port() {
    let out = under_attack(BrokerConfig::ephemeral(), |_, c| {
        let hello = Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Producer,
            token: None,
        };
        send_raw(c, None, &hello.to_bytes())
    });
    assert_error(
        &out,
        ErrorCode::UnexpectedFrame,
        "this is the consumer port",
    );
}

#[test]
fn unsupported_version() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        send_raw(p, None, &body(&[0x94, 0x01, 0x07, 0xa1, b'x', 0xc0]))
    });
    assert_error(&out, ErrorCode::UnsupportedVersion, "version 7");
}

#[test]
fn invalid_utf8_in_a_topic() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        send_raw(
            p,
            Some(Role::Producer),
            &body(&[0x93, 0x03, 0xa2, 0xc3, 0x28, 0xc4, 0x01, 0x00]),
        )
    });
    assert_error(&out, ErrorCode::Malformed, "topic");
}

#[test]
fn body_of_the_wrong_shape() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        // A Publish whose topic is an integer and which lacks its data.
        send_raw(p, Some(Role::Producer), &body(&[0x92, 0x03, 0x2a]))
    });
    assert_error(&out, ErrorCode::Malformed, "Publish");
}

#[test]
fn unknown_frame_kind_after_a_good_publish() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        let mut bytes = Frame::publish("healthy-side", b"ok").to_bytes();
        bytes.extend_from_slice(&body(&[0x91, 0x16]));
        send_raw(p, Some(Role::Producer), &bytes)
    });
    assert_eq!(
        out[0],
        Owned::Confirm(1),
        "what was stored is confirmed first"
    );
    assert_error(&out, ErrorCode::UnknownKind, "kind 22");
}

#[test]
fn invalid_topic_name() {
    let out = under_attack(BrokerConfig::ephemeral(), |p, _| {
        let publish = Frame::publish("no\nnewlines", b"x");
        send_raw(p, Some(Role::Producer), &publish.to_bytes())
    });
    assert_error(&out, ErrorCode::InvalidTopic, "topic name");
}

fn quick_timeouts() -> BrokerConfig {
    let mut config = BrokerConfig::ephemeral();
    config.handshake_timeout = Duration::from_millis(300);
    config
}

#[test]
fn silent_peer_is_timed_out() {
    let out = under_attack(quick_timeouts(), |p, _| {
        let started = Instant::now();
        let out = Client::raw(p).recv_until_closed();
        assert!(started.elapsed() < Duration::from_secs(10));
        out
    });
    assert_error(&out, ErrorCode::Timeout, "no Hello");
}

#[test]
fn dribbling_peer_is_timed_out() {
    let out = under_attack(quick_timeouts(), |p, _| {
        let mut c = Client::raw(p);
        let hello = Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Producer,
            token: None,
        }
        .to_bytes();
        for byte in &hello[..hello.len() - 1] {
            if c.stream.write_all(&[*byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(40));
        }
        c.recv_until_closed()
    });
    assert_error(&out, ErrorCode::Timeout, "no Hello");
}

#[test]
fn wrong_token() {
    let mut config = BrokerConfig::ephemeral();
    config.auth_token = Some("s3cret".into());
    let out = under_attack(config, |p, _| {
        let hello = Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Producer,
            token: Some("guess"),
        };
        send_raw(p, None, &hello.to_bytes())
    });
    assert_error(&out, ErrorCode::Unauthorized, "token");
}

#[test]
fn connections_over_the_limit() {
    let mut config = BrokerConfig::ephemeral();
    config.max_connections = 4;
    let out = under_attack(config, |p, _| {
        // Idle clients take what the healthy pair leaves, until one is refused. They send
        // nothing: an accepted one hears nothing back, a refused one an error frame.
        let mut idle = Vec::new();
        loop {
            assert!(
                idle.len() < 10,
                "ten idle clients accepted under a limit of 4"
            );
            let mut c = Client::raw(p);
            c.stream
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0; 256];
            match std::io::Read::read(&mut c.stream, &mut buf) {
                Ok(n) if n > 0 => {
                    drop(idle);
                    thread::sleep(Duration::from_millis(100));
                    return support::frames(&buf[..n]);
                }
                _ => idle.push(c),
            }
        }
    });
    assert_error(
        &out,
        ErrorCode::TooManyConnections,
        "limit of 4 connections",
    );
}
