//! Golden files: each example frame's bytes are fixed in `golden/*.hex` and quoted in
//! `PROTOCOL.md`, so neither the encoder nor the document can drift from the other.

mod common;

use std::path::{Path, PathBuf};

use common::{hex, unhex};
use mbus_proto::{
    AckAction, AckRanges, Batch, BatchBuilder, DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame,
    GroupOptions, GroupStats, PROTOCOL_VERSION, Role, Start, check, decode,
};

/// 2026-12-02T10:00:00Z, the time of the examples.
const TIME: u64 = 1_796_205_600_000;

/// The batch of the batch examples: two messages, the second with a header; in a delivery the
/// second was stored 3 ms after the first.
fn two_messages(deliver: bool) -> &'static BatchBuilder {
    let mut b = BatchBuilder::new();
    b.push(b"first order", &[]).unwrap();
    let headers: [(&str, &[u8]); 1] = [("trace-id", b"7f3a")];
    b.push_at(if deliver { 3 } else { 0 }, b"second order", &headers)
        .unwrap();
    Box::leak(Box::new(b))
}

/// The examples: file name (without `.hex`) and frame.
fn examples() -> Vec<(&'static str, Frame<'static>)> {
    vec![
        (
            "hello-producer",
            Frame::Hello {
                version: PROTOCOL_VERSION,
                role: Role::Producer,
                token: None,
            },
        ),
        (
            "hello-consumer-token",
            Frame::Hello {
                version: PROTOCOL_VERSION,
                role: Role::Consumer,
                token: Some("s3cret"),
            },
        ),
        (
            "welcome",
            Frame::Welcome {
                version: PROTOCOL_VERSION,
                max_frame: DEFAULT_MAX_FRAME,
                idle_timeout: 60_000,
            },
        ),
        (
            "publish-orders",
            Frame::publish("orders", b"look ma! a new order"),
        ),
        (
            "publish-batch",
            Frame::Publish {
                topic: "orders",
                batch: two_messages(false).batch().unwrap(),
            },
        ),
        ("confirm-1", Frame::Confirm { count: 1 }),
        ("confirm-1000", Frame::Confirm { count: 1000 }),
        (
            "subscribe-earliest",
            Frame::Subscribe {
                topic: "orders",
                start: Start::Earliest,
            },
        ),
        (
            "subscribe-latest",
            Frame::Subscribe {
                topic: "orders",
                start: Start::Latest,
            },
        ),
        (
            "subscribe-offset",
            Frame::Subscribe {
                topic: "orders",
                start: Start::Offset(1000),
            },
        ),
        (
            "subscribe-last",
            Frame::Subscribe {
                topic: "orders",
                start: Start::Last(10),
            },
        ),
        (
            "subscribe-time",
            Frame::Subscribe {
                topic: "orders",
                start: Start::Time(TIME),
            },
        ),
        (
            "subscribed",
            Frame::Subscribed {
                topic: "orders",
                offset: 0,
                first: 0,
                next: 2,
            },
        ),
        ("unsubscribe", Frame::Unsubscribe { topic: "orders" }),
        (
            "deliver-orders",
            Frame::Deliver {
                topic: "orders",
                offset: 0,
                time: TIME,
                batch: Batch::one(b"look ma! a new order"),
            },
        ),
        (
            "deliver-batch",
            Frame::Deliver {
                topic: "orders",
                offset: 5,
                time: TIME,
                batch: two_messages(true).batch().unwrap(),
            },
        ),
        (
            "gap",
            Frame::Gap {
                topic: "orders",
                from: 5,
                to: 300,
            },
        ),
        (
            "error-invalid-topic",
            Frame::Error {
                code: ErrorCode::InvalidTopic,
                reason: "topic name is empty",
            },
        ),
        ("ping", Frame::Ping),
        ("pong", Frame::Pong),
        (
            "join",
            Frame::Join {
                topic: "jobs",
                group: "workers",
                start: Start::Earliest,
                credit: 100,
                options: GroupOptions::default(),
            },
        ),
        (
            "joined",
            Frame::Joined {
                topic: "jobs",
                group: "workers",
                floor: 40,
                next: 42,
                end: 50,
                options: GroupOptions {
                    ack_wait: 30_000,
                    max_deliver: 5,
                    max_ack_pending: 1000,
                    dead_letter: Some("jobs.dlq"),
                },
            },
        ),
        (
            "leave",
            Frame::Leave {
                topic: "jobs",
                group: "workers",
            },
        ),
        (
            "ack",
            Frame::Ack {
                topic: "jobs",
                group: "workers",
                action: AckAction::Ack,
                delay: 0,
                ranges: ack_ranges(&[40, 41, 42, 45]),
            },
        ),
        (
            "nak-delay",
            Frame::Ack {
                topic: "jobs",
                group: "workers",
                action: AckAction::Nak,
                delay: 5000,
                ranges: ack_ranges(&[43]),
            },
        ),
        (
            "assign",
            Frame::Assign {
                topic: "jobs",
                group: "workers",
                attempt: 2,
                first: 43,
                count: 1,
            },
        ),
        (
            "group-info",
            Frame::GroupInfo {
                topic: "jobs",
                group: "workers",
            },
        ),
        (
            "group-state",
            Frame::GroupState {
                topic: "jobs",
                group: "workers",
                state: GroupStats {
                    exists: true,
                    members: 2,
                    floor: 43,
                    next: 46,
                    in_flight: 1,
                    waiting: 1,
                    redelivered: 1,
                    dead_lettered: 0,
                    lost: 0,
                },
            },
        ),
        (
            "identify",
            Frame::Identify {
                producer: "web-1.4242",
                sequence: 1001,
            },
        ),
        (
            "identified",
            Frame::Identified {
                producer: "web-1.4242",
                sequence: 1001,
            },
        ),
    ]
}

/// The ack ranges of `offsets`, consecutive ones merged.
fn ack_ranges(offsets: &[u64]) -> AckRanges<'static> {
    let mut buf = Vec::new();
    for &o in offsets {
        AckRanges::push(&mut buf, o);
    }
    AckRanges::new(Box::leak(buf.into_boxed_slice())).unwrap()
}

/// The frame in Rust debug form, with payloads written as byte strings so that people can
/// read them: a message is its payload, or `(delta, payload, [headers])` when it has a delta or
/// headers.
fn describe(frame: &Frame<'_>) -> String {
    match *frame {
        Frame::Publish { topic, batch } => format!(
            "Frame::Publish {{ topic: {topic:?}, batch: {} }}",
            describe_batch(batch)
        ),
        Frame::Deliver {
            topic,
            offset,
            time,
            batch,
        } => format!(
            "Frame::Deliver {{ topic: {topic:?}, offset: {offset}, time: {time}, batch: {} }}",
            describe_batch(batch)
        ),
        Frame::Ack {
            topic,
            group,
            action,
            delay,
            ranges,
        } => format!(
            "Frame::Ack {{ topic: {topic:?}, group: {group:?}, action: {action:?}, \
             delay: {delay}, ranges: {:?} }}",
            ranges.iter().collect::<Vec<_>>()
        ),
        _ => format!("Frame::{frame:?}"),
    }
}

fn describe_batch(batch: Batch<'_>) -> String {
    let messages: Vec<String> = batch
        .iter()
        .map(|m| {
            let data = format!("b\"{}\"", m.data.escape_ascii());
            if m.delta == 0 && m.headers.is_empty() {
                return data;
            }
            let headers: Vec<String> = m
                .headers
                .iter()
                .map(|(name, value)| format!("({name:?}, b\"{}\")", value.escape_ascii()))
                .collect();
            format!("({}, {data}, [{}])", m.delta, headers.join(", "))
        })
        .collect();
    format!("[{}]", messages.join(", "))
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// The first line (the comment) and the bytes of a golden file.
fn read_golden(name: &str) -> (String, Vec<u8>) {
    let path = golden_dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let comment = lines.next().unwrap_or_default().to_owned();
    let body: Vec<&str> = lines.filter(|l| !l.starts_with('#')).collect();
    (comment, unhex(&body.join("\n")))
}

/// With `MBUS_BLESS=1`, writes every golden file from the encoder first: for a change of the
/// protocol, whose new bytes a person then reads in the diff.
fn bless() {
    if std::env::var_os("MBUS_BLESS").is_none() {
        return;
    }
    for (name, frame) in examples() {
        let path = golden_dir().join(format!("{name}.hex"));
        let text = format!("# {}\n{}\n", describe(&frame), hex(&frame.to_bytes()));
        std::fs::write(&path, text).unwrap();
    }
}

#[test]
fn encoding_matches_the_golden_files() {
    bless();
    for (name, frame) in examples() {
        let (_, golden) = read_golden(name);
        assert_eq!(
            hex(&frame.to_bytes()),
            hex(&golden),
            "{name}.hex differs from the encoder"
        );
    }
}

#[test]
fn golden_files_decode_to_their_frames() {
    for (name, frame) in examples() {
        let (_, golden) = read_golden(name);
        assert_eq!(
            decode(&golden, DEFAULT_MAX_FRAME),
            Ok(Some((frame, golden.len()))),
            "{name}.hex"
        );
    }
}

#[test]
fn golden_files_start_with_a_comment_naming_the_frame() {
    for (name, frame) in examples() {
        let (comment, _) = read_golden(name);
        assert_eq!(comment, format!("# {}", describe(&frame)), "{name}.hex");
    }
}

fn protocol_document() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../PROTOCOL.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn protocol_document_quotes_every_golden_frame() {
    let doc = protocol_document();
    for (name, _) in examples() {
        let (_, golden) = read_golden(name);
        let line = hex(&golden);
        assert!(
            doc.contains(&line),
            "PROTOCOL.md does not quote {name}.hex:\n{line}"
        );
    }
}

#[test]
fn every_golden_file_is_an_example_and_every_kind_has_one() {
    let mut on_disk: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = examples()
        .iter()
        .map(|(name, _)| format!("{name}.hex"))
        .collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "golden/ holds a file no test reads, or lacks one"
    );

    let mut kinds: Vec<u8> = examples().iter().map(|(_, f)| f.kind()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds, (1..=21).collect::<Vec<u8>>());
}

#[test]
fn every_frame_in_the_protocol_document_is_exact() {
    // The session walkthroughs show frames that are not golden files; a line of nothing but hex
    // bytes must still be one whole frame with a right length prefix, in the encoder's form.
    let doc = protocol_document();
    let mut lines = 0;
    for line in doc.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let is_hex = words.len() >= 4
            && words
                .iter()
                .all(|w| w.len() == 2 && w.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_hex {
            continue;
        }
        lines += 1;
        let bytes = unhex(line);
        assert_eq!(
            check(&bytes, DEFAULT_MAX_FRAME),
            Ok(Some(bytes.len())),
            "{line}"
        );
        match decode(&bytes, DEFAULT_MAX_FRAME) {
            Ok(Some((frame, _))) => assert_eq!(hex(&frame.to_bytes()), line, "not canonical"),
            // The refused-handshake example: a Hello of a version this side does not speak.
            Err(DecodeError::UnsupportedVersion(1)) => {}
            other => panic!("{line}: {other:?}"),
        }
    }
    assert!(lines >= examples().len(), "only {lines} frame lines found");
}

fn transcripts() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("transcripts");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_transcript_frame_is_what_the_encoder_writes_and_its_comment_names() {
    let all = transcripts();
    assert_eq!(
        all.len(),
        7,
        "the sessions of PROTOCOL.md sections 11, 12 and 13"
    );
    for (name, text) in all {
        for step in mbus_proto::transcript::parse(&text).unwrap() {
            let Some(bytes) = step.bytes.clone() else {
                continue;
            };
            match decode(&bytes, DEFAULT_MAX_FRAME) {
                Ok(Some((mut frame, used))) => {
                    assert_eq!(used, bytes.len(), "{name}: {}", step.comment);
                    // The `??` of a delivery are its time, which the broker stamps: any time
                    // after 2004 is written in those nine bytes, as this one is.
                    let mut named = describe(&frame);
                    if let (Frame::Deliver { time, .. }, false) = (&mut frame, step.any.is_empty())
                    {
                        *time = TIME;
                        named = named.replace("time: 0,", "time: any,");
                    }
                    assert!(step.matches(&frame.to_bytes()), "{name}: {}", step.comment);
                    let named = named.strip_prefix("Frame::").unwrap_or(&named);
                    assert!(
                        step.comment.contains(named),
                        "{name}: {:?} does not name {named}",
                        step.comment
                    );
                }
                // The one frame of another version, which is what its session is about.
                Err(DecodeError::UnsupportedVersion(1)) => {
                    assert!(step.comment.contains("version 1"), "{name}")
                }
                other => panic!("{name}: {}: {other:?}", step.comment),
            }
        }
    }
}

#[test]
fn protocol_document_quotes_every_transcript_whole() {
    let doc = protocol_document();
    for (name, text) in transcripts() {
        assert!(
            doc.contains(&format!("```text\n{text}```")),
            "PROTOCOL.md does not quote transcripts/{name} whole"
        );
    }
}
