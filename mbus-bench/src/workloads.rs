//! The workloads, each run against one started target: throughput (w1, w2, w3, w5), paced
//! latency (w4), memory (m1), mbus's own command-line clients, and confirmed publishes with a
//! read-back for the durable mode.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use super::load::{Publisher, receive};
use super::memory::rss_bytes;
use super::record::{self, Checker, Wrong};
use super::report;
use super::target::{Aborted, Target};
use xtask::broker::Broker;
use xtask::process::Proc;
use xtask::workspace::{Binaries, show};

/// How long a server is left alone before its memory is read, so that it has finished
/// handling what was just sent.
const SETTLE: Duration = Duration::from_millis(500);

/// Who publishes and who subscribes, and how much.
pub struct Flow {
    pub publishers: u32,
    pub subscribers: u32,
    pub per_publisher: u64,
    pub size: usize,
}

pub struct Throughput {
    /// From the first publish to the last delivery.
    pub elapsed: Duration,
    /// Messages delivered, counting each subscriber's copy.
    pub deliveries: u64,
    pub size: usize,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload bytes delivered per second, in MB (10^6 bytes).
    pub fn megabytes_per_second(&self) -> f64 {
        self.per_second() * self.size as f64 / 1e6
    }
}

/// Every subscriber subscribes first; then the publishers start together, each sending its
/// messages in batches as fast as the server takes them, and wait for the server's confirms.
/// Every subscriber must receive every message exactly once, in each publisher's order.
pub fn throughput(
    target: &dyn Target,
    flow: &Flow,
    timeout: Duration,
) -> anyhow::Result<Throughput> {
    let deadline = Instant::now() + timeout;
    let subscribers = (0..flow.subscribers)
        .map(|_| target.subscriber(deadline))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let publishers = (0..flow.publishers)
        .map(|_| {
            let conn = target.publisher(deadline)?;
            Publisher::new(target, conn, flow.subscribers.into(), deadline)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let abort = &AtomicBool::new(false);
    let barrier = &Barrier::new(publishers.len());
    let (last_deliveries, first_publishes) = thread::scope(|s| {
        let subscribers: Vec<_> = subscribers
            .into_iter()
            .enumerate()
            .map(|(i, mut conn)| {
                s.spawn(move || {
                    guarded(abort, || {
                        let mut checker =
                            Checker::new(flow.publishers, flow.per_publisher, flow.size);
                        let mut last = None;
                        let received =
                            receive(target, &mut conn, deadline, abort, |payload, now| {
                                last = Some(now);
                                Ok(checker.accept(payload)?)
                            });
                        received.map_err(|e| subscriber_failure(target, i, e, &checker))?;
                        last.context("no message arrived")
                    })
                })
            })
            .collect();
        let publishers: Vec<_> = publishers
            .into_iter()
            .zip(0..)
            .map(|(mut publisher, p)| {
                s.spawn(move || {
                    guarded(abort, || {
                        let mut payload = record::payload(flow.size);
                        barrier.wait();
                        let start = Instant::now();
                        for seq in 0..flow.per_publisher {
                            if seq % 1024 == 0 && abort.load(Ordering::Relaxed) {
                                return Err(Aborted.into());
                            }
                            record::write_id(&mut payload, p, seq);
                            publisher.publish(target, &payload)?;
                        }
                        publisher.finish(target)?;
                        Ok(start)
                    })
                })
            })
            .collect();
        (join(subscribers), join(publishers))
    });
    let (last_deliveries, first_publishes) = collect_results(last_deliveries, first_publishes)?;
    let start = first_publishes.into_iter().min().context("no publisher")?;
    let end = last_deliveries.into_iter().max().context("no subscriber")?;
    Ok(Throughput {
        elapsed: end.saturating_duration_since(start),
        deliveries: u64::from(flow.subscribers) * u64::from(flow.publishers) * flow.per_publisher,
        size: flow.size,
    })
}

/// Latency percentiles in microseconds.
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// The rate the publisher kept, from its first send to its last.
    pub paced: f64,
}

/// One publisher sends `rate` messages a second for `duration`, each written on its own at
/// its scheduled time and stamped with the time it was written; one subscriber records
/// receive time minus send time for each.
pub fn latency(
    target: &dyn Target,
    rate: u32,
    duration: Duration,
    size: usize,
    timeout: Duration,
) -> anyhow::Result<Latency> {
    let deadline = Instant::now() + timeout;
    let count = (f64::from(rate) * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs(1) / rate;
    let mut conn = target.subscriber(deadline)?;
    let mut publisher = Publisher::new(target, target.publisher(deadline)?, 1, deadline)?;
    let epoch = Instant::now();
    let nanos_since_epoch = |t: Instant| t.saturating_duration_since(epoch).as_nanos() as u64;
    let abort = &AtomicBool::new(false);
    let (samples, published) = thread::scope(|s| {
        let subscriber = s.spawn(move || {
            guarded(abort, || {
                let mut checker = Checker::new(1, count, size);
                let mut samples = Vec::with_capacity(count as usize);
                let received = receive(target, &mut conn, deadline, abort, |payload, now| {
                    let done = checker.accept(payload)?;
                    let sent = record::read_stamp(payload).context("no send time")?;
                    samples.push(nanos_since_epoch(now).saturating_sub(sent));
                    Ok(done)
                });
                received.map_err(|e| subscriber_failure(target, 0, e, &checker))?;
                Ok(samples)
            })
        });
        let publisher = s.spawn(move || {
            guarded(abort, || {
                precise_sleep();
                let mut payload = record::payload(size);
                let start = Instant::now();
                let mut last = start;
                for seq in 0..count {
                    if abort.load(Ordering::Relaxed) {
                        return Err(Aborted.into());
                    }
                    let due = start + interval * u32::try_from(seq).context("too many messages")?;
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    record::write_id(&mut payload, 0, seq);
                    last = Instant::now();
                    record::write_stamp(&mut payload, nanos_since_epoch(last));
                    publisher.publish_now(target, &payload)?;
                }
                publisher.finish(target)?;
                Ok(count.saturating_sub(1) as f64 / (last - start).as_secs_f64())
            })
        });
        (join(vec![subscriber]), join(vec![publisher]))
    });
    let (mut samples, paced) = collect_results(samples, published)?;
    let mut samples = samples.pop().context("no subscriber")?;
    samples.sort_unstable();
    let micros = |p: f64| report::percentile(&samples, p).map_or(0.0, |ns| ns as f64 / 1e3);
    Ok(Latency {
        p50: micros(50.0),
        p99: micros(99.0),
        p999: micros(99.9),
        max: micros(100.0),
        paced: paced.first().copied().unwrap_or_default(),
    })
}

/// The server's resident memory after one publisher has published `count` messages of `size`
/// bytes and they are all confirmed, with no subscriber: what it takes to hold them.
pub fn retained(
    target: &dyn Target,
    count: u64,
    size: usize,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    let publisher = Publisher::new(target, target.publisher(deadline)?, 0, deadline)?;
    publish_all(target, publisher, count, size)?;
    thread::sleep(SETTLE);
    rss_bytes(target.pid())
}

/// What the durable workload measured.
pub struct Confirmed {
    /// From the first publish to the read that brought the last confirm.
    pub publish: Duration,
    /// From asking for a subscription to the read that brought the last message back.
    pub read_back: Duration,
}

/// One publisher publishes `count` messages of `size` bytes, with at most `window` of them
/// unconfirmed at any time, and waits for every confirm. Then a subscriber reads what the
/// target stores from its first message on, which must be exactly those messages, in order.
pub fn confirmed(
    target: &dyn Target,
    count: u64,
    size: usize,
    window: u64,
    timeout: Duration,
) -> anyhow::Result<Confirmed> {
    let deadline = Instant::now() + timeout;
    let publisher = Publisher::new(target, target.publisher(deadline)?, 0, deadline)?;
    let (first, last) = publish_all(target, publisher.with_window(window), count, size)?;
    let asked = Instant::now();
    let mut conn = target.subscriber(deadline)?;
    let mut checker = Checker::new(1, count, size);
    let mut read_back = asked;
    let received = receive(
        target,
        &mut conn,
        deadline,
        &AtomicBool::new(false),
        |payload, now| {
            read_back = now;
            Ok(checker.accept(payload)?)
        },
    );
    received.map_err(|e| subscriber_failure(target, 0, e, &checker))?;
    Ok(Confirmed {
        publish: last.saturating_duration_since(first),
        read_back: read_back - asked,
    })
}

/// Publishes `count` messages of `size` bytes as publisher 0 and waits until all are
/// confirmed: when the first publish started, and when the last confirm came.
fn publish_all(
    target: &dyn Target,
    mut publisher: Publisher,
    count: u64,
    size: usize,
) -> anyhow::Result<(Instant, Instant)> {
    let mut payload = record::payload(size);
    let first = Instant::now();
    for seq in 0..count {
        record::write_id(&mut payload, 0, seq);
        publisher.publish(target, &payload)?;
    }
    let last = publisher.finish(target)?;
    Ok((first, last))
}

/// How much the server's resident memory grows, per connection, when `count` connections are
/// opened and left idle after their handshake.
pub fn idle_connections(target: &dyn Target, count: u32, timeout: Duration) -> anyhow::Result<f64> {
    let deadline = Instant::now() + timeout;
    thread::sleep(SETTLE);
    let before = rss_bytes(target.pid())?;
    let conns = (0..count)
        .map(|_| target.idle(deadline).map(|conn| conn.stream))
        .collect::<anyhow::Result<Vec<_>>>()?;
    thread::sleep(SETTLE);
    let after = rss_bytes(target.pid())?;
    drop(conns);
    Ok((after as f64 - before as f64) / f64::from(count))
}

/// mbus's own binaries end to end: `mbus-producer` publishes each line of a file read from
/// stdin while `mbus-consumer --from earliest --count <count>` reads them into /dev/null; the
/// time from starting both until both have exited.
pub fn own_clients(
    bins: &Binaries,
    scratch: &Path,
    flags: &[String],
    count: u64,
    size: usize,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    const TOPIC: &str = "bench";
    let deadline = Instant::now() + timeout;
    let lines = lines_file(scratch, count, size)?;
    let input = File::open(&lines).with_context(|| format!("cannot open {}", show(&lines)))?;
    let log = scratch.join("bench-mbus.log");
    let broker = Broker::start_with(bins, &log, flags)?;
    let start = Instant::now();
    let count_arg = count.to_string();
    let mut consumer = Proc::spawn(
        "mbus-consumer",
        broker
            .consumer(TOPIC)
            .args(["--from", "earliest", "--count", &count_arg])
            .stdout(Stdio::null()),
    )?;
    let mut producer = Proc::spawn("mbus-producer", broker.producer(TOPIC).stdin(input))?;
    producer.finish(deadline.saturating_duration_since(Instant::now()))?;
    consumer.finish(deadline.saturating_duration_since(Instant::now()))?;
    let elapsed = start.elapsed();
    broker.stop()?;
    Ok(elapsed)
}

/// A file of `count` lines of `size` bytes each plus the newline, numbered, written once and
/// reused while it has the right length.
fn lines_file(scratch: &Path, count: u64, size: usize) -> anyhow::Result<PathBuf> {
    let path = scratch.join(format!("bench-lines-{count}x{size}.txt"));
    let want = count * (size as u64 + 1);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == want) {
        return Ok(path);
    }
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&path)?);
        let padding = ".".repeat(size);
        for seq in 0..count {
            let number = format!("{seq:012}");
            out.write_all(number.as_bytes())?;
            out.write_all(&padding.as_bytes()[number.len().min(size)..])?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write().with_context(|| format!("cannot write {}", show(&path)))?;
    Ok(path)
}

/// Lowers this thread's timer slack to 1 ns, so that a sleep of tens of microseconds ends
/// close to when it was asked to instead of up to 50 us late.
fn precise_sleep() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread's timer
    // slack; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// Runs a client's body; if it fails, the others of the run are told to stop.
fn guarded<T>(abort: &AtomicBool, body: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let result = body();
    if result.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    result
}

fn join<T>(handles: Vec<ScopedJoinHandle<'_, anyhow::Result<T>>>) -> Vec<anyhow::Result<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow!("a client thread panicked")))
        })
        .collect()
}

/// All results of both groups, or every error that is not just [`Aborted`], joined.
fn collect_results<A, B>(
    a: Vec<anyhow::Result<A>>,
    b: Vec<anyhow::Result<B>>,
) -> anyhow::Result<(Vec<A>, Vec<B>)> {
    let a_err = a.iter().filter_map(|r| r.as_ref().err());
    let b_err = b.iter().filter_map(|r| r.as_ref().err());
    let errors: Vec<&anyhow::Error> = a_err.chain(b_err).collect();
    let mut causes: Vec<String> = errors
        .iter()
        .filter(|e| !e.is::<Aborted>())
        .map(|e| format!("{e:#}"))
        .collect();
    causes.dedup();
    if let Some(first) = errors.first() {
        if causes.is_empty() {
            causes.push(format!("{first:#}"));
        }
        return Err(anyhow!("{}", causes.join("; also ")));
    }
    let a = a.into_iter().collect::<anyhow::Result<_>>()?;
    let b = b.into_iter().collect::<anyhow::Result<_>>()?;
    Ok((a, b))
}

/// A subscriber's error with what it had received, unless it only stopped for another's.
fn subscriber_failure(
    target: &dyn Target,
    index: usize,
    error: anyhow::Error,
    checker: &Checker,
) -> anyhow::Error {
    if error.is::<Aborted>() {
        return error;
    }
    let name = target.name();
    if error.is::<Wrong>() {
        let (received, total) = (checker.received(), checker.total());
        anyhow!("{name} subscriber {index}: {error} (after {received} of {total} messages)")
    } else {
        anyhow!(
            "{name} subscriber {index}: {error:#}; {}",
            checker.missing()
        )
    }
}
