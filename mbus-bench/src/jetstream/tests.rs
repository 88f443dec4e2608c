//! The JetStream parser on PubAcks, API replies and deliveries, whole and split, and on the
//! replies that must fail a run.

use super::{api_reply, parse, pub_ack};
use crate::target::testing::{Owned, parse_split_anywhere};

/// A PubAck as nats-server 2.9 sends it: two spaces before the size, a space after the comma.
const ACKS: &[u8] = b"MSG _INBOX.bench-acks.1 2  27\r\n{\"stream\":\"bench\", \"seq\":1}\r\n\
                      PING\r\n\
                      MSG _INBOX.bench-acks.2 2  27\r\n{\"stream\":\"bench\", \"seq\":2}\r\n";

#[test]
fn pub_acks_split_at_every_offset_parse_the_same() {
    assert_eq!(
        parse_split_anywhere(parse, ACKS),
        [
            Owned::Other("Stored(1)".into()),
            Owned::Other("Ping".into()),
            Owned::Other("Stored(2)".into()),
        ]
    );
}

#[test]
fn deliveries_and_api_replies_are_told_apart_by_subscription() {
    let bytes = b"MSG _INBOX.bench-api 3 23\r\n{\"type\":\"x\",\"name\":\"c\"}\r\n\
                  MSG bench 1 $JS.ACK.bench.c.1.1.1.1795769511235478729.1 5\r\nhello\r\n\
                  PONG\r\n";
    assert_eq!(
        parse_split_anywhere(parse, bytes),
        [
            Owned::Other(format!("Reply({:?})", b"{\"type\":\"x\",\"name\":\"c\"}")),
            Owned::Message(b"hello".to_vec()),
            Owned::Other("Pong".into()),
        ]
    );
}

#[test]
fn a_message_for_a_subscription_never_made_fails() {
    let err = parse(b"MSG elsewhere 9 2\r\nhi\r\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("subscription 9"), "{err}");
}

#[test]
fn a_pub_ack_with_an_error_fails_with_its_description() {
    let json =
        br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#;
    let err = pub_ack(json).unwrap_err().to_string();
    assert_eq!(
        err,
        "nats-server refused a publish: maximum messages exceeded (code 503, err_code 10077)"
    );
    let mut bytes = format!("MSG _INBOX.bench-acks.7 2 {}\r\n", json.len()).into_bytes();
    bytes.extend_from_slice(json);
    bytes.extend_from_slice(b"\r\n");
    assert!(parse(&bytes).is_err());
}

#[test]
fn a_pub_ack_must_name_the_stream_and_a_sequence_number() {
    assert_eq!(pub_ack(br#"{"stream":"bench","seq":42}"#).unwrap(), 42);
    let other = pub_ack(br#"{"stream":"other","seq":1}"#).unwrap_err();
    assert!(other.to_string().contains("another stream"), "{other}");
    let no_seq = pub_ack(br#"{"stream":"bench"}"#).unwrap_err();
    assert!(no_seq.to_string().contains("sequence number"), "{no_seq}");
    let garbage = pub_ack(b"+OK").unwrap_err();
    assert!(garbage.to_string().contains("not JSON"), "{garbage}");
}

#[test]
fn an_api_reply_is_its_json_unless_it_reports_an_error() {
    let created = br#"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"bench","subjects":["bench"],"storage":"file"},"did_create":true}"#;
    let value = api_reply(created).unwrap();
    assert_eq!(value["did_create"], true);
    assert_eq!(value["config"]["storage"], "file");

    let refused = br#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"#;
    assert_eq!(
        api_reply(refused).unwrap_err().to_string(),
        "nats-server refused the request: stream name already in use with a different \
         configuration (code 400, err_code 10058)"
    );
    let bare = api_reply(br#"{"error":{"code":500}}"#).unwrap_err();
    assert_eq!(
        bare.to_string(),
        "nats-server refused the request: none (code 500, err_code none)"
    );
    assert!(api_reply(b"{\"type\":").is_err());
}
