//! Memory with messages of the largest size: retention frees what it drops, so the real
//! broker's resident memory stays near what retention keeps, however much passes through
//! (1 GiB of 1 MiB messages, read as they pass, through 128 MiB of retention).

mod support;

use std::io::Write;

use mbus_proto::{Frame, Role};
use support::Owned;
use support::net::Client;
use support::process::BrokerProcess;

const MIB: u64 = 1 << 20;
const MESSAGES: u64 = 1024;

#[test]
fn retained_max_frame_messages_stay_within_retention_plus_a_segment() {
    let retention = 128 * MIB;
    let broker = BrokerProcess::start(&["--retention-bytes", &retention.to_string()]);
    let before = broker.rss();
    // A consumer that reads everything as it passes, as most do.
    let mut c = Client::open(broker.consumers, Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "large",
        start: mbus_proto::Start::Earliest,
    });
    // It may fall behind retention and be told of a gap: it reads until it is at the end.
    let reader = std::thread::spawn(move || {
        let mut next = 0;
        while next < MESSAGES {
            match c.try_recv() {
                Ok(Some(Owned::Deliver { offset, .. })) => next = offset + 1,
                Ok(Some(Owned::Gap { to, .. })) => next = to,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        next
    });
    let mut p = Client::open(broker.producers, Role::Producer);
    // Just under the frame limit, so that every message gets a memory segment of its own.
    let data = vec![b'x'; (MIB - 64) as usize];
    let frame = Frame::publish("large", &data).to_bytes();
    for _ in 0..MESSAGES {
        p.stream.write_all(&frame).unwrap();
    }
    while p.recv() != Some(Owned::Confirm(MESSAGES)) {}
    assert_eq!(
        reader.join().unwrap(),
        MESSAGES,
        "the reader got every message"
    );
    let grown = broker.rss().saturating_sub(before);
    eprintln!(
        "{MESSAGES} messages of 1 MiB through {} MiB of retention: RSS grew {} MiB",
        retention / MIB,
        grown / MIB
    );
    // Retention, one segment being filled, the read buffers, and allocator slack.
    assert!(
        grown < retention + 8 * MIB,
        "RSS grew {} MiB with {} MiB of retention",
        grown / MIB,
        retention / MIB
    );
}
