//! The NATS parser on whole, split and broken server output.

use super::parse;
use crate::target::Event;
use crate::target::testing::{Owned, parse_split_anywhere};

#[test]
fn server_output_split_at_every_offset_parses_the_same() {
    let bytes = b"INFO {\"server_id\":\"x\",\"max_payload\":1048576} \r\n\
                  PONG\r\n\
                  MSG bench 1 5\r\nhello\r\n\
                  PING\r\n\
                  MSG bench 1 inbox.1 4\r\n\r\n\r\n\r\n\
                  +OK\r\n\
                  MSG bench 1 0\r\n\r\n";
    assert_eq!(
        parse_split_anywhere(parse, bytes),
        [
            Owned::Other("Welcome".into()),
            Owned::Other("Pong".into()),
            Owned::Message(b"hello".to_vec()),
            Owned::Other("Ping".into()),
            // A payload may itself hold CRLFs: its length, not a line end, delimits it.
            Owned::Message(b"\r\n\r\n".to_vec()),
            Owned::Other("Other".into()),
            Owned::Message(Vec::new()),
        ]
    );
}

#[test]
fn binary_payloads_pass_through() {
    let payload: Vec<u8> = (0..=255).collect();
    let mut bytes = format!("MSG bench 1 {}\r\n", payload.len()).into_bytes();
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(b"\r\n");
    let (event, used) = parse(&bytes).unwrap().unwrap();
    assert_eq!((event, used), (Event::Message(&payload), bytes.len()));
}

#[test]
fn an_err_line_fails_with_its_text() {
    let err = parse(b"-ERR 'Slow Consumer'\r\n").unwrap_err().to_string();
    assert_eq!(err, "nats-server sent -ERR 'Slow Consumer'");
}

#[test]
fn malformed_messages_fail() {
    for bad in [
        &b"MSG bench 5\r\nhello\r\n"[..],
        b"MSG bench 1 x\r\nhello\r\n",
        b"MSG bench 1 5\r\nhelloXX",
        b"HMSG bench 1 5 10\r\n",
        b"WHAT\r\n",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn an_incomplete_line_waits_for_more() {
    assert_eq!(parse(b"MSG bench 1 12").unwrap(), None);
    assert_eq!(parse(b"MSG bench 1 5\r\nhel").unwrap(), None);
    assert_eq!(parse(b"MSG bench 1 5\r\nhello\r").unwrap(), None);
    assert_eq!(parse(b"").unwrap(), None);
}
