//! The points PROTOCOL.md settles that a client written from it alone would otherwise have to
//! guess, each as the core does it: a second `Subscribe`, a token nobody asked for, which error
//! wins when a `Hello` breaks several rules, no `Confirm 0`, a client's `Error` as its first
//! frame, where a `Pong` stands against confirms, the smallest frame limit, the idle timeout
//! `Welcome` announces, and the batch rules a `Publish` is held to.

mod support;

use std::time::Instant;

use mbus_broker::engine::{Core, CoreConfig};
use mbus_broker::store::{Fsync, MemoryStorage};
use mbus_broker::{BrokerConfig, Server, server::ServerError};
use mbus_proto::{ErrorCode, Frame, PROTOCOL_VERSION, Role, Start};
use support::{Harness, Owned, peer};

fn with_token() -> Harness {
    Harness::with(CoreConfig {
        auth_token: Some("s3cret".into()),
        ..BrokerConfig::default().core()
    })
}

fn hello(h: &mut Harness, port: Role, role: Role, token: Option<&str>) -> Vec<Owned> {
    let id = h.core.open(port, peer());
    h.core.receive(
        id,
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role,
            token,
        },
    );
    h.output(id)
}

fn error_code(out: &[Owned]) -> Option<ErrorCode> {
    match out.last() {
        Some(Owned::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

#[test]
fn a_second_subscribe_to_a_topic_moves_the_subscription_and_is_answered_again() {
    let mut h = Harness::new();
    let p = h.producer();
    for data in [&b"0"[..], b"1", b"2"] {
        h.publish(p, "t", data);
    }
    let c = h.consumer();
    for start in [Start::Latest, Start::Offset(1)] {
        h.core.receive(c, Frame::Subscribe { topic: "t", start });
    }
    let out = h.output(c);
    let subscribed: Vec<&Owned> = out
        .iter()
        .filter(|f| matches!(f, Owned::Subscribed { .. }))
        .collect();
    assert_eq!(subscribed.len(), 2, "{out:?}");
    assert!(matches!(subscribed[1], Owned::Subscribed { offset: 1, .. }));
    let offsets: Vec<u64> = Harness::deliveries(&out).iter().map(|d| d.1).collect();
    assert_eq!(
        offsets,
        [1, 2],
        "one subscription, from where the second put it"
    );
}

#[test]
fn a_token_sent_to_a_broker_without_one_is_ignored() {
    let mut h = Harness::new();
    let out = hello(&mut h, Role::Producer, Role::Producer, Some("anything"));
    assert!(matches!(&out[..], [Owned::Welcome { .. }]), "{out:?}");
}

#[test]
fn the_token_is_checked_before_the_role_and_the_version_before_both() {
    // Wrong token and wrong role: Unauthorized, so that nothing about the broker's ports is
    // told to a peer without the token.
    let mut h = with_token();
    let out = hello(&mut h, Role::Producer, Role::Consumer, Some("wrong"));
    assert_eq!(error_code(&out), Some(ErrorCode::Unauthorized), "{out:?}");
    // Right token, wrong role: UnexpectedFrame.
    let out = hello(&mut h, Role::Producer, Role::Consumer, Some("s3cret"));
    assert_eq!(
        error_code(&out),
        Some(ErrorCode::UnexpectedFrame),
        "{out:?}"
    );
    // Another version is refused by the decoder, before any field is looked at: a Hello of
    // version 1 with the wrong token and role is UnsupportedVersion.
    let mut body = Frame::Hello {
        version: PROTOCOL_VERSION,
        role: Role::Consumer,
        token: Some("wrong"),
    }
    .to_bytes();
    body[6] = 1;
    let err = mbus_proto::decode(&body, 4096).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
}

#[test]
fn no_confirm_0_is_ever_sent() {
    let mut h = Harness::new();
    let p = h.producer();
    h.core.receive(p, Frame::Ping);
    h.core.receive(p, Frame::Unsubscribe { topic: "t" });
    let out = h.output(p);
    assert!(
        matches!(&out[..], [Owned::Pong, Owned::Error { .. }]),
        "a producer that published nothing is confirmed nothing: {out:?}"
    );
}

#[test]
fn an_error_as_the_first_frame_is_taken_as_closing_and_not_answered() {
    let mut h = Harness::new();
    let id = h.core.open(Role::Consumer, peer());
    h.core.receive(
        id,
        Frame::Error {
            code: ErrorCode::Internal,
            reason: "client gave up",
        },
    );
    assert!(h.core.is_closing(id));
    assert_eq!(h.output(id), vec![]);
}

#[test]
fn a_pong_follows_the_confirm_of_every_publish_before_its_ping_in_memory() {
    let mut h = Harness::new();
    let p = h.producer();
    h.publish(p, "t", b"x");
    h.publish(p, "t", b"y");
    h.core.receive(p, Frame::Ping);
    assert_eq!(h.output(p), vec![Owned::Confirm(2), Owned::Pong]);
}

#[test]
fn a_pong_does_not_wait_for_the_disk_but_the_confirm_does() {
    let disk = MemoryStorage::new(Fsync::Always, u64::MAX);
    let core = Core::start(
        BrokerConfig::default().core(),
        Some(Box::new(disk)),
        Instant::now(),
    );
    let mut h = Harness {
        core: core.unwrap(),
    };
    let p = h.producer();
    h.publish(p, "t", b"x");
    h.core.receive(p, Frame::Ping);
    assert_eq!(h.output(p), vec![Owned::Pong]);
    h.core.commit();
    assert_eq!(h.output(p), vec![Owned::Confirm(1)]);
}

#[test]
fn a_frame_limit_below_what_a_hello_may_take_is_refused_at_start() {
    let mut config = BrokerConfig::ephemeral();
    config.max_frame = 4095;
    match Server::bind(config) {
        Err(ServerError::Config(why)) => assert!(why.contains("4096"), "{why}"),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("a broker no Hello can reach started"),
    }
    let mut config = BrokerConfig::ephemeral();
    config.max_frame = 4096;
    assert!(Server::bind(config).is_ok(), "the least limit is accepted");
}

#[test]
fn welcome_announces_the_idle_timeout_in_milliseconds() {
    let mut h = Harness::with(CoreConfig {
        idle_timeout: std::time::Duration::from_millis(7_500),
        ..BrokerConfig::default().core()
    });
    let id = h.core.open(Role::Consumer, peer());
    h.core.receive(
        id,
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Consumer,
            token: None,
        },
    );
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    let mut out = Vec::new();
    while h.core.write(id, &mut out).unwrap() != mbus_broker::engine::Progress::Drained {}
    let (frame, _) = mbus_proto::decode(&out, u32::MAX).unwrap().unwrap();
    assert_eq!(
        frame,
        Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame: BrokerConfig::default().core().max_frame,
            idle_timeout: 7_500,
        }
    );
}

#[test]
fn a_publish_breaking_the_batch_rules_is_malformed_and_harms_no_one_else() {
    use std::io::Write;
    use support::net::Client;
    let broker = mbus_broker::Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut good = Client::open(broker.producer_addr(), Role::Producer);
    let publish = |batch: &[u8]| {
        let body = [&[0x93, 0x03, 0xa1, b't'][..], batch].concat();
        [&(body.len() as u32).to_be_bytes()[..], &body].concat()
    };
    let too_many_headers = {
        let mut b = vec![0x91, 0x93, 0x00, 0xc4, 0x00, 0xdc, 0, 130];
        for i in 0..65u8 {
            b.extend_from_slice(&[0xa2, b'h', b'a' + i % 26, 0xc4, 0x00]);
        }
        b
    };
    let cases: [(&[u8], &str); 4] = [
        (&[0x90], "empty batch"),
        (&[0x91, 0x92, 0x07, 0xc4, 0x00], "delta 7"),
        (&[0x91, 0x93, 0x00, 0xc4, 0x00, 0x90], "pairs"),
        (&too_many_headers, "65 headers"),
    ];
    for (batch, why) in cases {
        let mut bad = Client::open(broker.producer_addr(), Role::Producer);
        bad.stream.write_all(&publish(batch)).unwrap();
        match bad.recv_until_closed().last() {
            Some(Owned::Error { code, reason }) => {
                assert_eq!(*code, ErrorCode::Malformed, "{why}");
                assert!(reason.contains(why), "{why}: {reason}");
            }
            other => panic!("{why}: {other:?}"),
        }
        good.send(Frame::publish("t", b"still served"));
    }
    let mut confirmed = 0;
    while confirmed < 4 {
        match good.recv() {
            Some(Owned::Confirm(n)) => confirmed = n,
            other => panic!("{other:?}"),
        }
    }
}
