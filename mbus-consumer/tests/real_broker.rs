//! The consumer binary against a real broker: a message published by the producer library comes
//! out as a line on stdout, after the fact, and as it is published to a consumer already waiting.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mbus_broker::{Broker, BrokerConfig};
use mbus_producer::{Producer, ProducerOptions};

fn start() -> (u16, u16, Broker) {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let ports = (broker.producer_addr().port(), broker.consumer_addr().port());
    (ports.0, ports.1, broker)
}

fn publish(port: u16, topic: &str, lines: &[&str]) {
    let mut p = Producer::connect(("127.0.0.1", port), &ProducerOptions::default()).unwrap();
    for line in lines {
        p.publish(topic, line.as_bytes()).unwrap();
    }
    assert_eq!(p.wait_confirmed().unwrap(), lines.len() as u64);
}

fn consumer(port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mbus-consumer"));
    cmd.args(args).args(["--port", &port.to_string()]);
    cmd
}

#[test]
fn a_published_message_is_printed_by_a_later_consumer() {
    let (pport, cport, broker) = start();
    publish(pport, "t", &["hi"]);
    let out = consumer(cport, &["--topic", "t", "--count", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hi\n");
    broker.stop().unwrap();
}

#[test]
fn a_waiting_consumer_prints_messages_as_they_arrive_with_json_offsets() {
    let (pport, cport, broker) = start();
    // The consumer starts before the topic exists and waits for it.
    let mut child = consumer(cport, &["--topic", "live", "--count", "2", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    publish(pport, "live", &["one"]);
    let first = lines.next().unwrap().unwrap();
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["topic"], "live");
    assert_eq!(first["data"], "one");
    let offset = first["offset"].as_u64().unwrap();
    publish(pport, "live", &["two"]);
    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["data"], "two");
    assert_eq!(second["offset"].as_u64().unwrap(), offset + 1);
    assert!(child.wait().unwrap().success());
    broker.stop().unwrap();
}
