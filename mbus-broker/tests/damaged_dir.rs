//! A data directory with damaged entries beside healthy topics: the real broker starts, serves
//! every healthy topic, reports each damaged one, and tells whoever uses one that it is
//! unavailable.

mod store_util;
mod support;

use std::ffi::OsStr;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use mbus_proto::{ErrorCode, Frame, Role, Start};
use store_util::TempDir;
use support::Owned;
use support::net::Client;
use support::process::BrokerProcess;

/// Each damaged entry, by the topic name it takes, and how it is made.
const DAMAGED: [&str; 4] = ["plain", "dirlog", "looped", "dangling"];

fn damage(topics: &std::path::Path) {
    std::fs::write(topics.join("plain"), b"not a topic directory").unwrap();
    std::fs::create_dir_all(topics.join("dirlog").join("00000000000000000000.log")).unwrap();
    symlink(topics.join("looped"), topics.join("looped")).unwrap();
    symlink("/nonexistent/mbus/topic", topics.join("dangling")).unwrap();
    std::fs::write(topics.join("not a topic"), b"garbage").unwrap();
}

fn expect_unavailable(out: Option<Owned>, topic: &str) {
    match out {
        Some(Owned::Error { code, reason }) => {
            assert_eq!(code, ErrorCode::Internal, "{reason}");
            assert!(
                reason.contains(topic) && reason.contains("unavailable"),
                "{reason}"
            );
        }
        other => panic!("expected an error for {topic}, got {other:?}"),
    }
}

#[test]
fn damaged_entries_are_reported_and_every_healthy_topic_serves() {
    let dir = TempDir::new("damaged-dir");
    let args = [OsStr::new("--data-dir"), dir.path().as_os_str()];
    {
        let broker = BrokerProcess::start(&args);
        let mut p = Client::open(broker.producers, Role::Producer);
        for data in [&b"one"[..], b"two", b"three"] {
            p.send(Frame::publish("good", data));
        }
        while p.recv() != Some(Owned::Confirm(3)) {}
    }
    damage(&dir.path().join("topics"));

    let broker = BrokerProcess::start(&args);
    for topic in DAMAGED {
        let words = format!("topic {topic} is unavailable");
        let logged = broker.wait_for_log(
            &words,
            Instant::now() - Duration::from_secs(60),
            Duration::from_secs(5),
        );
        assert!(logged.is_some(), "the broker reported {topic}");
    }
    assert!(
        broker
            .wait_for_log(
                "ignoring not a topic",
                Instant::now() - Duration::from_secs(60),
                Duration::from_secs(5)
            )
            .is_some(),
        "garbage is reported"
    );
    // The healthy topic serves all it held, and takes more.
    let mut c = Client::open(broker.consumers, Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "good",
        start: Start::Earliest,
    });
    assert!(matches!(
        c.recv(),
        Some(Owned::Subscribed { offset: 0, .. })
    ));
    for (offset, data) in [(0, &b"one"[..]), (1, b"two"), (2, b"three")] {
        assert_eq!(
            c.recv(),
            Some(Owned::Deliver {
                topic: "good".into(),
                offset,
                data: data.to_vec()
            })
        );
    }
    let mut p = Client::open(broker.producers, Role::Producer);
    p.send(Frame::publish("good", b"four"));
    assert_eq!(p.recv(), Some(Owned::Confirm(1)));
    // Each damaged topic is unavailable to producers and consumers alike.
    for topic in DAMAGED {
        let mut p = Client::open(broker.producers, Role::Producer);
        p.send(Frame::publish(topic, b"x"));
        expect_unavailable(p.recv(), topic);
        let mut c = Client::open(broker.consumers, Role::Consumer);
        c.send(Frame::Subscribe {
            topic,
            start: Start::Earliest,
        });
        expect_unavailable(c.recv(), topic);
    }
}
