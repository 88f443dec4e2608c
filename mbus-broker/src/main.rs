//! `mbus-broker`: parses flags, starts logging, and runs the broker until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mbus_broker::{BrokerConfig, Server};

/// A single-node message bus broker: producers publish to topics on one port, consumers read
/// them on another.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: BrokerConfig,
    #[command(flatten)]
    docs: mbus_client::cli::DocArgs,
}

/// The size from which glibc's malloc maps memory of its own for an allocation, and unmaps it
/// when freed: its initial default, held there.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// Keeps freed log segments from fragmenting the heap. By default glibc raises its mmap
/// threshold to the size of the largest block freed, so that after the first 1 MiB segment is
/// freed every later one comes from the heap, where segments of many topics freed in another
/// order leave holes the process keeps: 1,000 topics through a 256 MiB memory budget held
/// 327 MiB that way, and 259 MiB with the threshold held. A fixed threshold hands every
/// segment, large frame and write buffer back to the system when it is freed.
fn hold_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; it is called before any thread starts.
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) } != 1 {
        log::warn!("cannot set malloc's mmap threshold; freed segments may fragment the heap");
    }
}

/// Exit code of a broker that could not start: a bad flag, a port in use, a data directory it
/// cannot use. A broker that fails once serving exits 1.
const CANNOT_START: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout, as clap prints them.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("error: {}", one_line(&e.kind().to_string(), &e.to_string()));
            return ExitCode::from(CANNOT_START);
        }
    };
    match cli.docs.print(<Cli as clap::CommandFactory>::command()) {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            return ExitCode::FAILURE;
        }
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    hold_mmap_threshold();
    check_descriptors(&cli.config);
    let mut server = match Server::bind(cli.config).context("cannot start the broker") {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {}", causes(&e));
            return ExitCode::from(CANNOT_START);
        }
    };
    if let Err(e) = serve(&mut server) {
        eprintln!("error: {}", causes(&e));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn serve(server: &mut Server) -> anyhow::Result<()> {
    server
        .stop_on_signals()
        .context("cannot install signal handlers")?;
    log::info!(
        "listening for producers on {} and consumers on {}",
        server.producer_addr(),
        server.consumer_addr()
    );
    server.run().context("broker failed")
}

/// Raises the file descriptor limit as far as allowed, and warns when what it allows is short
/// of the connections and segment files the configuration asks for.
fn check_descriptors(config: &BrokerConfig) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => {
            // Segment files come out of the same limit as connections, when there are any.
            let files = config.data_dir.as_ref().map_or(0, |_| config.open_files());
            if (n as usize) < config.max_connections + files + 64 {
                log::warn!(
                    "only {n} file descriptors allowed; with {files} kept for segment files, \
                     fewer than --max-connections {} can be served",
                    config.max_connections
                );
            }
        }
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
}

/// An error and its causes on one line, each cause once: an error that already quotes its cause
/// (as a store error quotes the system's) does not get it twice.
fn causes(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// A clap error as one line: its message with the lines that detail it (the missing flags, the
/// value that failed) joined on, without the usage that follows; `kind` is the fallback.
fn one_line(kind: &str, rendered: &str) -> String {
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(|line| line.trim())
        .collect();
    let joined = message.join(" ");
    let joined = joined.strip_prefix("error: ").unwrap_or(&joined);
    let text = if joined.is_empty() { kind } else { joined };
    format!("{text} (see --help)")
}
