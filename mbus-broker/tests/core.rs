//! The broker core driven in memory, without sockets: handshake, publish and confirm, topics,
//! subscriptions, fan-out, retention and slow consumers.

mod support;

use mbus_broker::BrokerConfig;
use mbus_broker::engine::memlog::Retention;
use mbus_broker::engine::{ConnId, CoreConfig, Progress};
use mbus_proto::{ErrorCode, Frame, Role, Start};
use support::{Harness, Owned, Throttled, frames, peer};

fn small_retention(max_bytes: usize, max_messages: u64, segment_bytes: usize) -> CoreConfig {
    CoreConfig {
        retention: Retention {
            max_bytes,
            max_messages,
            segment_bytes,
        },
        ..BrokerConfig::default().core()
    }
}

fn subscribe(h: &mut Harness, id: ConnId, topic: &str, start: Start) {
    h.core.receive(id, Frame::Subscribe { topic, start });
}

#[test]
fn the_seed_message_is_stored_at_offset_0_and_confirmed() {
    let mut h = Harness::new();
    let p = h.producer();
    h.publish(p, "orders", b"look ma! a new order");
    assert_eq!(h.output(p), vec![Owned::Confirm(1)]);
    assert_eq!(h.core.topic_range("orders"), Some(0..1));
    assert_eq!(
        h.core.message("orders", 0),
        Some(&b"look ma! a new order"[..])
    );
}

#[test]
fn confirms_are_cumulative_and_coalesced() {
    let mut h = Harness::new();
    let p = h.producer();
    for i in 0..100u32 {
        h.publish(p, "t", &i.to_be_bytes());
    }
    assert_eq!(h.output(p), vec![Owned::Confirm(100)]);
    h.publish(p, "t", b"more");
    assert_eq!(h.output(p), vec![Owned::Confirm(101)]);
    assert_eq!(h.output(p), vec![], "nothing is owed twice");
    assert_eq!(h.core.topic_range("t"), Some(0..101));
}

#[test]
fn a_turn_writes_deliveries_before_confirms() {
    let mut h = Harness::new();
    let c = h.consumer();
    subscribe(&mut h, c, "t", Start::Latest);
    h.output(c);
    let p = h.producer();
    h.publish(p, "t", b"x");
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    assert_eq!(
        ready,
        vec![c, p],
        "the consumer's delivery, then the producer's confirm"
    );
}

#[test]
fn a_turn_lets_a_consumer_take_what_several_producers_brought() {
    let mut h = Harness::new();
    let budget = BrokerConfig::default().core().write_budget;
    let c = h.consumer();
    subscribe(&mut h, c, "t", Start::Latest);
    h.output(c);
    // Four producers bring four times the budget in one turn.
    let producers: Vec<_> = (0..4).map(|_| h.producer()).collect();
    let data = vec![7u8; budget / 16];
    for &p in &producers {
        for _ in 0..16 {
            h.publish(p, "t", &data);
        }
    }
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    let mut sink = Vec::new();
    assert_eq!(h.core.write(c, &mut sink).unwrap(), Progress::Drained);
    assert_eq!(Harness::deliveries(&frames(&sink)).len(), 64);

    // A turn that brought nothing leaves a consumer catching up to the budget alone.
    let late = h.consumer();
    subscribe(&mut h, late, "t", Start::Earliest);
    h.core.take_ready(&mut ready);
    let mut sink = Vec::new();
    assert_eq!(h.core.write(late, &mut sink).unwrap(), Progress::Budget);
    assert!(
        sink.len() >= budget && sink.len() < 2 * budget,
        "{}",
        sink.len()
    );
}

#[test]
fn each_topic_keeps_its_own_offsets() {
    let mut h = Harness::new();
    let p = h.producer();
    for i in 0..3 {
        h.publish(p, "a", format!("a{i}").as_bytes());
        h.publish(p, "b", format!("b{i}").as_bytes());
    }
    assert_eq!(h.core.topic_range("a"), Some(0..3));
    assert_eq!(h.core.message("b", 2), Some(&b"b2"[..]));
    assert_eq!(h.core.stats().topics, 2);
}

#[test]
fn a_frame_before_hello_is_refused() {
    let mut h = Harness::new();
    let p = h.core.open(Role::Producer, peer());
    h.publish(p, "t", b"x");
    let out = h.output(p);
    assert!(
        matches!(&out[..], [Owned::Error { code: ErrorCode::UnexpectedFrame, reason }] if reason.contains("Hello")),
        "{out:?}"
    );
    assert!(h.core.is_closing(p));
    assert_eq!(h.core.topic_range("t"), None, "nothing was stored");
}

#[test]
fn a_consumer_hello_on_the_producer_port_is_refused() {
    let mut h = Harness::new();
    let p = h.core.open(Role::Producer, peer());
    h.core.receive(
        p,
        Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Consumer,
            token: None,
        },
    );
    let out = h.output(p);
    assert!(
        matches!(&out[..], [Owned::Error { code: ErrorCode::UnexpectedFrame, reason }] if reason.contains("producer port")),
        "{out:?}"
    );
}

#[test]
fn a_consumer_frame_from_a_producer_is_refused_after_a_final_confirm() {
    let mut h = Harness::new();
    let p = h.producer();
    h.publish(p, "t", b"kept");
    h.core.receive(
        p,
        Frame::Subscribe {
            topic: "t",
            start: Start::Earliest,
        },
    );
    h.publish(p, "t", b"ignored after the error");
    let out = h.output(p);
    assert_eq!(out[0], Owned::Confirm(1));
    assert!(
        matches!(&out[1], Owned::Error { code: ErrorCode::UnexpectedFrame, reason } if reason.contains("Subscribe")),
        "{out:?}"
    );
    assert_eq!(out.len(), 2);
    assert_eq!(h.core.topic_range("t"), Some(0..1));
}

#[test]
fn an_invalid_topic_is_refused() {
    let mut h = Harness::new();
    let p = h.producer();
    h.publish(p, "bad topic", b"x");
    let out = h.output(p);
    assert!(
        matches!(&out[..], [Owned::Error { code: ErrorCode::InvalidTopic, reason }] if reason.contains("' '")),
        "{out:?}"
    );
    assert_eq!(h.core.stats().topics, 0);
}

#[test]
fn ping_is_answered() {
    let mut h = Harness::new();
    let c = h.consumer();
    h.core.receive(c, Frame::Ping);
    assert_eq!(h.output(c), vec![Owned::Pong]);
}

#[test]
fn fan_out_delivers_every_message_to_three_consumers_in_order() {
    let mut h = Harness::new();
    let consumers: Vec<_> = (0..3).map(|_| h.consumer()).collect();
    for &c in &consumers {
        subscribe(&mut h, c, "orders", Start::Earliest);
    }
    let p = h.producer();
    for i in 0..50u32 {
        h.publish(p, "orders", &i.to_le_bytes());
    }
    for &c in &consumers {
        let out = h.output(c);
        assert_eq!(
            out[0],
            Owned::Subscribed {
                topic: "orders".into(),
                offset: 0
            }
        );
        let got = Harness::deliveries(&out);
        let want: Vec<_> = (0..50u32)
            .map(|i| ("orders".to_string(), u64::from(i), i.to_le_bytes().to_vec()))
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn subscribing_before_the_topic_exists_delivers_what_comes_later() {
    let mut h = Harness::new();
    let c = h.consumer();
    subscribe(&mut h, c, "future", Start::Earliest);
    assert_eq!(
        h.output(c),
        vec![Owned::Subscribed {
            topic: "future".into(),
            offset: 0
        }]
    );
    let p = h.producer();
    h.publish(p, "future", b"now");
    assert_eq!(
        Harness::deliveries(&h.output(c)),
        vec![("future".into(), 0, b"now".to_vec())]
    );
}

#[test]
fn late_subscribers_start_at_earliest_latest_or_an_offset() {
    let mut h = Harness::new();
    let p = h.producer();
    for i in 0..10u8 {
        h.publish(p, "t", &[i]);
    }
    let starts = [
        (Start::Earliest, 0u64),
        (Start::Latest, 10),
        (Start::Offset(7), 7),
        (Start::Offset(12), 12),
    ];
    let consumers: Vec<_> = starts
        .iter()
        .map(|&(start, _)| {
            let c = h.consumer();
            subscribe(&mut h, c, "t", start);
            c
        })
        .collect();
    for i in 10..15u8 {
        h.publish(p, "t", &[i]);
    }
    for (&c, &(start, first)) in consumers.iter().zip(&starts) {
        let out = h.output(c);
        assert_eq!(
            out[0],
            Owned::Subscribed {
                topic: "t".into(),
                offset: first
            },
            "{start:?}"
        );
        let offsets: Vec<u64> = Harness::deliveries(&out).iter().map(|d| d.1).collect();
        assert_eq!(offsets, (first..15).collect::<Vec<_>>(), "{start:?}");
        for (_, offset, data) in Harness::deliveries(&out) {
            assert_eq!(data, vec![offset as u8]);
        }
    }
}

#[test]
fn a_consumer_that_reconnects_from_an_offset_continues_exactly_there() {
    let mut h = Harness::new();
    let p = h.producer();
    for i in 0..20u8 {
        h.publish(p, "t", &[i]);
    }
    let c = h.consumer();
    subscribe(&mut h, c, "t", Start::Earliest);
    let first = Harness::deliveries(&h.output(c));
    assert_eq!(first.len(), 20);
    h.core.close(c);
    for i in 20..25u8 {
        h.publish(p, "t", &[i]);
    }
    let c = h.consumer();
    subscribe(&mut h, c, "t", Start::Offset(20));
    let offsets: Vec<u64> = Harness::deliveries(&h.output(c))
        .iter()
        .map(|d| d.1)
        .collect();
    assert_eq!(offsets, (20..25).collect::<Vec<_>>());
}

#[test]
fn retention_drops_the_oldest_and_tells_a_lagging_consumer_the_gap() {
    let mut h = Harness::with(small_retention(1 << 20, 10, 256));
    let c = h.consumer();
    subscribe(&mut h, c, "t", Start::Earliest);
    assert_eq!(h.output(c).len(), 1);
    let p = h.producer();
    for i in 0..30u8 {
        h.publish(p, "t", &[i]);
    }
    assert_eq!(h.core.topic_range("t"), Some(20..30));
    let out = h.output(c);
    assert_eq!(
        out[0],
        Owned::Gap {
            topic: "t".into(),
            from: 0,
            to: 20
        }
    );
    let offsets: Vec<u64> = Harness::deliveries(&out).iter().map(|d| d.1).collect();
    assert_eq!(offsets, (20..30).collect::<Vec<_>>());
}

#[test]
fn an_explicit_offset_older_than_retention_starts_with_a_gap() {
    let mut h = Harness::with(small_retention(1 << 20, 5, 256));
    let p = h.producer();
    for i in 0..10u8 {
        h.publish(p, "t", &[i]);
    }
    let c = h.consumer();
    subscribe(&mut h, c, "t", Start::Offset(2));
    let out = h.output(c);
    assert_eq!(
        out[..2],
        [
            Owned::Subscribed {
                topic: "t".into(),
                offset: 2
            },
            Owned::Gap {
                topic: "t".into(),
                from: 2,
                to: 5
            }
        ]
    );
    assert_eq!(Harness::deliveries(&out).len(), 5);
}

#[test]
fn a_slow_consumer_resumes_mid_frame_and_never_slows_the_others() {
    let mut h = Harness::new();
    let slow = h.consumer();
    let fast = h.consumer();
    subscribe(&mut h, slow, "t", Start::Earliest);
    subscribe(&mut h, fast, "t", Start::Earliest);
    let p = h.producer();
    for i in 0..200u32 {
        h.publish(p, "t", &[i as u8; 100]);
    }
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    let mut sink = Throttled {
        taken: Vec::new(),
        room: 0,
    };
    // The slow consumer takes 7 bytes at a time; every write ends in the middle of a frame.
    loop {
        sink.room = 7;
        match h.core.write(slow, &mut sink).unwrap() {
            Progress::Drained => break,
            Progress::Blocked => {
                h.core.writable(slow);
                // Meanwhile the fast consumer is served in full.
                let got = Harness::deliveries(&h.output(fast));
                assert!(got.len() <= 200);
            }
            Progress::Budget => {}
        }
    }
    let out = frames(&sink.taken);
    let got = Harness::deliveries(&out);
    assert_eq!(got.len(), 200);
    for (i, (_, offset, data)) in got.iter().enumerate() {
        assert_eq!(*offset, i as u64);
        assert_eq!(data, &vec![i as u8; 100]);
    }
}

/// A consumer of topic `t` that has taken only the first 10 bytes of offset 0, `data`, and
/// whose socket is writable again; returns it, the producer, and the sink it writes to.
fn half_send_offset_0(h: &mut Harness, data: &[u8]) -> (ConnId, ConnId, Throttled) {
    let c = h.consumer();
    subscribe(h, c, "t", Start::Earliest);
    h.output(c);
    let p = h.producer();
    h.publish(p, "t", data);
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    let mut sink = Throttled {
        taken: Vec::new(),
        room: 10,
    };
    assert_eq!(h.core.write(c, &mut sink).unwrap(), Progress::Blocked);
    h.core.writable(c);
    (c, p, sink)
}

/// Lets the consumer from [`half_send_offset_0`] take everything it is owed; returns all it
/// took, and checks that it starts with offset 0 whole.
fn finish_offset_0(h: &mut Harness, c: ConnId, mut sink: Throttled, data: &[u8]) -> Vec<Owned> {
    sink.room = usize::MAX;
    while h.core.write(c, &mut sink).unwrap() != Progress::Drained {}
    let out = frames(&sink.taken);
    assert_eq!(
        out[0],
        Owned::Deliver {
            topic: "t".into(),
            offset: 0,
            data: data.to_vec()
        },
        "the half-sent frame was completed"
    );
    out
}

#[test]
fn a_segment_dropped_under_a_half_sent_frame_is_finished_then_the_gap_reported() {
    let mut h = Harness::with(small_retention(600, u64::MAX, 300));
    let (c, p, sink) = half_send_offset_0(&mut h, &[1; 100]);
    for i in 0..20u8 {
        h.publish(p, "t", &[i; 100]);
    }
    assert!(
        h.core.topic_range("t").unwrap().start > 1,
        "offset 0 was dropped"
    );
    let out = finish_offset_0(&mut h, c, sink, &[1; 100]);
    assert!(matches!(out[1], Owned::Gap { from: 1, .. }), "{:?}", out[1]);
}

#[test]
fn a_consumer_that_never_reads_while_1_gib_is_published_keeps_memory_bounded() {
    let retention = 64 << 20;
    let mut h = Harness::with(small_retention(retention, u64::MAX, 1 << 20));
    let c = h.consumer();
    subscribe(&mut h, c, "big", Start::Earliest);
    let p = h.producer();
    let payload = vec![0xab; 64 << 10];
    let mut ready = Vec::new();
    let mut stalled = Throttled {
        taken: Vec::new(),
        room: 1000,
    };
    for i in 0..(1 << 30) / payload.len() {
        h.publish(p, "big", &payload);
        if i % 64 == 0 {
            h.core.take_ready(&mut ready);
            ready.clear();
            h.core.write(p, &mut std::io::sink()).unwrap();
            h.core.write(c, &mut stalled).unwrap();
        }
        assert!(h.core.stored_bytes() <= retention + (1 << 20));
    }
    assert_eq!(h.core.stats().messages, 16384);
    assert!(
        stalled.taken.len() <= 1000,
        "the stalled consumer took only what it read"
    );
    // When it finally reads, it learns how much it missed and gets the rest.
    stalled.room = usize::MAX;
    h.core.writable(c);
    while h.core.write(c, &mut stalled).unwrap() != Progress::Drained {}
    let out = frames(&stalled.taken);
    let gaps: Vec<_> = out
        .iter()
        .filter_map(|f| match f {
            Owned::Gap { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    let [(from, to)] = gaps[..] else {
        panic!("one gap notice expected, got {gaps:?}");
    };
    assert_eq!(from, 1, "offset 0 was half sent and completed first");
    let range = h.core.topic_range("big").unwrap();
    assert_eq!(to, range.start);
    assert_eq!(Harness::deliveries(&out).last().unwrap().1, range.end - 1);
}

#[test]
fn unsubscribe_stops_deliveries() {
    let mut h = Harness::new();
    let c = h.consumer();
    subscribe(&mut h, c, "t", Start::Earliest);
    let p = h.producer();
    h.publish(p, "t", b"1");
    assert_eq!(Harness::deliveries(&h.output(c)).len(), 1);
    h.core.receive(c, Frame::Unsubscribe { topic: "t" });
    h.publish(p, "t", b"2");
    assert_eq!(h.output(c), vec![]);
}

#[test]
fn unsubscribing_from_an_invalid_name_is_refused_and_from_an_unknown_topic_is_not() {
    let mut h = Harness::new();
    let c = h.consumer();
    h.core.receive(
        c,
        Frame::Unsubscribe {
            topic: "never-seen",
        },
    );
    assert_eq!(
        h.output(c),
        vec![],
        "no answer to leaving a topic one is not in"
    );
    assert!(!h.core.is_closing(c));
    for topic in ["", "a/b", "ü"] {
        let c = h.consumer();
        h.core.receive(c, Frame::Unsubscribe { topic });
        let out = h.output(c);
        assert!(
            matches!(
                &out[..],
                [Owned::Error {
                    code: ErrorCode::InvalidTopic,
                    ..
                }]
            ),
            "{topic:?}: {out:?}"
        );
        assert!(h.core.is_closing(c));
    }
}

#[test]
fn a_client_that_never_reads_replies_is_closed_at_the_outbound_limit() {
    let mut h = Harness::with(CoreConfig {
        max_control_bytes: 1000,
        ..BrokerConfig::default().core()
    });
    let c = h.consumer();
    for _ in 0..1000 {
        h.core.receive(c, Frame::Ping);
    }
    assert!(h.core.is_closing(c));
    let out = h.output(c);
    assert!(out.len() < 1000 / 3 + 2, "replies stopped at the limit");
    assert!(
        matches!(
            out.last(),
            Some(Owned::Error {
                code: ErrorCode::SlowConsumer,
                ..
            })
        ),
        "{:?}",
        out.last()
    );
}

#[test]
fn a_frame_half_sent_when_the_count_limit_passes_it_is_finished_then_the_gap_reported() {
    // Segments large enough that the count limit, not a dropped segment, passes offset 0.
    let mut h = Harness::with(small_retention(1 << 20, 4, 1 << 16));
    let (c, p, sink) = half_send_offset_0(&mut h, &[9; 100]);
    for i in 0..10u8 {
        h.publish(p, "t", &[i; 100]);
    }
    assert_eq!(h.core.topic_range("t"), Some(7..11));
    let out = finish_offset_0(&mut h, c, sink, &[9; 100]);
    assert_eq!(
        out[1],
        Owned::Gap {
            topic: "t".into(),
            from: 1,
            to: 7
        }
    );
    let offsets: Vec<u64> = Harness::deliveries(&out).iter().map(|d| d.1).collect();
    assert_eq!(offsets, vec![0, 7, 8, 9, 10]);
}

#[test]
fn a_frame_spilled_by_retention_is_no_unread_reply_and_a_ping_is_answered() {
    // Replies may owe at most 256 bytes; the half-sent message is 4 KiB.
    let config = CoreConfig {
        max_control_bytes: 256,
        ..small_retention(6000, u64::MAX, 5000)
    };
    let mut h = Harness::with(config);
    let data = vec![7; 4096];
    let (c, p, sink) = half_send_offset_0(&mut h, &data);
    // Two more messages drop the first segment under the consumer's half-sent frame, whose
    // rest moves to its control buffer.
    h.publish(p, "t", &[8; 4096]);
    h.publish(p, "t", &[9; 4096]);
    h.core.receive(c, Frame::Ping);
    let out = finish_offset_0(&mut h, c, sink, &data);
    assert!(
        !out.iter().any(|f| matches!(f, Owned::Error { .. })),
        "a consumer that reads is not slow: {:?}",
        &out[1..]
    );
    assert!(out.contains(&Owned::Pong), "{:?}", &out[1..]);
}
