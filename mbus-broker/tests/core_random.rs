//! Random sequences of frames, garbage, partial writes, closes and clock ticks from several fake
//! connections, fed to the core. Whatever happens, the core must not panic, every byte it writes
//! must decode, each consumer must see each topic in offset order with gaps announced, confirms
//! must only grow, and the logs must stay within retention.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mbus_broker::BrokerConfig;
use mbus_broker::engine::memlog::Retention;
use mbus_broker::engine::{ConnId, CoreConfig, Progress};
use mbus_proto::{Frame, Role, Start, decode};
use proptest::prelude::*;
use support::{Harness, Owned, Throttled, peer};

const TOPICS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    /// A producer or consumer connects; it says Hello (with its own role) unless the flag is off.
    Open(bool, bool),
    /// A Hello, again or late, with the right role or the wrong one.
    Hello(usize, bool),
    Publish(usize, usize, u16),
    Subscribe(usize, usize, Start),
    Unsubscribe(usize, usize),
    Ping(usize),
    Bytes(usize, Vec<u8>),
    Write(usize, u16),
    Close(usize),
    Tick(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let start = prop_oneof![
        Just(Start::Earliest),
        Just(Start::Latest),
        (0u64..120).prop_map(Start::Offset),
    ];
    prop_oneof![
        2 => (any::<bool>(), prop::bool::weighted(0.95)).prop_map(|(p, h)| Op::Open(p, h)),
        1 => (any::<usize>(), prop::bool::weighted(0.5)).prop_map(|(c, r)| Op::Hello(c, r)),
        10 => (any::<usize>(), 0..TOPICS.len(), 0u16..300).prop_map(|(c, t, n)| Op::Publish(c, t, n)),
        3 => (any::<usize>(), 0..TOPICS.len(), start).prop_map(|(c, t, s)| Op::Subscribe(c, t, s)),
        1 => (any::<usize>(), 0..TOPICS.len()).prop_map(|(c, t)| Op::Unsubscribe(c, t)),
        1 => any::<usize>().prop_map(Op::Ping),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 0..12)).prop_map(|(c, b)| Op::Bytes(c, b)),
        8 => (any::<usize>(), 0u16..2000).prop_map(|(c, n)| Op::Write(c, n)),
        1 => any::<usize>().prop_map(Op::Close),
        1 => (0u8..8).prop_map(Op::Tick),
    ]
}

/// What the test knows of one connection: its id and every byte the core wrote to it.
struct Peer {
    id: ConnId,
    role: Role,
    stream: Vec<u8>,
    open: bool,
    /// Topics subscribed to and not unsubscribed from since.
    subscribed: Vec<&'static str>,
}

fn config() -> CoreConfig {
    CoreConfig {
        retention: Retention {
            max_bytes: 2048,
            max_messages: 12,
            segment_bytes: 256,
        },
        max_control_bytes: 2048,
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        ..BrokerConfig::default().core()
    }
}

fn run(ops: Vec<Op>) {
    let start = Instant::now();
    let mut now = start;
    let mut h = Harness::with(config());
    h.core.handle_timeout(now);
    let mut peers: Vec<Peer> = Vec::new();
    let mut ready = Vec::new();
    for op in ops {
        let pick = |peers: &[Peer], i: usize| (!peers.is_empty()).then(|| i % peers.len());
        match op {
            Op::Open(producer, hello) => {
                let role = if producer {
                    Role::Producer
                } else {
                    Role::Consumer
                };
                let id = h.core.open(role, peer());
                if hello {
                    h.core.receive(
                        id,
                        Frame::Hello {
                            version: mbus_proto::PROTOCOL_VERSION,
                            role,
                            token: None,
                        },
                    );
                }
                peers.push(Peer {
                    id,
                    role,
                    stream: Vec::new(),
                    open: true,
                    subscribed: Vec::new(),
                });
            }
            Op::Close(i) => {
                if let Some(i) = pick(&peers, i) {
                    if peers[i].open {
                        h.core.close(peers[i].id);
                        peers[i].open = false;
                    }
                }
            }
            Op::Tick(secs) => {
                now += Duration::from_secs(u64::from(secs));
                h.core.handle_timeout(now);
                let mut expired = Vec::new();
                h.core.take_expired(&mut expired);
                for id in expired {
                    if let Some(p) = peers.iter_mut().find(|p| p.open && p.id == id) {
                        h.core.close(id);
                        p.open = false;
                    }
                }
            }
            op => {
                let i = match op {
                    Op::Hello(i, _)
                    | Op::Publish(i, _, _)
                    | Op::Subscribe(i, _, _)
                    | Op::Unsubscribe(i, _)
                    | Op::Ping(i)
                    | Op::Bytes(i, _)
                    | Op::Write(i, _) => i,
                    _ => unreachable!(),
                };
                // Publishes mostly go to producers and subscriptions to consumers; one in
                // sixteen goes to any connection, to try frames on the wrong port.
                let wants = match op {
                    Op::Publish(..) => Some(Role::Producer),
                    Op::Subscribe(..) | Op::Unsubscribe(..) => Some(Role::Consumer),
                    _ => None,
                };
                let Some(i) = (match wants {
                    Some(role) if i % 16 != 0 => {
                        let of_role: Vec<usize> = (0..peers.len())
                            .filter(|&k| peers[k].role == role)
                            .collect();
                        (!of_role.is_empty()).then(|| of_role[i % of_role.len()])
                    }
                    _ => pick(&peers, i),
                }) else {
                    continue;
                };
                let p = &mut peers[i];
                if !p.open {
                    continue;
                }
                match op {
                    Op::Hello(_, right) => {
                        let role = match (p.role, right) {
                            (r, true) => r,
                            (Role::Producer, false) => Role::Consumer,
                            (Role::Consumer, false) => Role::Producer,
                        };
                        h.core.receive(
                            p.id,
                            Frame::Hello {
                                version: mbus_proto::PROTOCOL_VERSION,
                                role,
                                token: None,
                            },
                        );
                    }
                    Op::Publish(_, t, len) => {
                        let topic = TOPICS[t];
                        let offset = h.core.topic_range(topic).map_or(0, |r| r.end);
                        let mut data = format!("{topic}:{offset}:").into_bytes();
                        data.resize(data.len() + usize::from(len), b'.');
                        h.core.receive(p.id, Frame::publish(topic, &data));
                    }
                    Op::Subscribe(_, t, start) => {
                        p.subscribed.push(TOPICS[t]);
                        h.core.receive(
                            p.id,
                            Frame::Subscribe {
                                topic: TOPICS[t],
                                start,
                            },
                        )
                    }
                    Op::Unsubscribe(_, t) => {
                        p.subscribed.retain(|&s| s != TOPICS[t]);
                        h.core
                            .receive(p.id, Frame::Unsubscribe { topic: TOPICS[t] })
                    }
                    Op::Ping(_) => h.core.receive(p.id, Frame::Ping),
                    Op::Bytes(_, bytes) => match decode(&bytes, 1 << 20) {
                        Ok(Some((frame, _))) => h.core.receive(p.id, frame),
                        Ok(None) => {}
                        Err(e) => h.core.decode_error(p.id, &e),
                    },
                    Op::Write(_, room) => {
                        h.core.take_ready(&mut ready);
                        ready.clear();
                        h.core.writable(p.id);
                        let mut sink = Throttled {
                            taken: Vec::new(),
                            room: usize::from(room),
                        };
                        let progress = h.core.write(p.id, &mut sink).unwrap();
                        p.stream.extend_from_slice(&sink.taken);
                        if progress == Progress::Drained && h.core.is_closing(p.id) {
                            h.core.close(p.id);
                            p.open = false;
                        }
                    }
                    _ => unreachable!(),
                }
            }
        }
        assert!(
            h.core.stored_bytes() <= TOPICS.len() * (2048 + 256 + 400),
            "retention holds: {} bytes",
            h.core.stored_bytes()
        );
    }
    // Drain what is still owed, then check every stream.
    h.core.take_ready(&mut ready);
    for p in &mut peers {
        if p.open {
            h.core.writable(p.id);
            let mut sink = Vec::new();
            while h.core.write(p.id, &mut sink).unwrap() != Progress::Drained {}
            p.stream.extend_from_slice(&sink);
        }
        let positions = check_stream(p);
        // Liveness: a consumer still connected has been brought up to the end of every topic
        // it subscribed to.
        if p.open && !h.core.is_closing(p.id) {
            for topic in &p.subscribed {
                if let (Some(&at), Some(range)) = (positions.get(*topic), h.core.topic_range(topic))
                {
                    assert!(
                        at >= range.end,
                        "{topic}: consumer at {at}, topic ends at {}",
                        range.end
                    );
                }
            }
        }
    }
}

/// Decodes a connection's whole output and checks it against the protocol's promises. Returns
/// each subscribed topic's next expected offset.
fn check_stream(p: &Peer) -> HashMap<String, u64> {
    let mut rest = &p.stream[..];
    let mut expected: HashMap<String, u64> = HashMap::new();
    let mut confirmed = 0;
    let mut errored = false;
    loop {
        let (frame, n) = match decode(rest, u32::MAX) {
            Ok(Some(x)) => x,
            Ok(None) => {
                assert!(
                    !p.open || rest.is_empty(),
                    "an open connection's output ends on a frame boundary"
                );
                break;
            }
            Err(e) => panic!("undecodable output: {e}"),
        };
        assert!(!errored, "nothing follows an Error");
        match Owned::from(frame) {
            Owned::Confirm(c) => {
                assert_eq!(p.role, Role::Producer);
                assert!(c > confirmed, "confirms only grow");
                confirmed = c;
            }
            Owned::Subscribed { topic, offset } => {
                expected.insert(topic, offset);
            }
            Owned::Gap { topic, from, to } => {
                let next = expected.get_mut(&topic).expect("gap on a subscribed topic");
                assert_eq!(from, *next, "a gap starts where delivery stood");
                assert!(to > from);
                *next = to;
            }
            Owned::Deliver {
                topic,
                offset,
                data,
            } => {
                let next = expected
                    .get_mut(&topic)
                    .expect("delivery on a subscribed topic");
                assert_eq!(
                    offset, *next,
                    "deliveries in offset order, none skipped silently"
                );
                assert!(data.starts_with(format!("{topic}:{offset}:").as_bytes()));
                *next += 1;
            }
            Owned::Error { .. } => errored = true,
            Owned::Welcome { .. } | Owned::Pong | Owned::Identified(_) | Owned::Other(_) => {}
        }
        rest = &rest[n..];
    }
    expected
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_traffic_keeps_every_promise(ops in prop::collection::vec(op(), 1..300)) {
        run(ops);
    }
}
