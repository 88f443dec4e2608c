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

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
