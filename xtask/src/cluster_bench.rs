//! `cargo xtask cluster --bench`: A to B through the R3 stream, measured on the long-running
//! topology, three passes each: throughput (200,000 messages of 128 B from
//! `mbus-producer --count` at A until `mbus-consumer` at B has them all), latency (a paced
//! stream, each message's time at B against its time at A), and JetStream's own publish rate on
//! the same cluster (`mbus-bridge jetstream-bench`), to compare.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::Cluster;
use xtask::process::Proc;

const PASSES: usize = 3;
const THROUGHPUT: u64 = 200_000;
const LATENCY: u64 = 10_000;
const LATENCY_RATE: u64 = 2_000;
const TOPIC: &str = "orders";

/// Starts the topology from optimized builds, measures it and stops it.
pub fn run() -> anyhow::Result<()> {
    let mut cluster = crate::cluster::start(true)?;
    let bridge = cluster.bridge().to_owned();
    measure(&mut cluster, &bridge)?;
    cluster.stop()
}

fn measure(cluster: &mut Cluster, bridge: &Path) -> anyhow::Result<()> {
    let mut offset = 0;
    let (mut rates, mut p50s, mut p99s, mut js) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pass in 1..=PASSES {
        let started = Instant::now();
        let mut consumer = Proc::spawn(
            "mbus-consumer at B",
            cluster
                .consumer_of(TOPIC, offset)
                .args(["--count", &THROUGHPUT.to_string(), "--format", "%o\\n"])
                .stdout(Stdio::null()),
        )?;
        let mut producer = Proc::spawn(
            "mbus-producer at A",
            cluster
                .producer(TOPIC)
                .args(["--count", &THROUGHPUT.to_string(), "--size", "128"]),
        )?;
        producer.finish(Duration::from_secs(600))?;
        consumer.finish(Duration::from_secs(600))?;
        let rate = THROUGHPUT as f64 / started.elapsed().as_secs_f64();
        offset += THROUGHPUT;
        println!("bench: pass {pass}: A to B {rate:.0} msgs/s");
        rates.push(rate);

        let mut consumer = Proc::spawn(
            "mbus-consumer at B",
            cluster
                .consumer_of(TOPIC, offset)
                .args(["--count", &LATENCY.to_string(), "--json"]),
        )?;
        let lines = consumer.stdout_lines()?;
        let mut producer = Proc::spawn(
            "mbus-producer at A",
            cluster.producer(TOPIC).args([
                "--count",
                &LATENCY.to_string(),
                "--rate",
                &LATENCY_RATE.to_string(),
                "--size",
                "128",
            ]),
        )?;
        producer.finish(Duration::from_secs(600))?;
        consumer.finish(Duration::from_secs(600))?;
        offset += LATENCY;
        let mut latencies: Vec<u64> = lines
            .try_iter()
            .map(|line| latency(&line))
            .collect::<anyhow::Result<_>>()?;
        latencies.sort_unstable();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "bench: pass {pass}: A to B latency p50 {} ms, p99 {} ms",
            at(0.5),
            at(0.99)
        );
        p50s.push(at(0.5) as f64);
        p99s.push(at(0.99) as f64);

        let out = Command::new(bridge)
            .args([
                "jetstream-bench",
                "--nats",
                &cluster.nats(),
                "--count",
                &THROUGHPUT.to_string(),
            ])
            .stderr(Stdio::null())
            .output()
            .context("cannot run mbus-bridge jetstream-bench")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let rate: f64 = text
            .rsplit(": ")
            .next()
            .and_then(|r| r.trim().strip_suffix(" msgs/s"))
            .and_then(|r| r.parse().ok())
            .with_context(|| format!("jetstream-bench said {text:?}"))?;
        println!("bench: pass {pass}: JetStream alone {rate:.0} msgs/s");
        js.push(rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let passes = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!("| figure | passes | median |");
    println!("| --- | --- | ---: |");
    println!(
        "| A to B msgs/s ({THROUGHPUT} × 128 B) | {} | {:.0} |",
        passes(&rates),
        median(&mut rates.clone())
    );
    println!(
        "| A to B latency p50 ms ({LATENCY_RATE} msgs/s) | {} | {:.0} |",
        passes(&p50s),
        median(&mut p50s.clone())
    );
    println!(
        "| A to B latency p99 ms | {} | {:.0} |",
        passes(&p99s),
        median(&mut p99s.clone())
    );
    println!(
        "| JetStream alone msgs/s (R3, window 1000) | {} | {:.0} |",
        passes(&js),
        median(&mut js.clone())
    );
    Ok(())
}

/// A message's time at B less its time at A, in milliseconds, from its JSON line.
fn latency(line: &str) -> anyhow::Result<u64> {
    let json: serde_json::Value = serde_json::from_str(line)?;
    let at_b = json["time"].as_u64().context("no time")?;
    let at_a: u64 = crate::cluster::header(&json, "mbus-origin-time")
        .and_then(|t| t.parse().ok())
        .context("no mbus-origin-time")?;
    Ok(at_b.saturating_sub(at_a))
}
