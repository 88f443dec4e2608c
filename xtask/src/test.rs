//! `cargo xtask test`: everything that checks the project, in one command: the workspace's tests,
//! the client libraries without their binaries, the command-line round trip, the clients through
//! broker crashes, an integration run of the real binaries, and a short fuzz.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use crate::{cluster, crash_clients, fuzz, integration};
use xtask::broker::Broker;
use xtask::process::Proc;
use xtask::workspace::{self, root};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct Args {
    /// Seconds to fuzz each target at the end; 0 skips fuzzing
    #[arg(long, default_value_t = 15)]
    fuzz_secs: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure_promtool()?;
    cargo(&["test", "--workspace"])?;
    // The libraries build without their binaries' dependencies.
    cargo(&[
        "check",
        "-p",
        "mbus-broker",
        "-p",
        "mbus-producer",
        "-p",
        "mbus-consumer",
        "--lib",
        "--no-default-features",
    ])?;
    cli_round_trip()?;
    // Both clients through broker crashes: exactly once with a data directory; without one,
    // what a restart loses is reported.
    crash_clients::run(10, true)?;
    crash_clients::run(3, false)?;
    // Beyond one machine: A to B through the R3 cluster, while a NATS node, the bridges and
    // broker A are killed; and the broker never links the bridge's async runtime.
    no_tokio_in_the_broker()?;
    cluster::run(&cluster::Args::chaos_check())?;
    integration::run(&integration::Args::default())?;
    if args.fuzz_secs > 0 {
        fuzz::run(&fuzz::Args::for_secs(args.fuzz_secs))?;
    }
    println!("test: all checks passed");
    Ok(())
}

/// Makes sure `promtool` is there for the test that checks the broker's `/metrics` output,
/// installing Debian's `prometheus` package through apt-get when it is not.
fn ensure_promtool() -> anyhow::Result<()> {
    xtask::tools::ensure_tool("promtool", "prometheus")
}

/// `cargo tree -p mbus-broker` names no tokio: the broker stays one mio thread, and the async
/// NATS client lives in `mbus-bridge` alone.
fn no_tokio_in_the_broker() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "mbus-broker",
            "--prefix",
            "none",
            "--edges",
            "normal,build",
        ])
        .output()
        .context("cannot run cargo tree")?;
    ensure!(out.status.success(), "cargo tree -p mbus-broker failed");
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates = tree.lines().count();
    let tokio: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("tokio") || l.starts_with("async-nats"))
        .collect();
    ensure!(
        tokio.is_empty() && crates > 10,
        "mbus-broker depends on {tokio:?}"
    );
    println!("test: cargo tree -p mbus-broker: {crates} crates, no tokio, no async-nats");
    Ok(())
}

/// Runs `cargo <args>` at the workspace root and fails if it fails.
fn cargo(args: &[&str]) -> anyhow::Result<()> {
    println!("test: cargo {}", args.join(" "));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args[0]))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `echo hi | mbus-producer --topic t`, then `mbus-consumer --topic t --count 1` prints `hi`.
fn cli_round_trip() -> anyhow::Result<()> {
    let bins = workspace::build(false)?;
    let log = workspace::scratch_dir()?.join("test-broker.log");
    let broker = Broker::start(&bins, &log)?;
    let mut producer = Proc::spawn("producer", broker.producer("t").stdin(Stdio::piped()))?;
    producer.take_stdin()?.write_all(b"hi\n")?;
    producer.finish(CLIENT_TIMEOUT)?;
    let mut consumer = Proc::spawn("consumer", broker.consumer("t").args(["--count", "1"]))?;
    let lines = consumer.stdout_lines()?;
    consumer.finish(CLIENT_TIMEOUT)?;
    let got: Vec<String> = lines.try_iter().collect();
    ensure!(
        got == ["hi"],
        "the consumer printed {got:?}, expected [\"hi\"]"
    );
    broker.stop()?;
    println!(
        "test: echo hi | mbus-producer --topic t; mbus-consumer --topic t --count 1 printed hi"
    );
    Ok(())
}
