//! The RESP parser on whole, split and broken server output.

use super::parse;
use crate::target::testing::{Owned, parse_split_anywhere};

#[test]
fn subscriber_output_split_at_every_offset_parses_the_same() {
    let bytes = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n\
                  *3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$5\r\nhello\r\n\
                  *3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$4\r\n\r\n\r\n\r\n\
                  *3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$0\r\n\r\n";
    assert_eq!(
        parse_split_anywhere(parse, bytes),
        [
            Owned::Other("Subscribed".into()),
            Owned::Message(b"hello".to_vec()),
            Owned::Message(b"\r\n\r\n".to_vec()),
            Owned::Message(Vec::new()),
        ]
    );
}

#[test]
fn publish_replies_split_at_every_offset_parse_the_same() {
    let bytes = b":1\r\n:4\r\n:0\r\n+PONG\r\n+OK\r\n";
    assert_eq!(
        parse_split_anywhere(parse, bytes),
        [
            Owned::Other("Published(1)".into()),
            Owned::Other("Published(4)".into()),
            Owned::Other("Published(0)".into()),
            Owned::Other("Pong".into()),
            Owned::Other("Other".into()),
        ]
    );
}

#[test]
fn an_error_reply_fails_with_its_text() {
    let err = parse(b"-ERR unknown command 'PUBLISHX'\r\n")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "redis-server replied -ERR unknown command 'PUBLISHX'");
}

#[test]
fn malformed_output_fails() {
    for bad in [
        &b"*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$5\r\nhelloXX"[..],
        b"*9\r\n",
        b"*x\r\n",
        b":twelve\r\n",
        b"%1\r\n",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn the_publish_encoding_is_a_resp_array_of_bulk_strings() {
    // What `encode_publish` writes, checked without starting a server.
    let prefix = format!("*3\r\n$7\r\nPUBLISH\r\n$5\r\n{}\r\n", super::CHANNEL);
    assert_eq!(prefix, "*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n");
}
