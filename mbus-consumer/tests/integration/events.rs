//! The consumer library against scripted brokers: handshake, subscriptions, events, failures.

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mbus_consumer::{Consumer, ConsumerError, ConsumerOptions, Event, Start};
use mbus_proto::{DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame, TopicError};

use crate::fake_broker::{self, LIMIT};

fn options() -> ConsumerOptions {
    let mut options = ConsumerOptions::default();
    options.connect.connect_timeout = LIMIT;
    options.read_timeout = Some(LIMIT);
    options
}

/// A broker that welcomes the consumer, takes its subscription to `orders` from `start` and
/// sends `frames`, then waits for the consumer to close.
fn serving(start: Start, frames: Vec<Frame<'static>>) -> std::net::SocketAddr {
    let (addr, _broker) = fake_broker::spawn(move |mut peer| {
        peer.welcome(None);
        peer.expect(Frame::Subscribe {
            topic: "orders",
            start,
        });
        peer.send(&frames);
        peer.closed();
    });
    addr
}

#[test]
fn the_hello_carries_the_consumer_role_and_the_token() {
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(Some("s3cret"));
        peer.closed()
    });
    let mut options = options();
    options.connect.auth_token = Some("s3cret".into());
    drop(Consumer::connect(addr, &options).unwrap());
    assert!(broker.join().unwrap());
}

#[test]
fn an_error_instead_of_welcome_is_a_refusal() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.send(&[Frame::Error {
            code: ErrorCode::TooManyConnections,
            reason: "full",
        }]);
    });
    match Consumer::connect(addr, &options()).unwrap_err() {
        ConsumerError::Refused { code, reason } => {
            assert_eq!(code, ErrorCode::TooManyConnections);
            assert_eq!(reason, "full");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_closed_port_is_an_io_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Consumer::connect(addr, &options()).unwrap_err();
    assert!(matches!(err, ConsumerError::Io(_)), "{err:?}");
}

#[test]
fn subscribed_messages_and_gaps_arrive_in_order() {
    let addr = serving(
        Start::Offset(5),
        vec![
            Frame::Subscribed {
                topic: "orders",
                offset: 5,
                first: 0,
                next: 0,
            },
            Frame::Deliver {
                topic: "orders",
                offset: 5,
                time: 0,
                batch: mbus_proto::Batch::one(b"five"),
            },
            Frame::Gap {
                topic: "orders",
                from: 6,
                to: 9,
            },
            Frame::Deliver {
                topic: "orders",
                offset: 9,
                time: 0,
                batch: mbus_proto::Batch::one(&[0xff, 0]),
            },
        ],
    );
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    consumer.subscribe("orders", Start::Offset(5)).unwrap();
    let want = [
        Event::Subscribed {
            topic: "orders",
            offset: 5,
            first: 0,
            next: 0,
        },
        Event::Message {
            topic: "orders",
            offset: 5,
            time: 0,
            headers: mbus_proto::Headers::default(),
            data: b"five",
            group: None,
            attempt: 1,
        },
        Event::Gap {
            topic: "orders",
            from: 6,
            to: 9,
        },
        Event::Message {
            topic: "orders",
            offset: 9,
            time: 0,
            headers: mbus_proto::Headers::default(),
            data: &[0xff, 0],
            group: None,
            attempt: 1,
        },
    ];
    for event in want {
        assert_eq!(consumer.next_event().unwrap(), event);
    }
}

#[test]
fn a_ping_is_answered_while_waiting_for_messages() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(None);
        peer.send(&[Frame::Ping]);
        // The message comes only after the Pong.
        peer.expect(Frame::Pong);
        peer.send(&[Frame::Deliver {
            topic: "orders",
            offset: 0,
            time: 0,
            batch: mbus_proto::Batch::one(b"after the pong"),
        }]);
        peer.closed();
    });
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    assert_eq!(
        consumer.next_event().unwrap(),
        Event::Message {
            topic: "orders",
            offset: 0,
            time: 0,
            headers: mbus_proto::Headers::default(),
            data: b"after the pong",
            group: None,
            attempt: 1,
        }
    );
}

#[test]
fn invalid_topics_are_rejected_before_anything_is_sent() {
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(None);
        // Byte for byte: had an invalid subscription gone out, these bytes would differ.
        peer.expect(Frame::Unsubscribe { topic: "orders" });
    });
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    let err = consumer.subscribe("new orders", Start::Latest).unwrap_err();
    assert!(
        matches!(
            err,
            ConsumerError::InvalidTopic(TopicError::BadChar(' ', 3))
        ),
        "{err:?}"
    );
    let err = consumer.unsubscribe("").unwrap_err();
    assert!(
        matches!(err, ConsumerError::InvalidTopic(TopicError::Empty)),
        "{err:?}"
    );
    consumer.unsubscribe("orders").unwrap();
    broker.join().unwrap();
}

#[test]
fn a_message_larger_than_the_read_buffer_arrives_whole() {
    let big: Vec<u8> = (0..DEFAULT_MAX_FRAME - 64).map(|i| i as u8).collect();
    let expected = big.clone();
    let (addr, _broker) = fake_broker::spawn(move |mut peer| {
        peer.welcome(None);
        peer.send(&[
            Frame::Deliver {
                topic: "orders",
                offset: 0,
                time: 0,
                batch: mbus_proto::Batch::one(b"small"),
            },
            Frame::Deliver {
                topic: "orders",
                offset: 1,
                time: 0,
                batch: mbus_proto::Batch::one(&big),
            },
            Frame::Deliver {
                topic: "orders",
                offset: 2,
                time: 0,
                batch: mbus_proto::Batch::one(b"small again"),
            },
        ]);
        peer.closed();
    });
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        match consumer.next_event().unwrap() {
            Event::Message { offset, data, .. } => got.push((offset, data.to_vec())),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    assert_eq!(got[1], (1, expected));
    assert_eq!(got[2], (2, b"small again".to_vec()));
}

#[test]
fn a_frame_over_the_limit_is_rejected_from_its_prefix() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(None);
        peer.stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
        peer.closed();
    });
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    let err = consumer.next_event().unwrap_err();
    assert!(
        matches!(
            err,
            ConsumerError::Decode(DecodeError::TooLarge { len: u32::MAX, .. })
        ),
        "{err:?}"
    );
}

#[test]
fn many_messages_cross_read_boundaries_intact() {
    const N: u64 = 50_000;
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(None);
        let payloads: Vec<String> = (0..N).map(|i| format!("message {i}")).collect();
        let frames: Vec<Frame<'_>> = payloads
            .iter()
            .zip(0..)
            .map(|(data, offset)| Frame::Deliver {
                topic: if offset % 2 == 0 { "even" } else { "odd" },
                offset,
                time: 0,
                batch: mbus_proto::Batch::one(data.as_bytes()),
            })
            .collect();
        peer.send(&frames);
        peer.closed();
    });
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    for i in 0..N {
        let want = format!("message {i}");
        let topic = if i % 2 == 0 { "even" } else { "odd" };
        assert_eq!(
            consumer.next_event().unwrap(),
            Event::Message {
                topic,
                offset: i,
                time: 0,
                headers: mbus_proto::Headers::default(),
                data: want.as_bytes(),
                group: None,
                attempt: 1,
            }
        );
    }
}

#[test]
fn a_broker_that_closes_is_reported() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| peer.welcome(None));
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    let err = consumer.next_event().unwrap_err();
    assert!(matches!(err, ConsumerError::Closed), "{err:?}");
}

#[test]
fn an_error_after_messages_is_a_refusal() {
    let addr = serving(
        Start::Latest,
        vec![
            Frame::Deliver {
                topic: "orders",
                offset: 0,
                time: 0,
                batch: mbus_proto::Batch::one(b"x"),
            },
            Frame::Error {
                code: ErrorCode::SlowConsumer,
                reason: "too slow",
            },
        ],
    );
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    consumer.subscribe("orders", Start::Latest).unwrap();
    assert!(matches!(consumer.next_event(), Ok(Event::Message { .. })));
    match consumer.next_event().unwrap_err() {
        ConsumerError::Refused { code, reason } => {
            assert_eq!(code, ErrorCode::SlowConsumer);
            assert_eq!(reason, "too slow");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_frame_that_has_no_place_here_is_reported() {
    let addr = serving(Start::Earliest, vec![Frame::Confirm { count: 1 }]);
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    consumer.subscribe("orders", Start::Earliest).unwrap();
    let err = consumer.next_event().unwrap_err();
    assert!(
        matches!(err, ConsumerError::UnexpectedFrame("Confirm")),
        "{err:?}"
    );
}

#[test]
fn a_read_timeout_reports_silence_and_leaves_the_consumer_usable() {
    let (go, wait) = mpsc::channel::<()>();
    let (addr, _broker) = fake_broker::spawn(move |mut peer| {
        peer.welcome(None);
        wait.recv_timeout(LIMIT).unwrap();
        peer.send(&[Frame::Subscribed {
            topic: "orders",
            offset: 0,
            first: 0,
            next: 0,
        }]);
        peer.closed();
    });
    let mut options = options();
    options.read_timeout = Some(Duration::from_millis(50));
    let mut consumer = Consumer::connect(addr, &options).unwrap();
    let err = consumer.next_event().unwrap_err();
    assert!(matches!(err, ConsumerError::Timeout), "{err:?}");
    go.send(()).unwrap();
    let deadline = Instant::now() + LIMIT;
    let event = loop {
        match consumer.next_event() {
            Err(ConsumerError::Timeout) if Instant::now() < deadline => {}
            event => break event,
        }
    };
    assert_eq!(
        event.unwrap(),
        Event::Subscribed {
            topic: "orders",
            offset: 0,
            first: 0,
            next: 0,
        }
    );
}

#[test]
fn try_next_event_never_waits() {
    let (go, wait) = mpsc::channel::<()>();
    let (addr, _broker) = fake_broker::spawn(move |mut peer| {
        peer.welcome(None);
        wait.recv_timeout(LIMIT).unwrap();
        peer.send(&[
            Frame::Ping,
            Frame::Subscribed {
                topic: "orders",
                offset: 3,
                first: 0,
                next: 0,
            },
        ]);
        peer.expect(Frame::Pong);
        peer.closed();
    });
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    // The broker sends nothing until told, so there is nothing to return.
    assert_eq!(consumer.try_next_event().unwrap(), None);
    go.send(()).unwrap();
    let deadline = Instant::now() + LIMIT;
    let event = loop {
        if let Some(event) = consumer.try_next_event().unwrap() {
            break event;
        }
        assert!(Instant::now() < deadline, "nothing arrived");
        thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(
        event,
        Event::Subscribed {
            topic: "orders",
            offset: 3,
            first: 0,
            next: 0,
        }
    );
}

#[test]
fn a_run_is_handed_out_message_by_message_from_where_the_subscription_stands() {
    // Offsets 4 to 7 in one delivery, the subscription at 6: 6 and 7 come out, with their times
    // and headers; then a gap whose end falls inside the next run drops what comes before it.
    let mut run = mbus_proto::BatchBuilder::new();
    run.push(b"four", &[]).unwrap();
    run.push_at(1, b"five", &[]).unwrap();
    run.push_at(2, b"six", &[("trace-id", b"7f3a")]).unwrap();
    run.push_at(3, b"seven", &[]).unwrap();
    let mut next = mbus_proto::BatchBuilder::new();
    for data in [&b"ten"[..], b"eleven", b"twelve"] {
        next.push(data, &[]).unwrap();
    }
    // The scripted broker keeps its frames for as long as it runs.
    let (run, next): (&'static _, &'static _) =
        (Box::leak(Box::new(run)), Box::leak(Box::new(next)));
    let addr = serving(
        Start::Offset(6),
        vec![
            Frame::Subscribed {
                topic: "orders",
                offset: 6,
                first: 4,
                next: 13,
            },
            Frame::Deliver {
                topic: "orders",
                offset: 4,
                time: 1_000,
                batch: run.batch().unwrap(),
            },
            Frame::Gap {
                topic: "orders",
                from: 8,
                to: 11,
            },
            Frame::Deliver {
                topic: "orders",
                offset: 10,
                time: 2_000,
                batch: next.batch().unwrap(),
            },
        ],
    );
    let mut consumer = Consumer::connect(addr, &options()).unwrap();
    consumer.subscribe("orders", Start::Offset(6)).unwrap();
    assert_eq!(
        consumer.next_event().unwrap(),
        Event::Subscribed {
            topic: "orders",
            offset: 6,
            first: 4,
            next: 13,
        }
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        match consumer.next_event().unwrap() {
            Event::Message {
                offset,
                time,
                headers,
                data,
                ..
            } => got.push((
                offset,
                time,
                headers.get("trace-id").map(<[u8]>::to_vec),
                data.to_vec(),
            )),
            Event::Gap { from, to, .. } => got.push((from, to, None, b"gap".to_vec())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        [
            (6, 1_002, Some(b"7f3a".to_vec()), b"six".to_vec()),
            (7, 1_003, None, b"seven".to_vec()),
            (8, 11, None, b"gap".to_vec()),
            (11, 2_000, None, b"eleven".to_vec()),
            (12, 2_000, None, b"twelve".to_vec()),
        ]
    );
}
