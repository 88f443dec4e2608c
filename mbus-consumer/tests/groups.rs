//! Consumer groups against a real broker: the library's join, acks and redelivery, and
//! `mbus-consumer --group` printing or running `--exec` workers.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use mbus_broker::{Broker, BrokerConfig};
use mbus_consumer::{Consumer, ConsumerOptions, Event};
use mbus_producer::{Producer, ProducerOptions};
use mbus_proto::{GroupOptions, Start};

fn start(config: BrokerConfig) -> Broker {
    Broker::spawn(config).unwrap()
}

fn publish(broker: &Broker, topic: &str, lines: impl IntoIterator<Item = String>) -> u64 {
    let mut p = Producer::connect(broker.producer_addr(), &ProducerOptions::default()).unwrap();
    let mut n = 0;
    for line in lines {
        p.publish(topic, line.as_bytes()).unwrap();
        n += 1;
    }
    assert_eq!(p.wait_confirmed().unwrap(), n);
    n
}

fn member(broker: &Broker, credit: u32) -> Consumer {
    let mut options = ConsumerOptions::default();
    options.read_timeout = Some(Duration::from_secs(10));
    let mut c = Consumer::connect(broker.consumer_addr(), &options).unwrap();
    c.join(
        "jobs",
        "workers",
        Start::Earliest,
        credit,
        GroupOptions::default(),
    )
    .unwrap();
    assert!(matches!(c.next_event().unwrap(), Event::Joined { .. }));
    c
}

/// The next message's offset and attempt.
fn next(c: &mut Consumer) -> (u64, u32) {
    match c.next_event().unwrap() {
        Event::Message {
            offset,
            attempt,
            group,
            ..
        } => {
            assert_eq!(group, Some("workers"));
            (offset, attempt)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn members_share_a_topic_and_acks_settle_it() {
    let broker = start(BrokerConfig::ephemeral());
    publish(&broker, "jobs", (0..200).map(|i| format!("job {i}")));
    let mut a = member(&broker, 10);
    let mut b = member(&broker, 10);
    let mut seen = BTreeSet::new();
    let (mut from_a, mut from_b) = (0, 0);
    while seen.len() < 200 {
        for (c, count) in [(&mut a, &mut from_a), (&mut b, &mut from_b)] {
            if let Ok(Some(Event::Message { offset, .. })) = c.try_next_event() {
                assert!(seen.insert(offset), "offset {offset} given twice");
                *count += 1;
                c.ack("jobs", "workers", offset).unwrap();
            }
        }
    }
    assert!(from_a > 0 && from_b > 0, "{from_a} and {from_b}");
    a.flush_acks().unwrap();
    b.flush_acks().unwrap();
    // Acks are held and sent in frames of many; once sent, the group is done with all 200.
    let mut state = None;
    for _ in 0..50 {
        a.group_info("jobs", "workers").unwrap();
        if let Event::GroupState { state: s, .. } = a.next_event().unwrap() {
            if s.floor == 200 {
                state = Some(s);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = state.expect("the group reaches its end");
    assert_eq!((state.next, state.in_flight, state.members), (200, 0, 2));
    broker.stop().unwrap();
}

#[test]
fn what_a_member_that_closes_held_goes_to_another_at_once() {
    let broker = start(BrokerConfig::ephemeral());
    publish(&broker, "jobs", (0..3).map(|i| format!("job {i}")));
    let mut quitter = member(&broker, 3);
    let took: Vec<(u64, u32)> = (0..3).map(|_| next(&mut quitter)).collect();
    assert_eq!(took, vec![(0, 1), (1, 1), (2, 1)]);
    let mut other = member(&broker, 3);
    drop(quitter);
    // Well before the 30 s ack wait.
    let started = std::time::Instant::now();
    let got: Vec<(u64, u32)> = (0..3).map(|_| next(&mut other)).collect();
    assert_eq!(got, vec![(0, 2), (1, 2), (2, 2)]);
    assert!(started.elapsed() < Duration::from_secs(5));
    broker.stop().unwrap();
}

fn consumer_cli(broker: &Broker, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mbus-consumer"));
    cmd.args(args)
        .args(["--port", &broker.consumer_addr().port().to_string()]);
    cmd
}

#[test]
fn two_cli_members_print_each_message_once_between_them_and_exit_at_the_end() {
    let broker = start(BrokerConfig::ephemeral());
    publish(&broker, "jobs", (0..2000).map(|i| format!("job {i}")));
    let args = [
        "--topic",
        "jobs",
        "--group",
        "workers",
        "--credit",
        "50",
        "--exit-at-end",
    ];
    let a = consumer_cli(&broker, &args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = consumer_cli(&broker, &args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let mut lines: Vec<String> = String::from_utf8(a.stdout)
        .unwrap()
        .lines()
        .chain(String::from_utf8(b.stdout).unwrap().lines())
        .map(str::to_owned)
        .collect();
    let total = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!(total, 2000, "each message printed once");
    assert_eq!(lines.len(), 2000);
    // Every message was acked once printed: a third member gets nothing.
    let out = consumer_cli(&broker, &args).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    broker.stop().unwrap();
}

#[test]
fn exec_acks_what_succeeds_and_a_message_that_keeps_failing_is_dead_lettered() {
    let mut config = BrokerConfig::ephemeral();
    config.max_deliver = 2;
    let broker = start(config);
    let jobs = ["one", "bad", "three"].map(String::from);
    publish(&broker, "jobs", jobs);
    let worker = r#"read line; if [ "$line" = bad ]; then exit 3; fi; echo "$MBUS_OFFSET $MBUS_ATTEMPT $line""#;
    let out = consumer_cli(
        &broker,
        &[
            "-t",
            "jobs",
            "-g",
            "workers",
            "--exec",
            worker,
            "--exit-at-end",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "0 1 one\n2 1 three\n"
    );
    // The failing one was delivered twice, then set aside with where it came from.
    let dead = consumer_cli(&broker, &["-t", "jobs.dlq", "-e", "--json"])
        .output()
        .unwrap();
    let line = String::from_utf8(dead.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(json["data"], "bad");
    let headers: Vec<(String, String)> = json["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        headers.contains(&("mbus-offset".into(), "1".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("mbus-attempts".into(), "2".into())));
    assert!(headers.contains(&("mbus-reason".into(), "max-deliver".into())));
    broker.stop().unwrap();
}
