//! The `mbus-producer` command against scripted brokers: exit codes, stdin lines, errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use mbus_proto::{DEFAULT_MAX_FRAME, ErrorCode, Frame};

use crate::commands;
use crate::fake_broker::{self, Peer};

fn mbus_producer(port: u16, args: &[&str]) -> Command {
    commands::command(env!("CARGO_BIN_EXE_mbus-producer"), port, args)
}

fn run_with_stdin(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Welcomes the producer, answers its `Identify` if it sends one, confirms everything it
/// publishes, and returns the messages once it has closed the connection, with the token its
/// Hello carried.
fn confirm_all(mut peer: Peer) -> (Option<String>, Vec<(String, Vec<u8>)>) {
    let token = peer.welcome(DEFAULT_MAX_FRAME);
    let mut messages = Vec::new();
    let mut publishes = 0;
    while let Some(frame) = peer.recv() {
        match frame {
            Frame::Identify { producer, .. } if publishes == 0 => {
                let producer = producer.to_owned();
                peer.send(Frame::Identified {
                    producer: &producer,
                    sequence: 1,
                });
                continue;
            }
            Frame::Publish { topic, batch } => {
                for message in batch.iter() {
                    messages.push((topic.to_owned(), message.data.to_owned()));
                }
            }
            other => panic!("expected a Publish, got {other:?}"),
        }
        publishes += 1;
        peer.send(Frame::Confirm { count: publishes });
    }
    (token, messages)
}

#[test]
fn one_message_is_published_and_confirmed() {
    let (addr, broker) = fake_broker::spawn(confirm_all);
    let output = mbus_producer(
        addr.port(),
        &["--topic", "orders", "--message", "look ma! a new order"],
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let (token, messages) = broker.join().unwrap();
    assert_eq!(token, None);
    assert_eq!(
        messages,
        [("orders".to_owned(), b"look ma! a new order".to_vec())]
    );
}

#[test]
fn each_stdin_line_is_a_message_and_the_token_comes_from_the_environment() {
    let (addr, broker) = fake_broker::spawn(confirm_all);
    let mut command = mbus_producer(addr.port(), &["--topic", "lines"]);
    command.env("MBUS_AUTH_TOKEN", "s3cret");
    let output = run_with_stdin(command, b"first\nsecond\n\nno newline at the end");
    assert!(output.status.success(), "{output:?}");
    let (token, messages) = broker.join().unwrap();
    assert_eq!(token.as_deref(), Some("s3cret"));
    let data: Vec<&[u8]> = messages.iter().map(|(_, data)| data.as_slice()).collect();
    assert_eq!(
        data,
        [&b"first"[..], b"second", b"", b"no newline at the end"]
    );
}

#[test]
fn headers_are_given_to_every_message_in_order() {
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.identify();
        let got = [peer.publish_with_headers(), peer.publish_with_headers()];
        peer.send(Frame::Confirm { count: 2 });
        got
    });
    let command = mbus_producer(
        addr.port(),
        &[
            "--topic",
            "orders",
            "-H",
            "trace-id=7f3a",
            "--header",
            "empty=",
            "--header",
            "trace-id=a=b",
        ],
    );
    let output = run_with_stdin(command, b"one\ntwo\n");
    assert!(output.status.success(), "{output:?}");
    let headers = vec![
        ("trace-id".to_owned(), b"7f3a".to_vec()),
        ("empty".to_owned(), Vec::new()),
        ("trace-id".to_owned(), b"a=b".to_vec()),
    ];
    let got = broker.join().unwrap();
    assert_eq!(
        got[0],
        ("orders".to_owned(), b"one".to_vec(), headers.clone())
    );
    assert_eq!(got[1], ("orders".to_owned(), b"two".to_vec(), headers));
}

#[test]
fn headers_past_the_protocols_limits_or_without_a_name_are_refused() {
    let many: Vec<String> = (0..65).map(|i| format!("--header=h{i}=v")).collect();
    let mut args = vec!["--topic", "orders", "--message", "hi"];
    args.extend(many.iter().map(String::as_str));
    let output = mbus_producer(1, &args).output().unwrap();
    let line = commands::one_error_line(&output).unwrap();
    assert!(line.contains("65 headers"), "{line}");
    let output = mbus_producer(1, &["--topic", "t", "--message", "x", "-H", "=v"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[test]
fn a_broker_that_is_down_is_a_one_line_error() {
    commands::fails_to_connect(|port| {
        mbus_producer(port, &["--topic", "orders", "--message", "hi"])
    });
}

#[test]
fn a_refusal_is_a_one_line_error() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.recv();
        peer.send(Frame::Error {
            code: ErrorCode::Unauthorized,
            reason: "wrong token",
        });
    });
    let output = mbus_producer(addr.port(), &["--topic", "orders", "--message", "hi"])
        .output()
        .unwrap();
    assert_eq!(
        commands::one_error_line(&output).unwrap() + "\n",
        format!(
            "error: cannot connect to the broker at 127.0.0.1:{}: the broker reported Unauthorized: wrong token\n",
            addr.port()
        )
    );
}

#[test]
fn an_invalid_topic_is_a_usage_error() {
    let output = mbus_producer(1, &["--topic", "no/slashes", "--message", "hi"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("no/slashes")
    );
}

#[test]
fn a_broker_without_idempotent_producers_is_published_to_without_an_identity() {
    let (addr, broker) = fake_broker::serve(|accept| {
        let mut old = accept();
        old.welcome(DEFAULT_MAX_FRAME);
        old.recv();
        old.send(Frame::Error {
            code: ErrorCode::UnknownKind,
            reason: "unknown frame kind 20",
        });
        drop(old);
        confirm_all(accept())
    });
    let output = mbus_producer(addr.port(), &["--topic", "orders", "--message", "hi"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("publishing without an identity"),
        "{stderr}"
    );
    let (_, messages) = broker.join().unwrap();
    assert_eq!(messages, [("orders".to_owned(), b"hi".to_vec())]);
}
