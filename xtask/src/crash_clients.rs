//! `cargo xtask crash --clients`: the command-line clients through broker crashes. A broker is
//! killed with SIGKILL at random moments and started again on the same ports while
//! `mbus-producer` streams numbered lines from its stdin and `mbus-consumer` prints the topic;
//! both must ride out every crash by reconnecting.
//!
//! With a data directory the consumer's output must be every line exactly once, in order: the
//! producer resends what was not confirmed under its identity and the broker stores it once,
//! and the consumer goes on after the last line it printed. Without one, a restart loses what
//! the broker held: the check is then what README.md promises for that case, and the losses and
//! repeats are reported.

use std::io::{BufWriter, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};

use xtask::broker::Broker;
use xtask::ports::free_ports;
use xtask::process::Proc;
use xtask::workspace;

const TOPIC: &str = "lines";
/// Lines the producer streams.
const LINES: u64 = 100_000;
/// How long the stream lasts per crash, so that every crash falls inside it.
const PER_CYCLE: Duration = Duration::from_millis(450);
/// How long a client may take to finish once the last broker is up.
const FINISH: Duration = Duration::from_secs(120);
/// Connection attempts each client makes before giving up (about five minutes).
const ATTEMPTS: &str = "60";

/// Runs `cycles` crashes of a durable broker, or of one without a data directory.
pub fn run(cycles: u32, durable: bool) -> anyhow::Result<()> {
    let kind = if durable { "durable" } else { "in-memory" };
    println!(
        "crash: {cycles} SIGKILLs of a{} {kind} broker while mbus-producer streams {LINES} lines to mbus-consumer",
        if durable { "" } else { "n" }
    );
    let bins = workspace::build(false)?;
    let scratch = workspace::scratch_dir()?.join(format!("crash-clients-{kind}"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let log = scratch.join("broker.log");
    std::fs::File::create(&log)?;
    let mut flags = Vec::new();
    if durable {
        flags.push("--data-dir".to_owned());
        flags.push(scratch.join("data").display().to_string());
    }
    let ports = free_ports()?;
    let start = || Broker::start_on(&bins, &log, ports, &flags);
    let mut broker = start()?;
    let mut consumer = Proc::spawn(
        "mbus-consumer",
        broker
            .consumer(TOPIC)
            .args(["--reconnect-attempts", ATTEMPTS]),
    )?;
    let printed = consumer.stdout_lines()?;
    let mut producer = Proc::spawn(
        "mbus-producer",
        broker
            .producer(TOPIC)
            .args(["--reconnect-attempts", ATTEMPTS])
            .stdin(Stdio::piped()),
    )?;
    let stdin = producer.take_stdin()?;
    let stream = PER_CYCLE * cycles + Duration::from_millis(500);
    let writer = thread::spawn(move || write_lines(stdin, stream));

    let mut rng = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let started = Instant::now();
    for _ in 0..cycles {
        thread::sleep(Duration::from_millis(100 + xorshift(&mut rng) % 600));
        broker.kill()?;
        thread::sleep(Duration::from_millis(xorshift(&mut rng) % 200));
        broker = start()?;
    }
    let crashed = started.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))?
        .context("mbus-producer stopped reading its stdin")?;
    producer
        .finish(FINISH)
        .context("mbus-producer did not ride out the crashes")?;
    let lines = collect(&printed, durable, &mut consumer)?;
    consumer.kill()?;
    broker.stop()?;
    println!(
        "crash: {cycles} crashes in {:.1} s; mbus-producer exited 0, every line confirmed",
        crashed.as_secs_f64()
    );
    if durable {
        check_exactly_once(&lines)
    } else {
        report_in_memory(&lines, cycles)
    }
}

/// Writes lines 1 to `LINES` to the producer's stdin, spread over `stream`, then closes it.
fn write_lines(stdin: ChildStdin, stream: Duration) -> std::io::Result<()> {
    // A write every millisecond keeps a publish in flight at nearly every moment, so that
    // crashes fall between a publish reaching the disk and its confirm reaching the producer.
    let tick = Duration::from_millis(1);
    let ticks = (stream.as_millis() / tick.as_millis()).max(1) as u64;
    let per_tick = LINES.div_ceil(ticks);
    let mut out = BufWriter::new(stdin);
    let mut next = 1;
    while next <= LINES {
        let end = (next + per_tick).min(LINES + 1);
        for n in next..end {
            writeln!(out, "{n}")?;
        }
        out.flush()?;
        next = end;
        thread::sleep(tick);
    }
    Ok(())
}

/// What the consumer prints: with a data directory, until it has every line (and a moment
/// more, to see any line printed twice); without, until it has been quiet for 3 seconds.
fn collect(
    printed: &Receiver<String>,
    durable: bool,
    consumer: &mut Proc,
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let deadline = Instant::now() + FINISH;
    let quiet = Duration::from_secs(if durable { 1 } else { 3 });
    loop {
        let wait = if durable && (lines.len() as u64) < LINES {
            deadline.saturating_duration_since(Instant::now())
        } else {
            quiet
        };
        match printed.recv_timeout(wait) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => {
                let status = consumer.try_wait()?;
                bail!(
                    "mbus-consumer stopped after {} lines ({status:?})",
                    lines.len()
                );
            }
        }
    }
    Ok(lines)
}

fn check_exactly_once(lines: &[String]) -> anyhow::Result<()> {
    let expected = (1..=LINES).map(|n| n.to_string());
    if let Some((i, (got, want))) = lines
        .iter()
        .zip(expected)
        .enumerate()
        .find(|(_, (got, want))| **got != *want)
    {
        bail!("line {} printed was {got:?}, expected {want:?}", i + 1);
    }
    ensure!(
        lines.len() as u64 == LINES,
        "mbus-consumer printed {} lines, expected {LINES}",
        lines.len()
    );
    println!("crash: mbus-consumer printed all {LINES} lines exactly once, in order");
    Ok(())
}

/// Without a data directory each broker starts empty, so what the consumer prints is one run of
/// increasing lines per broker it read from (a restarted broker numbers its offsets from 0
/// again, and the consumer waits for the offset after the last it printed). Lines confirmed by
/// a broker that then died before the consumer read them are lost; a line resent to the next
/// broker after the consumer had printed it is printed again.
fn report_in_memory(lines: &[String], cycles: u32) -> anyhow::Result<()> {
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.parse()
                .with_context(|| format!("{l:?} is no line written"))
        })
        .collect::<anyhow::Result<_>>()?;
    ensure!(
        numbers.iter().all(|n| (1..=LINES).contains(n)),
        "mbus-consumer printed a line that was never written"
    );
    let runs = 1 + numbers.windows(2).filter(|w| w[1] <= w[0]).count();
    ensure!(
        runs <= cycles as usize + 1,
        "{runs} runs of increasing lines from {} brokers",
        cycles + 1
    );
    let mut distinct = numbers.clone();
    distinct.sort_unstable();
    distinct.dedup();
    println!(
        "crash: without a data directory mbus-consumer printed {} lines in {runs} increasing runs \
         ({} brokers): {} of the {LINES} lines, {} lost with a broker, {} printed twice",
        numbers.len(),
        cycles + 1,
        distinct.len(),
        LINES - distinct.len() as u64,
        numbers.len() - distinct.len()
    );
    Ok(())
}

fn xorshift(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}
