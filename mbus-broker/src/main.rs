//! `mbus-broker`: parses flags, starts logging, and runs the broker until SIGINT or SIGTERM.

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

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    hold_mmap_threshold();
    let cli = Cli::parse();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => {
            // Segment files come out of the same limit as connections, when there are any.
            let files = cli
                .config
                .data_dir
                .as_ref()
                .map_or(0, |_| cli.config.open_files());
            if (n as usize) < cli.config.max_connections + files + 64 {
                log::warn!(
                    "only {n} file descriptors allowed; with {files} kept for segment files, \
                     fewer than --max-connections {} can be served",
                    cli.config.max_connections
                );
            }
        }
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let mut server = Server::bind(cli.config).context("cannot start the broker")?;
    server
        .stop_on_signals()
        .context("cannot install signal handlers")?;
    log::info!(
        "listening for producers on {} and consumers on {}",
        server.producer_addr(),
        server.consumer_addr()
    );
    server.run().context("broker failed")?;
    Ok(())
}
