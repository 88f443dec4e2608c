//! Fuzzes the broker core: a sequence of frames, raw bytes, partial writes, closes and clock
//! ticks from several fake connections, consumer groups among them, in memory or on the
//! in-memory storage with commits, storage faults and crash-restarts, must never panic, and
//! every byte the core writes must decode.

#![no_main]

use std::io::Write;
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mbus_broker::BrokerConfig;
use mbus_broker::engine::memlog::Retention;
use mbus_broker::engine::storage::Storage;
use mbus_broker::engine::{ConnId, Core, CoreConfig, Progress};
use mbus_broker::store::memory::{Crash, Op as StorageOp};
use mbus_broker::store::{Fsync, MemoryStorage};
use mbus_proto::{Frame, Role, Start, decode};

/// The time of day the core is told at the start, 2026-12-02T10:00:00Z; ticks move it on.
const WALL: u64 = 1_796_205_600_000;
#[derive(Debug, Arbitrary)]
enum Op {
    Open {
        producer: bool,
        hello: bool,
    },
    Hello {
        conn: u8,
        producer: bool,
        version: u8,
    },
    Publish {
        conn: u8,
        topic: u8,
        len: u8,
        /// More messages in the same batch, every other one with a header.
        more: u8,
    },
    Subscribe {
        conn: u8,
        topic: u8,
        start: Option<u8>,
        latest: bool,
        /// The last N, or a time: `Some((true, n))` is `Last(n)`, `Some((false, t))` a time
        /// `t` seconds after the epoch the wall clock starts at.
        recent: Option<(bool, u8)>,
    },
    Unsubscribe {
        conn: u8,
        topic: u8,
    },
    /// Joins group `g` or `h` of a topic with a small credit and settings.
    Join {
        conn: u8,
        topic: u8,
        second: bool,
        credit: u8,
        ack_wait_ms: u16,
        max_deliver: u8,
    },
    /// Acks, naks, progresses or terms `count` offsets from `first`.
    Ack {
        conn: u8,
        topic: u8,
        action: u8,
        first: u8,
        count: u8,
        delay_ms: u16,
    },
    Leave {
        conn: u8,
        topic: u8,
    },
    GroupInfo {
        conn: u8,
        topic: u8,
    },
    /// Names the producer `p0` to `p3`, starting a session (`sequence` 0) or resuming one.
    Identify {
        conn: u8,
        producer: u8,
        sequence: u8,
    },
    Ping {
        conn: u8,
    },
    Bytes {
        conn: u8,
        bytes: Vec<u8>,
    },
    Write {
        conn: u8,
        room: u16,
    },
    Close {
        conn: u8,
    },
    Tick {
        secs: u8,
    },
    /// The end of an event-loop turn: the group commit.
    Commit,
    /// The next call of one kind to the storage fails.
    Fault {
        op: u8,
    },
    /// The broker dies and restarts on what its storage kept.
    Crash {
        power_loss: bool,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Keep topics in the in-memory storage with this fsync policy, or in memory only.
    durable: Option<u8>,
    ops: Vec<Op>,
}

fn start(config: &CoreConfig, storage: Option<&MemoryStorage>, now: Instant) -> Core {
    let storage = storage.map(|s| Box::new(s.clone()) as Box<dyn Storage>);
    Core::start(config.clone(), storage, now).expect("memory storage lists its topics")
}

const TOPICS: [&str; 4] = ["a", "b", "c", "bad topic"];

struct Sink {
    taken: Vec<u8>,
    room: usize,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.taken.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|input: Input| {
    let config = CoreConfig {
        retention: Retention {
            max_bytes: 2048,
            max_messages: 16,
            segment_bytes: 256,
        },
        max_control_bytes: 1024,
        ..BrokerConfig::default().core()
    };
    let mut now = Instant::now();
    let started = now;
    let storage = input.durable.map(|policy| {
        let fsync = [Fsync::Always, Fsync::Batch, Fsync::Never][usize::from(policy) % 3];
        MemoryStorage::new(fsync, 4096)
    });
    let mut core = start(&config, storage.as_ref(), now);
    core.set_wall_clock(WALL);
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut conns: Vec<(ConnId, Vec<u8>)> = Vec::new();
    let mut ready = Vec::new();
    for op in input.ops {
        let pick = |conns: &[(ConnId, Vec<u8>)], c: u8| {
            (!conns.is_empty()).then(|| usize::from(c) % conns.len())
        };
        match op {
            Op::Open { producer, hello } => {
                let role = if producer {
                    Role::Producer
                } else {
                    Role::Consumer
                };
                let id = core.open(role, peer);
                if hello {
                    core.receive(
                        id,
                        Frame::Hello {
                            version: mbus_proto::PROTOCOL_VERSION,
                            role,
                            token: None,
                        },
                    );
                }
                conns.push((id, Vec::new()));
            }
            Op::Tick { secs } => {
                now += Duration::from_secs(u64::from(secs));
                core.set_wall_clock(WALL + (now - started).as_millis() as u64);
                core.handle_timeout(now);
                let mut expired = Vec::new();
                core.take_expired(&mut expired);
                for id in expired {
                    core.close(id);
                    conns.retain(|c| c.0 != id);
                }
            }
            Op::Commit => core.commit(),
            Op::Fault { op } => {
                if let Some(storage) = &storage {
                    let ops = [
                        StorageOp::Open,
                        StorageOp::Append,
                        StorageOp::Commit,
                        StorageOp::Sync,
                        StorageOp::Read,
                    ];
                    storage.fail_next(ops[usize::from(op) % ops.len()], 1);
                }
            }
            Op::Crash { power_loss } => {
                if let Some(storage) = &storage {
                    conns.clear();
                    // The old core goes first, as the process it stands for does.
                    drop(std::mem::replace(&mut core, Core::new(config.clone(), now)));
                    storage.crash(if power_loss {
                        Crash::PowerLoss
                    } else {
                        Crash::Process
                    });
                    core = start(&config, Some(storage), now);
                    core.set_wall_clock(WALL + (now - started).as_millis() as u64);
                }
            }
            Op::Close { conn } => {
                if let Some(i) = pick(&conns, conn) {
                    core.close(conns.remove(i).0);
                }
            }
            Op::Hello {
                conn,
                producer,
                version,
            } => {
                if let Some(i) = pick(&conns, conn) {
                    let role = if producer {
                        Role::Producer
                    } else {
                        Role::Consumer
                    };
                    let _ = version;
                    core.receive(
                        conns[i].0,
                        Frame::Hello {
                            version: mbus_proto::PROTOCOL_VERSION,
                            role,
                            token: None,
                        },
                    );
                }
            }
            Op::Publish {
                conn,
                topic,
                len,
                more,
            } => {
                if let Some(i) = pick(&conns, conn) {
                    let data = vec![len; usize::from(len)];
                    let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                    let mut batch = mbus_proto::BatchBuilder::new();
                    for k in 0..=more % 4 {
                        let headers: &[(&str, &[u8])] =
                            if k % 2 == 1 { &[("h", b"v")] } else { &[] };
                        batch.push(&data, headers).expect("within the limits");
                    }
                    let batch = batch.batch().expect("a message");
                    core.receive(conns[i].0, Frame::Publish { topic, batch });
                }
            }
            Op::Subscribe {
                conn,
                topic,
                start,
                latest,
                recent,
            } => {
                if let Some(i) = pick(&conns, conn) {
                    let start = match (recent, start, latest) {
                        (Some((true, n)), _, _) => Start::Last(u64::from(n)),
                        (Some((false, t)), _, _) => Start::Time(WALL + 1000 * u64::from(t)),
                        (None, Some(o), _) => Start::Offset(u64::from(o)),
                        (None, None, true) => Start::Latest,
                        (None, None, false) => Start::Earliest,
                    };
                    let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                    core.receive(conns[i].0, Frame::Subscribe { topic, start });
                }
            }
            Op::Unsubscribe { conn, topic } => {
                if let Some(i) = pick(&conns, conn) {
                    let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                    core.receive(conns[i].0, Frame::Unsubscribe { topic });
                }
            }
            Op::Join {
                conn,
                topic,
                second,
                credit,
                ack_wait_ms,
                max_deliver,
            } => {
                if let Some(i) = pick(&conns, conn) {
                    let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                    let options = mbus_proto::GroupOptions {
                        ack_wait: u64::from(ack_wait_ms),
                        max_deliver: u32::from(max_deliver % 8),
                        ..mbus_proto::GroupOptions::default()
                    };
                    let frame = Frame::Join {
                        topic,
                        group: if second { "h" } else { "g" },
                        start: Start::Earliest,
                        credit: u32::from(credit % 16),
                        options,
                    };
                    core.receive(conns[i].0, frame);
                }
            }
            Op::Ack {
                conn,
                topic,
                action,
                first,
                count,
                delay_ms,
            } => {
                if let Some(i) = pick(&conns, conn) {
                    let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                    let mut ranges = Vec::new();
                    for o in 0..=u64::from(count % 32) {
                        mbus_proto::AckRanges::push(&mut ranges, u64::from(first) + o);
                    }
                    let action = mbus_proto::AckAction::from_u8(action % 4).expect("0 to 3");
                    let frame = Frame::Ack {
                        topic,
                        group: "g",
                        action,
                        delay: u64::from(delay_ms),
                        ranges: mbus_proto::AckRanges::new(&ranges).expect("pushed"),
                    };
                    core.receive(conns[i].0, frame);
                }
            }
            Op::Leave { conn, topic } => {
                if let Some(i) = pick(&conns, conn) {
                    let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                    core.receive(conns[i].0, Frame::Leave { topic, group: "g" });
                }
            }
            Op::GroupInfo { conn, topic } => {
                if let Some(i) = pick(&conns, conn) {
                    let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                    core.receive(conns[i].0, Frame::GroupInfo { topic, group: "g" });
                }
            }
            Op::Identify {
                conn,
                producer,
                sequence,
            } => {
                if let Some(i) = pick(&conns, conn) {
                    let producer = format!("p{}", producer % 4);
                    let frame = Frame::Identify {
                        producer: &producer,
                        sequence: u64::from(sequence),
                    };
                    core.receive(conns[i].0, frame);
                }
            }
            Op::Ping { conn } => {
                if let Some(i) = pick(&conns, conn) {
                    core.receive(conns[i].0, Frame::Ping);
                }
            }
            Op::Bytes { conn, bytes } => {
                if let Some(i) = pick(&conns, conn) {
                    match decode(&bytes, 1 << 20) {
                        Ok(Some((frame, _))) => core.receive(conns[i].0, frame),
                        Ok(None) => {}
                        Err(e) => core.decode_error(conns[i].0, &e),
                    }
                }
            }
            Op::Write { conn, room } => {
                if let Some(i) = pick(&conns, conn) {
                    core.take_ready(&mut ready);
                    ready.clear();
                    let id = conns[i].0;
                    core.writable(id);
                    let mut sink = Sink {
                        taken: Vec::new(),
                        room: usize::from(room),
                    };
                    let progress = core.write(id, &mut sink).unwrap();
                    conns[i].1.extend_from_slice(&sink.taken);
                    if progress == Progress::Drained && core.is_closing(id) {
                        core.close(id);
                        check(&conns.remove(i).1);
                    }
                }
            }
        }
    }
    for (id, mut stream) in conns {
        core.writable(id);
        let mut sink = Sink {
            taken: Vec::new(),
            room: usize::MAX,
        };
        while core.write(id, &mut sink).unwrap() != Progress::Drained {}
        stream.extend_from_slice(&sink.taken);
        check(&stream);
    }
});

/// Every byte the core wrote decodes as whole frames.
fn check(mut stream: &[u8]) {
    while let Some((_, n)) = decode(stream, u32::MAX).expect("core output decodes") {
        stream = &stream[n..];
    }
    assert!(stream.is_empty(), "output ends on a frame boundary");
}
