//! The `mbus-consumer` command against scripted brokers: output, exit codes, errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use mbus_proto::{ErrorCode, Frame, Start};

use crate::commands;
use crate::fake_broker::{self, LIMIT, Peer};

fn mbus_consumer(port: u16, args: &[&str]) -> Command {
    commands::command(env!("CARGO_BIN_EXE_mbus-consumer"), port, args)
}

fn subscribed<'a>(peer: &mut Peer, topic: &'a str, start: Start) -> Frame<'a> {
    peer.expect(Frame::Subscribe { topic, start });
    Frame::Subscribed {
        topic,
        offset: 0,
        first: 0,
        next: 0,
    }
}

#[test]
fn messages_are_printed_as_lines_until_the_count() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(Some("s3cret"));
        let answer = subscribed(&mut peer, "orders", Start::Earliest);
        peer.send(&[
            answer,
            Frame::Deliver {
                topic: "orders",
                offset: 0,
                time: 0,
                batch: mbus_proto::Batch::one(b"look ma! a new order"),
            },
            Frame::Gap {
                topic: "orders",
                from: 1,
                to: 4,
            },
            Frame::Deliver {
                topic: "orders",
                offset: 4,
                time: 0,
                batch: mbus_proto::Batch::one(b"another"),
            },
            Frame::Deliver {
                topic: "orders",
                offset: 5,
                time: 0,
                batch: mbus_proto::Batch::one(b"beyond the count"),
            },
        ]);
        peer.closed();
    });
    let output = mbus_consumer(addr.port(), &["--topic", "orders", "--count", "2"])
        .env("MBUS_AUTH_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"look ma! a new order\nanother\n");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("topic `orders`: 3 messages were lost"),
        "{stderr}"
    );
}

#[test]
fn json_output_subscribes_every_topic_from_the_given_offset() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(None);
        let first = subscribed(&mut peer, "a", Start::Offset(7));
        let second = subscribed(&mut peer, "b", Start::Offset(7));
        peer.send(&[
            first,
            second,
            Frame::Deliver {
                topic: "a",
                offset: 7,
                time: 0,
                batch: mbus_proto::Batch::one(b"hi"),
            },
            Frame::Deliver {
                topic: "b",
                offset: 7,
                time: 0,
                batch: mbus_proto::Batch::one(&[0xff]),
            },
        ]);
        peer.closed();
    });
    let args = [
        "--topic", "a", "--topic", "b", "--from", "7", "--json", "--count", "2",
    ];
    let output = mbus_consumer(addr.port(), &args).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"topic\":\"a\",\"offset\":7,\"time\":0,\"data\":\"hi\"}\n\
         {\"topic\":\"b\",\"offset\":7,\"time\":0,\"data_base64\":\"/w==\"}\n"
    );
}

#[test]
fn a_format_tells_topics_and_offsets_apart_with_kcat_short_flags() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(None);
        let first = subscribed(&mut peer, "a", Start::Offset(3));
        let second = subscribed(&mut peer, "b", Start::Offset(3));
        peer.send(&[
            first,
            second,
            Frame::Deliver {
                topic: "a",
                offset: 3,
                time: 0,
                batch: mbus_proto::Batch::one(b"hi"),
            },
            Frame::Deliver {
                topic: "b",
                offset: 9,
                time: 0,
                batch: mbus_proto::Batch::one(b"there"),
            },
        ]);
        peer.closed();
    });
    let args = [
        "-t",
        "a",
        "-t",
        "b",
        "-o",
        "3",
        "-c",
        "2",
        "-f",
        "%t/%o %S: %s\\n",
    ];
    let output = mbus_consumer(addr.port(), &args).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "a/3 2: hi\nb/9 5: there\n"
    );
}

#[test]
fn a_bad_format_or_json_with_a_format_is_a_usage_error() {
    for args in [
        &["-t", "a", "-f", "%k"][..],
        &["-t", "a", "--json", "--format", "%s"],
    ] {
        let output = mbus_consumer(1, args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
}

#[test]
fn a_broker_that_is_down_is_a_one_line_error() {
    commands::fails_to_connect(|port| mbus_consumer(port, &["--topic", "orders"]));
}

#[test]
fn a_refused_subscription_is_a_one_line_error() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(None);
        peer.expect(Frame::Subscribe {
            topic: "secret",
            start: Start::Earliest,
        });
        peer.send(&[Frame::Error {
            code: ErrorCode::Unauthorized,
            reason: "not for you",
        }]);
    });
    let output = mbus_consumer(addr.port(), &["--topic", "secret"])
        .output()
        .unwrap();
    assert_eq!(
        commands::one_error_line(&output).unwrap() + "\n",
        "error: cannot receive from the broker: the broker reported Unauthorized: not for you\n"
    );
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let (more, wait) = mpsc::channel::<()>();
    let (addr, _broker) = fake_broker::spawn(move |mut peer| {
        peer.welcome(None);
        let answer = subscribed(&mut peer, "orders", Start::Earliest);
        peer.send(&[
            answer,
            Frame::Deliver {
                topic: "orders",
                offset: 0,
                time: 0,
                batch: mbus_proto::Batch::one(b"first"),
            },
        ]);
        wait.recv_timeout(LIMIT).unwrap();
        // Far more than a pipe holds, so the command must write into the closed pipe.
        let data = [b'x'; 1024];
        for offset in 1..10_000 {
            let delivered = std::io::Write::write_all(
                &mut peer.stream,
                &Frame::Deliver {
                    topic: "orders",
                    offset,
                    time: 0,
                    batch: mbus_proto::Batch::one(&data),
                }
                .to_bytes(),
            );
            if delivered.is_err() {
                break;
            }
        }
    });
    let mut child = mbus_consumer(addr.port(), &["--topic", "orders"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    drop(stdout);
    more.send(()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
}
