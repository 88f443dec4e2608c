//! The core's time-driven limits and authentication, with the clock passed in by hand.

mod support;

use std::time::{Duration, Instant};

use mbus_broker::BrokerConfig;
use mbus_broker::engine::{ConnId, Core, CoreConfig};
use mbus_proto::{ErrorCode, Frame, PROTOCOL_VERSION, Role};
use support::{Harness, Owned, peer};

fn config() -> CoreConfig {
    CoreConfig {
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        auth_token: None,
        ..BrokerConfig::default().core()
    }
}

#[test]
fn a_connection_without_hello_is_refused_at_the_handshake_deadline() {
    let start = Instant::now();
    let mut h = Harness::with(config());
    h.core.handle_timeout(start);
    let silent = h.core.open(Role::Producer, peer());
    let mut expired = Vec::new();
    h.core.handle_timeout(start + Duration::from_millis(4900));
    h.core.take_expired(&mut expired);
    assert!(!h.core.is_closing(silent), "not before the deadline");
    h.core.handle_timeout(start + Duration::from_secs(5));
    h.core.take_expired(&mut expired);
    let out = h.output(silent);
    assert!(
        matches!(&out[..], [Owned::Error { code: ErrorCode::Timeout, reason }] if reason.contains("no Hello")),
        "{out:?}"
    );
    assert!(expired.is_empty());
    // If it never takes its error frame, it is dropped one more deadline later.
    h.core.handle_timeout(start + Duration::from_secs(10));
    h.core.take_expired(&mut expired);
    assert_eq!(expired, vec![silent]);
}

#[test]
fn a_silent_peer_is_pinged_then_dropped_and_a_pong_keeps_it() {
    let start = Instant::now();
    let mut h = Harness::with(config());
    h.core.handle_timeout(start);
    let alive = h.consumer();
    let dead = h.consumer();
    let mut expired = Vec::new();
    h.core.handle_timeout(start + Duration::from_secs(30));
    h.core.take_expired(&mut expired);
    assert_eq!(h.output(alive), vec![Owned::Other("Ping".into())]);
    assert_eq!(h.output(dead), vec![Owned::Other("Ping".into())]);
    h.core.handle_timeout(start + Duration::from_secs(40));
    h.core.receive(alive, Frame::Pong);
    h.core.handle_timeout(start + Duration::from_secs(60));
    h.core.take_expired(&mut expired);
    assert!(!h.core.is_closing(alive));
    let out = h.output(dead);
    assert!(
        matches!(&out[..], [Owned::Error { code: ErrorCode::Timeout, reason }] if reason.contains("ping")),
        "{out:?}"
    );
}

fn hello(core: &mut Core, role: Role, token: Option<&str>) -> ConnId {
    let id = core.open(role, peer());
    core.receive(
        id,
        Frame::Hello {
            version: PROTOCOL_VERSION,
            role,
            token,
        },
    );
    id
}

#[test]
fn with_a_token_configured_only_clients_presenting_it_get_in() {
    let mut h = Harness::with(CoreConfig {
        auth_token: Some("s3cret".into()),
        ..config()
    });
    let good = hello(&mut h.core, Role::Producer, Some("s3cret"));
    assert!(matches!(h.output(good)[..], [Owned::Welcome { .. }]));
    for token in [None, Some("s3cre"), Some("s3cret!"), Some("")] {
        let bad = hello(&mut h.core, Role::Consumer, token);
        let out = h.output(bad);
        assert!(
            matches!(&out[..], [Owned::Error { code: ErrorCode::Unauthorized, reason }] if reason.contains("token")),
            "{token:?}: {out:?}"
        );
        assert!(h.core.is_closing(bad));
    }
}

#[test]
fn a_new_topic_beyond_the_topic_limit_is_refused_and_existing_ones_still_serve() {
    let mut h = Harness::with(CoreConfig {
        max_topics: 3,
        ..config()
    });
    let p = h.producer();
    for topic in ["a", "b", "c", "a"] {
        h.publish(p, topic, b"x");
    }
    h.publish(p, "d", b"x");
    let out = h.output(p);
    assert_eq!(out[0], Owned::Confirm(4));
    assert!(
        matches!(&out[1], Owned::Error { code: ErrorCode::LimitReached, reason } if reason.contains("3 topics")),
        "{out:?}"
    );
    assert_eq!(h.core.stats().topics, 3);
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "e",
            start: mbus_proto::Start::Earliest,
        },
    );
    let out = h.output(c);
    assert!(
        matches!(
            &out[..],
            [Owned::Error {
                code: ErrorCode::LimitReached,
                ..
            }]
        ),
        "{out:?}"
    );
    let p2 = h.producer();
    h.publish(p2, "a", b"y");
    assert_eq!(h.output(p2), vec![Owned::Confirm(1)]);
}

#[test]
fn subscriptions_beyond_the_per_connection_limit_are_refused_but_resubscribing_is_not() {
    let mut h = Harness::with(CoreConfig {
        max_subscriptions: 2,
        ..config()
    });
    let c = h.consumer();
    for topic in ["a", "b", "a"] {
        h.core.receive(
            c,
            Frame::Subscribe {
                topic,
                start: mbus_proto::Start::Earliest,
            },
        );
    }
    assert!(
        !h.core.is_closing(c),
        "moving an existing subscription is not a new one"
    );
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "c",
            start: mbus_proto::Start::Earliest,
        },
    );
    let out = h.output(c);
    assert!(
        matches!(out.last(), Some(Owned::Error { code: ErrorCode::LimitReached, reason }) if reason.contains("2 subscriptions")),
        "{out:?}"
    );
}
