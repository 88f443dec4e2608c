//! The producer library against scripted brokers: handshake, publishing, confirms, failures.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use mbus_producer::{ClientError, Producer, ProducerError, ProducerOptions};
use mbus_proto::{DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame, PROTOCOL_VERSION, TopicError};

use crate::fake_broker::{self, LIMIT};

fn options() -> ProducerOptions {
    let mut options = ProducerOptions::default();
    options.connect.connect_timeout = LIMIT;
    options
}

#[test]
fn handshake_sends_the_token_and_learns_the_frame_limit() {
    let (addr, broker) = fake_broker::spawn(|mut peer| peer.welcome(4096));
    let mut options = options();
    options.connect.auth_token = Some("s3cret".into());
    let producer = Producer::connect(addr, &options).unwrap();
    assert_eq!(producer.max_frame(), 4096);
    assert_eq!((producer.sent(), producer.confirmed()), (0, 0));
    assert_eq!(broker.join().unwrap().as_deref(), Some("s3cret"));
}

#[test]
fn an_error_instead_of_welcome_is_a_refusal() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.recv();
        peer.send(Frame::Error {
            code: ErrorCode::Unauthorized,
            reason: "wrong token",
        });
    });
    match Producer::connect(addr, &options()).unwrap_err() {
        ProducerError::Client(ClientError::Refused { code, reason }) => {
            assert_eq!(code, ErrorCode::Unauthorized);
            assert_eq!(reason, "wrong token");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_welcome_of_another_version_is_rejected() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.recv();
        peer.send(Frame::Welcome {
            version: PROTOCOL_VERSION + 1,
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: 60_000,
        });
    });
    let err = Producer::connect(addr, &options()).unwrap_err();
    assert!(
        matches!(err, ProducerError::Client(ClientError::Decode(DecodeError::UnsupportedVersion(v))) if v == PROTOCOL_VERSION + 1),
        "{err:?}"
    );
}

#[test]
fn a_silent_broker_times_the_handshake_out() {
    let (release, held) = mpsc::channel::<()>();
    let (addr, _broker) = fake_broker::spawn(move |mut peer| {
        peer.recv();
        let _ = held.recv_timeout(LIMIT);
    });
    let mut options = ProducerOptions::default();
    options.connect.connect_timeout = Duration::from_millis(100);
    let err = Producer::connect(addr, &options).unwrap_err();
    assert!(
        matches!(err, ProducerError::Client(ClientError::Timeout)),
        "{err:?}"
    );
    drop(release);
}

#[test]
fn a_closed_port_is_an_io_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Producer::connect(addr, &options()).unwrap_err();
    assert!(
        matches!(err, ProducerError::Client(ClientError::Io(_))),
        "{err:?}"
    );
}

/// A fast publisher's messages travel as batches, a `Publish` of many messages each; the
/// broker's confirms count those publishes, and the producer turns them back into messages.
#[test]
fn many_publishes_are_batched_and_confirmed_by_coalesced_confirms() {
    const N: u64 = 10_000;
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        let mut mark = 1000;
        for seq in 1..=N {
            let (topic, data) = peer.publish();
            assert_eq!(topic, "orders");
            assert_eq!(data, format!("order {seq}").into_bytes());
            // At the end of a publish past each thousandth message, everything so far.
            if seq >= mark && !peer.has_pending() {
                peer.send(Frame::Confirm {
                    count: peer.publish_frames,
                });
                mark = seq + 1000;
            }
        }
        assert!(
            peer.publish_frames <= N / 100,
            "{} publishes for {N} messages",
            peer.publish_frames
        );
        peer.recv().is_none()
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    for seq in 1..=N {
        let data = format!("order {seq}");
        assert_eq!(producer.publish("orders", data.as_bytes()).unwrap(), seq);
    }
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), N);
    assert_eq!((producer.sent(), producer.confirmed()), (N, N));
    drop(producer);
    assert!(
        broker.join().unwrap(),
        "the broker got more than it expected"
    );
}

/// The number of messages in each `Publish` a producer sends to a broker whose frame limit is
/// `max_frame` while `publish` runs; every frame is checked against the limit.
fn batch_sizes(max_frame: u32, publish: impl FnOnce(&mut Producer)) -> Vec<usize> {
    let (addr, broker) = fake_broker::spawn(move |mut peer| {
        peer.welcome(max_frame);
        let mut sizes = Vec::new();
        while let Some(frame) = peer.recv() {
            let body = frame.to_bytes().len() - mbus_proto::HEADER_LEN;
            let Frame::Publish { batch, .. } = frame else {
                panic!("expected a Publish, got {frame:?}");
            };
            assert!(body <= max_frame as usize, "a body of {body} bytes");
            sizes.push(batch.len());
        }
        sizes
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    publish(&mut producer);
    producer.flush().unwrap();
    drop(producer);
    broker.join().unwrap()
}

/// A batch stops at the broker's frame limit: the message that would pass it starts the next.
#[test]
fn a_batch_stops_at_the_frame_limit() {
    let sizes = batch_sizes(1000, |p| {
        for _ in 0..10 {
            p.publish("big", &[b'x'; 300]).unwrap();
        }
    });
    // Three messages of 300 bytes fit a 1,000-byte frame body, a fourth does not.
    assert_eq!(sizes, [3, 3, 3, 1]);
}

/// A batch stops at 4,096 messages, whatever the frame and the write buffer could still take.
#[test]
fn a_batch_stops_at_4096_messages() {
    let sizes = batch_sizes(DEFAULT_MAX_FRAME, |p| {
        for _ in 0..5000 {
            p.publish("small", b"").unwrap();
        }
    });
    assert_eq!(sizes, [4096, 904]);
}

#[test]
fn publish_blocks_for_confirms_at_max_in_flight() {
    const MAX: u64 = 4;
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        // Confirms come only in batches of MAX, so a producer that ran further ahead than MAX
        // would wait for ever on a confirm this broker never sends.
        for seq in 1..=5 * MAX {
            peer.publish();
            if seq % MAX == 0 {
                assert!(!peer.has_pending(), "a batch of at most {MAX}");
                peer.send(Frame::Confirm {
                    count: peer.publish_frames,
                });
            }
        }
    });
    let mut options = options();
    options.max_in_flight = MAX;
    let mut producer = Producer::connect(addr, &options).unwrap();
    for _ in 0..5 * MAX {
        let seq = producer.publish("orders", b"x").unwrap();
        assert!(
            seq - producer.confirmed() <= MAX,
            "{seq} published, {} confirmed",
            producer.confirmed()
        );
    }
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), 5 * MAX);
    broker.join().unwrap();
}

#[test]
fn a_broker_that_closes_early_leaves_the_counts() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        for _ in 0..5 {
            peer.publish();
        }
        peer.send(Frame::Confirm { count: 3 });
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    // Each flushed alone, a publish each.
    for _ in 0..5 {
        producer.publish("orders", b"x").unwrap();
        producer.flush().unwrap();
    }
    let err = producer.wait_confirmed_timeout(LIMIT).unwrap_err();
    assert!(
        matches!(
            err,
            ProducerError::Closed {
                confirmed: 3,
                sent: 5
            }
        ),
        "{err:?}"
    );
}

#[test]
fn an_error_after_the_last_confirm_is_a_refusal_and_keeps_the_count() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.publish();
        peer.publish();
        peer.send(Frame::Confirm { count: 2 });
        peer.send(Frame::Error {
            code: ErrorCode::Malformed,
            reason: "bad frame",
        });
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    // The first two flushed alone, a publish each; the third goes out with the wait, which
    // may find the broker gone already.
    for data in [&b"one"[..], b"two"] {
        producer.publish("orders", data).unwrap();
        producer.flush().unwrap();
    }
    producer.publish("orders", b"three").unwrap();
    let err = producer.wait_confirmed_timeout(LIMIT).unwrap_err();
    assert!(
        matches!(&err, ProducerError::Client(ClientError::Refused { code: ErrorCode::Malformed, reason }) if reason == "bad frame"),
        "{err:?}"
    );
    assert_eq!(producer.confirmed(), 2);
}

#[test]
fn publishing_into_a_broker_that_left_reports_its_error() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.publish();
        peer.send(Frame::Confirm { count: 1 });
        peer.send(Frame::Error {
            code: ErrorCode::ShuttingDown,
            reason: "bye",
        });
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    producer.publish("orders", b"first").unwrap();
    producer.flush().unwrap();
    let data = [7; 1000];
    let err = loop {
        if let Err(e) = producer.publish("orders", &data) {
            break e;
        }
    };
    assert!(
        matches!(
            err,
            ProducerError::Client(ClientError::Refused {
                code: ErrorCode::ShuttingDown,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(producer.confirmed(), 1);
}

#[test]
fn a_ping_is_answered_while_waiting_for_confirms() {
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.publish();
        peer.send(Frame::Ping);
        let answer = peer.recv().map(|frame| frame.name());
        peer.send(Frame::Confirm { count: 1 });
        answer
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    producer.publish("orders", b"x").unwrap();
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), 1);
    assert_eq!(broker.join().unwrap(), Some("Pong"));
}

#[test]
fn wait_confirmed_times_out_and_can_wait_again() {
    let (go, wait) = mpsc::channel::<()>();
    let (addr, _broker) = fake_broker::spawn(move |mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.publish();
        wait.recv_timeout(LIMIT).unwrap();
        peer.send(Frame::Confirm { count: 1 });
        peer.recv();
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    producer.publish("orders", b"x").unwrap();
    let err = producer
        .wait_confirmed_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(
        matches!(err, ProducerError::Client(ClientError::Timeout)),
        "{err:?}"
    );
    go.send(()).unwrap();
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), 1);
}

#[test]
fn invalid_topics_are_rejected_before_anything_is_sent() {
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        let first = peer.publish();
        peer.send(Frame::Confirm { count: 1 });
        (first, peer.recv().is_none())
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    for (topic, want) in [
        ("", TopicError::Empty),
        ("new orders", TopicError::BadChar(' ', 3)),
    ] {
        match producer.publish(topic, b"x").unwrap_err() {
            ProducerError::Client(ClientError::InvalidTopic(got)) => assert_eq!(got, want),
            other => panic!("expected an invalid topic, got {other:?}"),
        }
    }
    assert_eq!(producer.publish("orders", b"ok").unwrap(), 1);
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), 1);
    drop(producer);
    let (first, then_closed) = broker.join().unwrap();
    assert_eq!(first, ("orders".to_owned(), b"ok".to_vec()));
    assert!(then_closed);
}

#[test]
fn payloads_over_the_frame_limit_are_rejected_before_anything_is_sent() {
    const MAX: u32 = 100;
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(MAX);
        let first = peer.publish();
        peer.send(Frame::Confirm { count: 1 });
        first
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    // Larger than the limit by itself, and within it but not once framed with its topic: the
    // error gives the message's own size and the largest the topic takes (100 less the array,
    // kind, "orders", the batch and message arrays, the delta and a bin 8 header: 86).
    assert_eq!(producer.max_message("orders"), 86);
    for len in [1000, MAX as usize, 87] {
        let err = producer.publish("orders", &vec![0; len]).unwrap_err();
        assert!(
            matches!(err, ProducerError::TooLarge { len: got, max: 86 } if got == len),
            "{err:?}"
        );
    }
    assert_eq!(producer.sent(), 0);
    assert_eq!(producer.publish("orders", &[1; 86]).unwrap(), 1);
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), 1);
    assert_eq!(broker.join().unwrap().1, vec![1; 86]);
}

/// Headers take room in the frame too: a message that fits alone but not with its headers is
/// refused with the largest payload it could have with them, which then goes through; what was
/// published before it is still sent.
#[test]
fn a_message_too_large_with_its_headers_names_the_payload_that_would_fit() {
    const MAX: u32 = 100;
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(MAX);
        let got = [peer.publish_with_headers(), peer.publish_with_headers()];
        peer.send(Frame::Confirm {
            count: peer.publish_frames,
        });
        got
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    producer.publish("orders", b"ok").unwrap();
    let headers: &[(&str, &[u8])] = &[("h", &[7; 40])];
    let err = producer
        .publish_with("orders", &[1; 60], headers)
        .unwrap_err();
    let ProducerError::TooLarge { len: 60, max } = err else {
        panic!("{err:?}");
    };
    assert!(max < 60, "{max}");
    assert!(matches!(
        producer.publish_with("orders", &vec![1; max + 1], headers),
        Err(ProducerError::TooLarge { max: m, .. }) if m == max
    ));
    assert_eq!(producer.sent(), 1);
    producer
        .publish_with("orders", &vec![1; max], headers)
        .unwrap();
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), 2);
    drop(producer);
    let [first, second] = broker.join().unwrap();
    assert_eq!(first.1, b"ok");
    assert_eq!((second.1.len(), second.2[0].1.len()), (max, 40));
}

#[test]
fn a_frame_that_has_no_place_here_is_reported() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.publish();
        peer.send(Frame::Subscribed {
            topic: "orders",
            offset: 0,
            first: 0,
            next: 0,
        });
        peer.recv();
    });
    let mut producer = Producer::connect(addr, &options()).unwrap();
    producer.publish("orders", b"x").unwrap();
    let err = producer.wait_confirmed_timeout(LIMIT).unwrap_err();
    assert!(
        matches!(
            err,
            ProducerError::Client(ClientError::UnexpectedFrame("Subscribed"))
        ),
        "{err:?}"
    );
}

/// A broker whose output the producer does not read stops reading the producer in turn, and
/// then a producer that only wrote would wait on a broker that waits on it. So the producer reads
/// between writes: the Pong for a Ping sent early in a long stream arrives within the stream,
/// not after it. The stream is larger than any socket buffers, so the producer cannot have
/// written all of it before the Ping arrived.
#[test]
fn the_broker_is_read_while_publishing() {
    const N: u64 = 64 * 1024;
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.publish();
        peer.send(Frame::Ping);
        let mut published = 1;
        while peer.has_pending() {
            peer.publish();
            published += 1;
        }
        let mut pong_after = None;
        while let Some(frame) = peer.recv() {
            match frame {
                Frame::Publish { batch, .. } => published += batch.len() as u64,
                Frame::Pong => pong_after = Some(published),
                other => panic!("unexpected {other:?}"),
            }
            if published == N {
                peer.send(Frame::Confirm { count: N });
            }
        }
        pong_after
    });
    let mut options = options();
    options.max_in_flight = u64::MAX;
    let mut producer = Producer::connect(addr, &options).unwrap();
    let data = [b'x'; 1024];
    for _ in 0..N {
        producer.publish("orders", &data).unwrap();
    }
    assert_eq!(producer.wait_confirmed_timeout(LIMIT).unwrap(), N);
    drop(producer);
    let pong_after = broker.join().unwrap().expect("no Pong");
    assert!(pong_after < N, "the Pong came after all {N} messages");
}

#[test]
fn a_lost_connection_is_opened_again_and_what_was_not_confirmed_is_resent_under_the_identity() {
    let (addr, broker) = fake_broker::serve(|accept| {
        let mut first = accept();
        first.welcome(DEFAULT_MAX_FRAME);
        // The identity's topics remember its publish 4: this session's first is 5.
        let session = first.identify_after(4);
        let sent: Vec<_> = (0..3).map(|_| first.publish()).collect();
        first.send(Frame::Confirm { count: 1 });
        drop(first);
        let mut second = accept();
        second.welcome(DEFAULT_MAX_FRAME);
        let resumed = second.identify_after(4);
        let resent: Vec<_> = (0..2).map(|_| second.publish()).collect();
        second.send(Frame::Confirm { count: 2 });
        assert!(
            second.recv().is_none(),
            "the producer closes once all is confirmed"
        );
        (session, resumed, sent, resent)
    });
    let mut options = options();
    options.identity = Some("web-1".into());
    options.reconnect = mbus_producer::Reconnect::attempts(5);
    let mut p = Producer::connect(addr, &options).unwrap();
    for data in [b"one", b"two", b"six"] {
        p.publish("orders", data).unwrap();
        p.flush().unwrap();
    }
    assert_eq!(p.finish().unwrap(), 3);
    let (session, resumed, sent, resent) = broker.join().unwrap();
    assert_eq!(session, ("web-1".to_owned(), 0), "a new session");
    assert_eq!(
        resumed,
        ("web-1".to_owned(), 6),
        "resumed at the first unconfirmed"
    );
    assert_eq!(resent, sent[1..], "the two unconfirmed, in order");
}

#[test]
fn an_identity_a_broker_does_not_know_is_a_clear_error() {
    let (addr, _broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        peer.recv();
        peer.send(Frame::Error {
            code: ErrorCode::UnknownKind,
            reason: "unknown frame kind 20",
        });
    });
    let mut options = options();
    options.identity = Some("web-1".into());
    let err = Producer::connect(addr, &options).unwrap_err();
    assert!(matches!(err, ProducerError::NoIdempotence(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("does not know idempotent producers"),
        "{err}"
    );
}

#[test]
fn past_max_unconfirmed_bytes_a_publish_waits_for_a_confirm() {
    let (addr, broker) = fake_broker::spawn(|mut peer| {
        peer.welcome(DEFAULT_MAX_FRAME);
        let first = peer.publish();
        // The frame kept to resend is over the bound: nothing more comes before a confirm.
        let held = peer.silent_for(Duration::from_millis(300));
        peer.send(Frame::Confirm { count: 1 });
        let second = peer.publish();
        peer.send(Frame::Confirm { count: 2 });
        (first, held, second)
    });
    let mut options = options();
    options.reconnect = mbus_producer::Reconnect::attempts(1);
    options.max_unconfirmed_bytes = 1;
    let mut p = Producer::connect(addr, &options).unwrap();
    p.publish("orders", b"one").unwrap();
    p.flush().unwrap();
    p.publish("orders", b"two").unwrap();
    assert_eq!(
        p.confirmed(),
        1,
        "the second publish waited for the first's confirm"
    );
    assert_eq!(p.finish().unwrap(), 2);
    let (first, held, second) = broker.join().unwrap();
    assert!(held, "the producer sent more past its bound");
    assert_eq!((first.1, second.1), (b"one".to_vec(), b"two".to_vec()));
}
