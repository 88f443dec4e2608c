//! The client protocol without a socket: the handshake, control frames handled inside, what
//! each role may receive, and input split at every offset.

mod common;

use mbus_proto::client::{ClientProtocol, Incoming, ProtocolError};
use mbus_proto::{DecodeError, ErrorCode, Frame, PROTOCOL_VERSION, Role};

fn welcome() -> Vec<u8> {
    Frame::Welcome {
        version: PROTOCOL_VERSION,
        max_frame: 4096,
        idle_timeout: 60_000,
    }
    .to_bytes()
}

/// Hands `bytes` to the protocol in pieces of `step`, polling after each, and returns what it
/// handed out as owned (kind, topic, number, payload).
fn feed(client: &mut ClientProtocol, bytes: &[u8], step: usize) -> Vec<(String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for piece in bytes.chunks(step) {
        let space = client.read_space();
        space[..piece.len()].copy_from_slice(piece);
        client.filled(piece.len());
        loop {
            let was_open = client.is_open();
            let Some(incoming) = client.poll().unwrap() else {
                // The call that opened the connection stops there; the rest is for the next.
                if was_open || !client.is_open() {
                    break;
                }
                continue;
            };
            out.push(match incoming {
                Incoming::Confirm { count } => ("confirm".into(), count, vec![]),
                Incoming::Deliver {
                    topic,
                    offset,
                    batch,
                    ..
                } => (
                    client.text(topic).to_owned(),
                    offset,
                    client
                        .batch(batch)
                        .iter()
                        .flat_map(|m| m.data.iter().copied())
                        .collect(),
                ),
                Incoming::Subscribed { topic, offset, .. } => {
                    (format!("subscribed {}", client.text(topic)), offset, vec![])
                }
                Incoming::Gap { topic, from, to } => (
                    format!("gap {}", client.text(topic)),
                    from,
                    to.to_be_bytes().to_vec(),
                ),
                other => panic!("{other:?}"),
            });
        }
    }
    out
}

#[test]
fn the_hello_goes_first_and_the_welcome_opens_the_connection() {
    let mut client = ClientProtocol::new(Role::Producer, Some("s3cret"));
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
        role: Role::Producer,
        token: Some("s3cret"),
    }
    .to_bytes();
    assert_eq!(client.outbound(), &hello[..]);
    client.sent(hello.len());
    assert!(client.outbound().is_empty());
    assert!(!client.is_open());
    assert!(feed(&mut client, &welcome(), 1).is_empty());
    assert!(client.is_open());
    assert_eq!(client.max_frame(), 4096);
}

#[test]
fn deliveries_survive_being_split_at_every_offset_and_pings_are_answered() {
    let mut stream = welcome();
    Frame::Subscribed {
        topic: "t",
        offset: 7,
        first: 0,
        next: 0,
    }
    .encode(&mut stream);
    Frame::Ping.encode(&mut stream);
    for offset in 7..10u64 {
        Frame::Deliver {
            topic: "t",
            offset,
            time: 0,
            batch: mbus_proto::Batch::one(&vec![offset as u8; 300 * offset as usize]),
        }
        .encode(&mut stream);
    }
    Frame::Gap {
        topic: "t",
        from: 10,
        to: 12,
    }
    .encode(&mut stream);
    for step in 1..=stream.len() {
        let mut client = ClientProtocol::new(Role::Consumer, None);
        let hello_len = client.outbound().len();
        client.sent(hello_len);
        let got = feed(&mut client, &stream, step);
        assert_eq!(got.len(), 5, "split every {step} bytes");
        assert_eq!(got[0], ("subscribed t".into(), 7, vec![]));
        for (k, offset) in (7..10u64).enumerate() {
            assert_eq!(
                got[k + 1],
                (
                    "t".into(),
                    offset,
                    vec![offset as u8; 300 * offset as usize]
                )
            );
        }
        assert_eq!(got[4], ("gap t".into(), 10, 12u64.to_be_bytes().to_vec()));
        assert_eq!(
            client.outbound(),
            &Frame::Pong.to_bytes()[..],
            "the ping is answered"
        );
    }
}

#[test]
fn an_error_frame_is_a_refusal_before_and_after_the_welcome() {
    let error = Frame::Error {
        code: ErrorCode::Unauthorized,
        reason: "wrong token",
    }
    .to_bytes();
    for opened in [false, true] {
        let mut client = ClientProtocol::new(Role::Consumer, None);
        let mut bytes = if opened { welcome() } else { Vec::new() };
        bytes.extend_from_slice(&error);
        client.read_space()[..bytes.len()].copy_from_slice(&bytes);
        client.filled(bytes.len());
        if opened {
            assert_eq!(client.poll(), Ok(None), "the welcome");
        }
        assert_eq!(
            client.poll(),
            Err(ProtocolError::Refused {
                code: ErrorCode::Unauthorized,
                reason: "wrong token".into()
            })
        );
    }
}

#[test]
fn each_role_refuses_the_other_roles_frames_and_nothing_comes_before_the_welcome() {
    let confirm = Frame::Confirm { count: 1 }.to_bytes();
    let deliver = Frame::Deliver {
        topic: "t",
        offset: 0,
        time: 0,
        batch: mbus_proto::Batch::one(b"x"),
    }
    .to_bytes();
    let cases: [(Role, bool, &[u8], &str); 3] = [
        (Role::Consumer, true, &confirm, "Confirm"),
        (Role::Producer, true, &deliver, "Deliver"),
        (Role::Producer, false, &confirm, "Confirm"),
    ];
    for (role, opened, frame, name) in cases {
        let mut client = ClientProtocol::new(role, None);
        let mut bytes = if opened { welcome() } else { Vec::new() };
        bytes.extend_from_slice(frame);
        client.read_space()[..bytes.len()].copy_from_slice(&bytes);
        client.filled(bytes.len());
        if opened {
            assert_eq!(client.poll(), Ok(None));
        }
        assert_eq!(client.poll(), Err(ProtocolError::UnexpectedFrame(name)));
    }
}

#[test]
fn a_wrong_version_and_an_oversized_prefix_are_decode_errors() {
    let mut client = ClientProtocol::new(Role::Consumer, None);
    let bad = Frame::Welcome {
        version: PROTOCOL_VERSION + 1,
        max_frame: 4096,
        idle_timeout: 60_000,
    }
    .to_bytes();
    client.read_space()[..bad.len()].copy_from_slice(&bad);
    client.filled(bad.len());
    assert!(matches!(
        client.poll(),
        Err(ProtocolError::Decode(DecodeError::UnsupportedVersion(v))) if v == PROTOCOL_VERSION + 1
    ));
    let mut client = ClientProtocol::new(Role::Consumer, None);
    let mut bytes = welcome();
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    client.read_space()[..bytes.len()].copy_from_slice(&bytes);
    client.filled(bytes.len());
    assert_eq!(client.poll(), Ok(None));
    assert!(matches!(
        client.poll(),
        Err(ProtocolError::Decode(DecodeError::TooLarge { .. }))
    ));
}

#[test]
fn a_version_1_broker_refuses_this_client_cleanly() {
    // What a broker of protocol version 1 answers a version 2 Hello, byte for byte (the
    // refused-handshake transcript of version 1's PROTOCOL.md).
    let refusal = common::unhex(
        "00 00 00 40 93 0a 04 d9 3b 75 6e 73 75 70 70 6f 72 74 65 64 20 70 72 6f 74 6f 63 6f 6c \
         20 76 65 72 73 69 6f 6e 20 32 20 28 74 68 69 73 20 73 69 64 65 20 73 70 65 61 6b 73 20 \
         76 65 72 73 69 6f 6e 20 31 29",
    );
    let mut client = ClientProtocol::new(Role::Consumer, None);
    let space = client.read_space();
    space[..refusal.len()].copy_from_slice(&refusal);
    client.filled(refusal.len());
    match client.poll() {
        Err(ProtocolError::Refused { code, reason }) => {
            assert_eq!(code, mbus_proto::ErrorCode::UnsupportedVersion);
            assert!(reason.contains("speaks version 1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!client.is_open());
}
