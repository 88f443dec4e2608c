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

/// Welcomes the producer, confirms everything it publishes, and returns the messages once it
/// has closed the connection, with the token its Hello carried.
fn confirm_all(mut peer: Peer) -> (Option<String>, Vec<(String, Vec<u8>)>) {
    let token = peer.welcome(DEFAULT_MAX_FRAME);
    let mut messages = Vec::new();
    while let Some(frame) = peer.recv() {
        let Frame::Publish { topic, data } = frame else {
            panic!("expected a Publish, got {frame:?}");
        };
        messages.push((topic.to_owned(), data.to_owned()));
        peer.send(Frame::Confirm {
            count: messages.len() as u64,
        });
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
