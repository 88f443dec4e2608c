//! Consumer groups through crashes, with real processes: a durable broker is killed with SIGKILL
//! at random moments and restarted while a producer publishes and three workers of one group
//! process and ack what they are given; the workers are killed (their connections dropped) and
//! restarted too. At the end every confirmed message was processed at least once; and no message
//! the group had reported done (its floor, which a `GroupState` shows only after the commit that
//! saved it) is ever delivered again, so every duplicate is one whose ack the broker had not yet
//! made durable.
//!
//! `MBUS_CRASH_CYCLES` sets the number of kill-and-restart cycles (default 20);
//! `cargo xtask crash --groups --cycles N` runs this test with it.

mod store_util;
mod support;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mbus_consumer::{Consumer, ConsumerOptions, Event};
use mbus_producer::{Producer, ProducerOptions};
use mbus_proto::{GroupOptions, Start};
use store_util::TempDir;
use support::process::BrokerProcess;

const TOPIC: &str = "jobs";
const GROUP: &str = "workers";
const WORKERS: usize = 3;

/// Where the broker is now, if it is up.
type Addrs = Arc<Mutex<Option<(SocketAddr, SocketAddr)>>>;

/// What the test saw, shared by its threads.
#[derive(Default)]
struct Seen {
    /// Payloads processed, each once however often it was.
    processed: HashSet<String>,
    /// Deliveries in all.
    deliveries: u64,
    /// Payloads confirmed by the broker.
    confirmed: Vec<String>,
    /// The highest floor a `GroupState` reported: everything below it is durably done.
    floor: u64,
}

fn xorshift(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// Publishes numbered jobs while `stop` is not set, noting each one confirmed.
fn produce(addrs: Addrs, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some((addr, _)) = *addrs.lock().unwrap() else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Ok(mut p) = Producer::connect(addr, &ProducerOptions::default()) else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let batch: Vec<String> = (0..20).map(|i| format!("job {}", seq + i)).collect();
            seq += 20;
            if batch
                .iter()
                .any(|job| p.publish(TOPIC, job.as_bytes()).is_err())
            {
                break;
            }
            if p.wait_confirmed_timeout(Duration::from_secs(5)).is_err() {
                break;
            }
            seen.lock().unwrap().confirmed.extend(batch);
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// One worker: joins, processes and acks; asks for the group's state every 50 messages; drops
/// its connection after a random number of messages, and joins again.
fn work(addrs: Addrs, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>, mut rng: u64) {
    while !stop.load(Ordering::Relaxed) {
        let Some((_, addr)) = *addrs.lock().unwrap() else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let mut options = ConsumerOptions::default();
        options.read_timeout = Some(Duration::from_millis(200));
        let Ok(mut c) = Consumer::connect(addr, &options) else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        if c.join(TOPIC, GROUP, Start::Earliest, 20, GroupOptions::default())
            .is_err()
        {
            continue;
        }
        // This worker "dies" after this many messages (its connection is dropped, acks held
        // or not).
        let lifetime = 50 + xorshift(&mut rng) % 400;
        let mut handled = 0u64;
        while !stop.load(Ordering::Relaxed) && handled < lifetime {
            let event = match c.next_event() {
                Ok(event) => event,
                Err(mbus_consumer::ConsumerError::Timeout) => continue,
                Err(_) => break,
            };
            match event {
                Event::Message { offset, data, .. } => {
                    let job = String::from_utf8(data.to_vec()).expect("payload intact");
                    let mut s = seen.lock().unwrap();
                    assert!(
                        offset >= s.floor,
                        "offset {offset} ({job}) delivered again after the group reported it \
                         done (floor {})",
                        s.floor
                    );
                    s.deliveries += 1;
                    s.processed.insert(job);
                    drop(s);
                    if c.ack(TOPIC, GROUP, offset).is_err() {
                        break;
                    }
                    handled += 1;
                    if handled % 50 == 0 && c.group_info(TOPIC, GROUP).is_err() {
                        break;
                    }
                }
                Event::GroupState { state, .. } => {
                    let mut s = seen.lock().unwrap();
                    s.floor = s.floor.max(state.floor);
                }
                _ => {}
            }
        }
    }
}

#[test]
fn acked_messages_are_never_redelivered_and_none_is_lost_across_sigkills() {
    let cycles: u32 = std::env::var("MBUS_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut rng = (nanos as u64) | 1;
    let dir = TempDir::new("crash-groups");
    let args = [OsStr::new("--data-dir"), dir.path().as_os_str()];
    let addrs: Addrs = Arc::default();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop_producer = Arc::new(AtomicBool::new(false));
    let stop_workers = Arc::new(AtomicBool::new(false));
    let producer = {
        let (a, s, stop) = (addrs.clone(), seen.clone(), stop_producer.clone());
        thread::spawn(move || produce(a, s, stop))
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (a, s, stop) = (addrs.clone(), seen.clone(), stop_workers.clone());
            let seed = rng.wrapping_add(i as u64 * 0x9e37_79b9) | 1;
            thread::spawn(move || work(a, s, stop, seed))
        })
        .collect();

    for _ in 0..cycles {
        let broker = BrokerProcess::start(&args);
        *addrs.lock().unwrap() = Some((broker.producers, broker.consumers));
        thread::sleep(Duration::from_millis(50 + xorshift(&mut rng) % 250));
        *addrs.lock().unwrap() = None;
        drop(broker);
    }

    // A last clean run: the producer stops, and the workers finish everything confirmed.
    let broker = BrokerProcess::start(&args);
    *addrs.lock().unwrap() = Some((broker.producers, broker.consumers));
    thread::sleep(Duration::from_millis(300));
    stop_producer.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = seen.lock().unwrap();
        let missing: Vec<&String> = s
            .confirmed
            .iter()
            .filter(|job| !s.processed.contains(*job))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} confirmed jobs never processed, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        drop(s);
        thread::sleep(Duration::from_millis(50));
    }
    stop_workers.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let s = seen.lock().unwrap();
    assert!(s.confirmed.len() > 100, "the producer got jobs confirmed");
    assert!(s.floor > 0, "the group reported progress");
    eprintln!(
        "{} jobs confirmed, {} processed, {} deliveries over {cycles} crashes",
        s.confirmed.len(),
        s.processed.len(),
        s.deliveries
    );
    drop(broker);
}
