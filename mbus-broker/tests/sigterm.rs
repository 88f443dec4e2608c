//! SIGTERM to the real broker binary in the middle of a 4x4 run: it exits 0 within 5 s, every
//! message confirmed to a producer reached every consumer that stayed connected, and each side
//! was told `ShuttingDown` after what it was owed.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use mbus_proto::{ErrorCode, Frame, Role, Start};
use support::Owned;
use support::net::Client;
use support::process::BrokerProcess;

/// Publishes batches of numbered messages until the broker closes; returns the last confirm.
fn produce(addr: SocketAddr, p: u8) -> u64 {
    let mut c = Client::open(addr, Role::Producer);
    let mut sent = 0u64;
    let mut confirmed = 0u64;
    loop {
        let mut batch = Vec::new();
        for _ in 0..200 {
            let mut data = vec![p];
            data.extend_from_slice(&sent.to_be_bytes());
            Frame::publish("load", &data).encode(&mut batch);
            sent += 1;
        }
        if std::io::Write::write_all(&mut c.stream, &batch).is_err() {
            return confirmed;
        }
        while confirmed < sent {
            match c.recv() {
                Some(Owned::Confirm(n)) => confirmed = n,
                // The final confirm comes first, then the reason: the broker is stopping.
                Some(Owned::Error { code, .. }) => {
                    assert_eq!(code, ErrorCode::ShuttingDown);
                    return confirmed;
                }
                None => return confirmed,
                Some(other) => panic!("producer got {other:?}"),
            }
        }
    }
}

/// Reads deliveries until the broker closes; returns how many of each producer arrived, after
/// checking each producer's messages came in order.
fn consume(addr: SocketAddr, subscribed: Arc<AtomicBool>) -> [u64; 4] {
    let mut c = Client::open(addr, Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "load",
        start: Start::Earliest,
    });
    let mut next = [0u64; 4];
    loop {
        match c.recv() {
            Some(Owned::Subscribed { .. }) => subscribed.store(true, Ordering::SeqCst),
            Some(Owned::Deliver { data, .. }) => {
                let p = usize::from(data[0]);
                let seq = u64::from_be_bytes(data[1..9].try_into().unwrap());
                assert_eq!(seq, next[p], "producer {p} in order");
                next[p] += 1;
            }
            // Everything owed is delivered before the reason.
            Some(Owned::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::ShuttingDown);
                return next;
            }
            None => return next,
            Some(other) => panic!("consumer got {other:?}"),
        }
    }
}

#[test]
fn sigterm_mid_run_exits_cleanly_after_delivering_everything_confirmed() {
    let mut broker = BrokerProcess::start::<&str>(&[]);
    let (paddr, caddr) = (broker.producers, broker.consumers);

    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let ready = Arc::new(AtomicBool::new(false));
            let flag = ready.clone();
            (ready, thread::spawn(move || consume(caddr, flag)))
        })
        .collect();
    while !consumers.iter().all(|(r, _)| r.load(Ordering::SeqCst)) {
        thread::sleep(Duration::from_millis(5));
    }
    let producers: Vec<_> = (0..4u8)
        .map(|p| thread::spawn(move || produce(paddr, p)))
        .collect();
    thread::sleep(Duration::from_millis(500));

    let status = broker.terminate(Duration::from_secs(5));
    assert!(status.success(), "broker exited with {status}");

    let confirmed: Vec<u64> = producers.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        confirmed.iter().all(|&c| c > 0),
        "the run was under way: {confirmed:?}"
    );
    for (_, consumer) in consumers {
        let received = consumer.join().unwrap();
        for p in 0..4 {
            assert!(
                received[p] >= confirmed[p],
                "producer {p}: {} confirmed, {} delivered",
                confirmed[p],
                received[p]
            );
        }
    }
}
