//! `cargo xtask integration`: many producers and consumers against one broker, then a check
//! that every consumer got every message exactly once and in order.

use std::io::{self, BufWriter, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::verify::{self, Expected, MessageId};
use xtask::broker::Broker;
use xtask::process::Proc;
use xtask::workspace::{self, profile, show};

const TOPIC: &str = "integration";

#[derive(clap::Args)]
pub struct Args {
    /// Producers publishing at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    producers: u32,
    /// Consumers each reading the whole topic
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    consumers: u32,
    /// Messages each producer publishes
    #[arg(long, default_value_t = 25_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Build and run the release binaries instead of debug ones
    #[arg(long)]
    release: bool,
    /// Longest wait in seconds for the producers, and again for the consumers after them
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

impl Default for Args {
    /// The flags' defaults: the size the project's test command runs.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: Args,
        }
        <Defaults as clap::Parser>::parse_from(["integration"]).args
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let build = profile(args.release);
    println!("integration: building mbus-broker, mbus-producer and mbus-consumer ({build} build)");
    let bins = workspace::build(args.release)?;
    let log = workspace::scratch_dir()?.join("integration-broker.log");
    let broker = Broker::start(&bins, &log)?;
    let (paddr, caddr) = broker.addrs();
    println!(
        "integration: broker on {paddr} and {caddr}, log in {}",
        show(&log)
    );

    let expected = Expected {
        topic: TOPIC,
        producers: args.producers as usize,
        per_producer: args.messages,
    };
    let timeout = Duration::from_secs(args.timeout);
    println!(
        "integration: {} producers x {} messages, {} consumers",
        args.producers, args.messages, args.consumers
    );

    let consumers = start_consumers(&broker, args.consumers, expected.total())?;
    let start = Instant::now();
    run_producers(&broker, &expected, timeout)?;
    let published = start.elapsed();
    let outputs = collect(consumers, timeout)?;
    let delivered = start.elapsed();
    broker.stop()?;

    let deliveries = expected.total() * u64::from(args.consumers);
    println!(
        "integration: published {} messages in {:.2} s ({} msgs/s)",
        expected.total(),
        published.as_secs_f64(),
        rate(expected.total(), published)
    );
    println!(
        "integration: delivered {deliveries} messages in {:.2} s ({} deliveries/s)",
        delivered.as_secs_f64(),
        rate(deliveries, delivered)
    );
    println!("integration: broker stopped cleanly (SIGTERM, exit 0)");
    report(&outputs, &expected)
}

/// Starts consumers that each read `total` messages from the start of the topic, so none
/// misses what was published before it subscribed.
fn start_consumers(
    broker: &Broker,
    consumers: u32,
    total: u64,
) -> anyhow::Result<Vec<(Proc, Receiver<String>)>> {
    let count = total.to_string();
    let args = ["--from", "earliest", "--count", &count, "--json"];
    (0..consumers)
        .map(|c| {
            let mut proc = Proc::spawn(format!("consumer {c}"), broker.consumer(TOPIC).args(args))?;
            let lines = proc.stdout_lines()?;
            Ok((proc, lines))
        })
        .collect()
}

/// Runs the producers at once, each fed its messages on stdin, and waits until all are
/// confirmed.
fn run_producers(broker: &Broker, expected: &Expected, timeout: Duration) -> anyhow::Result<()> {
    let mut producers = Vec::new();
    for p in 0..expected.producers {
        let mut proc = Proc::spawn(
            format!("producer {p}"),
            broker.producer(TOPIC).stdin(Stdio::piped()),
        )?;
        let feeder = feed(proc.take_stdin()?, p, expected.per_producer);
        producers.push((proc, feeder));
    }
    for (mut proc, feeder) in producers {
        proc.finish(timeout)?;
        let fed = feeder.join().expect("the feeder thread does not panic");
        fed.with_context(|| format!("cannot write to {}'s stdin", proc.name()))?;
    }
    Ok(())
}

/// Waits, at most `timeout` in all, for every consumer to exit 0, and returns what each printed.
fn collect(
    consumers: Vec<(Proc, Receiver<String>)>,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let deadline = Instant::now() + timeout;
    let mut outputs = Vec::new();
    for (mut proc, lines) in consumers {
        proc.finish(deadline.saturating_duration_since(Instant::now()))?;
        outputs.push((proc.name().to_owned(), lines.iter().collect()));
    }
    Ok(outputs)
}

/// Writes `p<producer>-0`, `p<producer>-1`, ... to a producer's stdin, then closes it.
fn feed(stdin: ChildStdin, producer: usize, messages: u64) -> JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        let mut out = BufWriter::new(stdin);
        for seq in 0..messages {
            writeln!(out, "{}", MessageId { producer, seq }.data())?;
        }
        out.flush()
    })
}

/// Checks every consumer's output and prints `integration: OK` or each consumer's first problem.
fn report(outputs: &[(String, Vec<String>)], expected: &Expected) -> anyhow::Result<()> {
    let mut failed = 0;
    for (name, lines) in outputs {
        if let Err(failure) = verify::check(lines, expected) {
            println!("integration: {name}: {failure}");
            failed += 1;
        }
    }
    if failed > 0 {
        println!("integration: FAILED");
        bail!("{failed} of {} consumers got a wrong stream", outputs.len());
    }
    println!("integration: OK");
    Ok(())
}

fn rate(count: u64, elapsed: Duration) -> String {
    format!("{:.0}", count as f64 / elapsed.as_secs_f64().max(1e-9))
}
