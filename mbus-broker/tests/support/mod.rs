//! Helpers shared by the broker's tests: an in-memory harness around the core and owned frames.

#![allow(dead_code)]

pub mod group;
pub mod net;
pub mod process;

use std::io::{self, Write};
use std::net::SocketAddr;

use mbus_broker::BrokerConfig;
use mbus_broker::engine::{ConnId, Core, CoreConfig, Progress};
use mbus_proto::{DEFAULT_MAX_FRAME, ErrorCode, Frame, PROTOCOL_VERSION, Role, decode};

/// A frame as a test wants to compare it: owning its strings and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Welcome {
        max_frame: u32,
    },
    Confirm(u64),
    Subscribed {
        topic: String,
        offset: u64,
    },
    Deliver {
        topic: String,
        offset: u64,
        data: Vec<u8>,
    },
    Gap {
        topic: String,
        from: u64,
        to: u64,
    },
    Error {
        code: ErrorCode,
        reason: String,
    },
    Pong,
    /// The number of the connection's first publish.
    Identified(u64),
    Other(String),
}

impl From<Frame<'_>> for Owned {
    fn from(f: Frame<'_>) -> Self {
        match f {
            Frame::Welcome { max_frame, .. } => Owned::Welcome { max_frame },
            Frame::Confirm { count } => Owned::Confirm(count),
            // Where the topic was at the moment is checked apart, by the tests about it.
            Frame::Subscribed { topic, offset, .. } => Owned::Subscribed {
                topic: topic.into(),
                offset,
            },
            // A delivery of one message; `frames` splits longer runs.
            Frame::Deliver {
                topic,
                offset,
                batch,
                ..
            } if batch.len() == 1 => Owned::Deliver {
                topic: topic.into(),
                offset,
                data: batch.split_first().0.data.into(),
            },
            Frame::Gap { topic, from, to } => Owned::Gap {
                topic: topic.into(),
                from,
                to,
            },
            Frame::Error { code, reason } => Owned::Error {
                code,
                reason: reason.into(),
            },
            Frame::Pong => Owned::Pong,
            Frame::Identified { sequence, .. } => Owned::Identified(sequence),
            Frame::Ping => Owned::Other("Ping".into()),
            other => Owned::Other(format!("{other:?}")),
        }
    }
}

/// Splits a byte stream into owned frames, a delivery of several messages into one
/// `Owned::Deliver` each; panics on an incomplete tail or bad bytes.
pub fn frames(mut bytes: &[u8]) -> Vec<Owned> {
    let mut out = Vec::new();
    while let Some((frame, n)) = decode(bytes, u32::MAX).expect("broker output decodes") {
        match frame {
            Frame::Deliver {
                topic,
                offset,
                batch,
                ..
            } => out.extend(
                batch
                    .iter()
                    .zip(offset..)
                    .map(|(m, offset)| Owned::Deliver {
                        topic: topic.into(),
                        offset,
                        data: m.data.into(),
                    }),
            ),
            frame => out.push(frame.into()),
        }
        bytes = &bytes[n..];
    }
    assert!(
        bytes.is_empty(),
        "{} bytes of an incomplete frame",
        bytes.len()
    );
    out
}

/// A sink that takes at most `room` bytes, then reports `WouldBlock`, like a full socket.
pub struct Throttled {
    pub taken: Vec<u8>,
    pub room: usize,
}

impl Write for Throttled {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.taken.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The core with fake producers and consumers, driven step by step.
pub struct Harness {
    pub core: Core,
}

pub fn peer() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

impl Harness {
    pub fn new() -> Self {
        Harness::with(BrokerConfig::default().core())
    }

    pub fn with(config: CoreConfig) -> Self {
        Harness {
            core: Core::new(config, std::time::Instant::now()),
        }
    }

    /// A connection that has completed the handshake; its Welcome is consumed.
    pub fn connect(&mut self, role: Role) -> ConnId {
        let id = self.core.open(role, peer());
        self.core.receive(
            id,
            Frame::Hello {
                version: PROTOCOL_VERSION,
                role,
                token: None,
            },
        );
        assert_eq!(
            self.output(id),
            vec![Owned::Welcome {
                max_frame: DEFAULT_MAX_FRAME
            }]
        );
        id
    }

    pub fn producer(&mut self) -> ConnId {
        self.connect(Role::Producer)
    }

    pub fn consumer(&mut self) -> ConnId {
        self.connect(Role::Consumer)
    }

    pub fn publish(&mut self, id: ConnId, topic: &str, data: &[u8]) {
        self.core.receive(id, Frame::publish(topic, data));
    }

    /// Everything connection `id` is owed now, written to an unlimited sink.
    pub fn output(&mut self, id: ConnId) -> Vec<Owned> {
        let mut ready = Vec::new();
        self.core.take_ready(&mut ready);
        let mut sink = Vec::new();
        loop {
            match self.core.write(id, &mut sink).unwrap() {
                Progress::Drained => break,
                Progress::Budget => continue,
                Progress::Blocked => unreachable!("a Vec never blocks"),
            }
        }
        frames(&sink)
    }

    /// The offsets and payloads of the deliveries in `frames`, in order.
    pub fn deliveries(frames: &[Owned]) -> Vec<(String, u64, Vec<u8>)> {
        frames
            .iter()
            .filter_map(|f| match f {
                Owned::Deliver {
                    topic,
                    offset,
                    data,
                } => Some((topic.clone(), *offset, data.clone())),
                _ => None,
            })
            .collect()
    }
}
