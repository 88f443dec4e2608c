//! `cargo xtask crash`: the broker's SIGKILL crash tests with as many kill-and-restart cycles as
//! asked: `mbus-broker/tests/crash.rs` (confirmed messages survive), or with `--groups`
//! `mbus-broker/tests/crash_groups.rs` (a consumer group's workers lose nothing and get nothing
//! acked again), or with `--clients` the command-line clients through crashes
//! (`crash_clients.rs`). The ordinary test suite runs the first two with 20 cycles and the
//! clients with 10, with a data directory and without.

use xtask::workspace;

#[derive(clap::Args)]
pub struct Args {
    /// Kill-and-restart cycles
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    cycles: u32,
    /// Crash a broker serving a consumer group of three workers, which are killed too
    #[arg(long)]
    groups: bool,
    /// Crash a broker under mbus-producer streaming 100,000 lines to mbus-consumer, which must
    /// print each exactly once
    #[arg(long, conflicts_with = "groups")]
    clients: bool,
    /// With --clients: a broker without a data directory, whose losses are reported
    #[arg(long, requires = "clients")]
    memory: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.clients {
        return crate::crash_clients::run(args.cycles, !args.memory);
    }
    let cycles = [("MBUS_CRASH_CYCLES", args.cycles.to_string())];
    if args.groups {
        println!(
            "crash: {} cycles of SIGKILL and restart under a consumer group",
            args.cycles
        );
        workspace::broker_test("crash_groups", &cycles)?;
        println!(
            "crash: every confirmed job was processed and none acked durably came back, over {} crashes",
            args.cycles
        );
        return Ok(());
    }
    println!("crash: {} cycles of SIGKILL and restart", args.cycles);
    workspace::broker_test("crash", &cycles)?;
    println!(
        "crash: every confirmed message survived {} crashes",
        args.cycles
    );
    Ok(())
}
