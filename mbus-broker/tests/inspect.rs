//! What the core shows monitoring, exactly: a consumer that was sent 400 of 1,000 messages is
//! at offset 400 with a lag of 600, and the counters say what passed.

mod support;

use std::io::{self, Write};

use mbus_proto::{Frame, Start};
use support::Harness;

/// A socket that takes `room` bytes and then would block.
struct Room(usize);

impl Write for Room {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.0);
        self.0 -= n;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs {
            match self.write(buf) {
                Ok(n) => total += n,
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_consumer_sent_400_of_1000_messages_lags_600() {
    let mut h = Harness::new();
    let p = h.producer();
    for i in 0..1000u32 {
        h.publish(p, "t", &i.to_be_bytes());
    }
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Subscribe {
            topic: "t",
            start: Start::Earliest,
        },
    );
    let subscribed = Frame::Subscribed {
        topic: "t",
        offset: 0,
        first: 0,
        next: 1000,
    }
    .to_bytes()
    .len();
    let deliver = Frame::Deliver {
        topic: "t",
        offset: 0,
        time: 0,
        batch: mbus_proto::Batch::one(&[0; 4]),
    }
    .to_bytes()
    .len();
    // Offsets below 128 encode in one byte, up to 255 in two (uint 8), the rest in three.
    let sent = subscribed + 128 * deliver + 128 * (deliver + 1) + (400 - 256) * (deliver + 2);
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    let mut sink = Room(sent);
    while !matches!(
        h.core.write(c, &mut sink),
        Ok(mbus_broker::engine::Progress::Blocked)
    ) {}

    let topic = &h.core.topic_infos()[0];
    assert_eq!((topic.first, topic.next), (0, 1000));
    assert_eq!(topic.subscribers.len(), 1);
    assert_eq!(topic.subscribers[0].position, 400);
    assert_eq!(topic.subscribers[0].lag, 600);
    let counters = h.core.counters();
    assert_eq!(counters.delivered, 400);
    assert_eq!(counters.published_bytes, 4000);
    let conn = h
        .core
        .conn_infos()
        .into_iter()
        .find(|info| info.id == c)
        .unwrap();
    let welcome = Frame::Welcome {
        version: mbus_proto::PROTOCOL_VERSION,
        max_frame: mbus_proto::DEFAULT_MAX_FRAME,
        idle_timeout: 60_000,
    }
    .to_bytes()
    .len();
    assert_eq!(conn.bytes_out, (welcome + sent) as u64);
    assert_eq!(conn.subscriptions, [("t".to_owned(), 400)]);
}

#[test]
fn a_deleted_topic_leaves_no_trace_in_views_counts_or_memory() {
    use mbus_broker::engine::admin::DeleteError;
    let mut h = Harness::new();
    let p = h.producer();
    for topic in ["a", "b"] {
        for _ in 0..10 {
            h.publish(p, topic, &[7; 100]);
        }
    }
    let held = h.core.stats().memory_held;
    assert!(matches!(
        h.core.delete_topic("nope", false),
        Err(DeleteError::NotFound(_))
    ));
    h.core.delete_topic("a", false).unwrap();
    let stats = h.core.stats();
    assert_eq!(stats.topics, 1);
    assert!(stats.memory_held < held, "its memory is given back");
    let names: Vec<String> = h.core.topic_infos().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["b"]);
    // The producer that published to it last publishes to a new topic of that name.
    h.publish(p, "a", b"new");
    assert_eq!(h.core.topic_range("a"), Some(0..1));
    assert_eq!(h.core.message("a", 0), Some(&b"new"[..]));
    assert_eq!(h.core.stats().topics, 2);
}
