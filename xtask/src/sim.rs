//! `cargo xtask sim`: the deterministic simulation of the broker core
//! (`mbus-broker/tests/sim.rs`) over as many seeds as asked; the ordinary test suite runs 48.

use xtask::workspace;

#[derive(clap::Args)]
pub struct Args {
    /// Seeds to run
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// The first seed; seeds `first..first + seeds` run
    #[arg(long, default_value_t = 0)]
    first: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    println!(
        "sim: seeds {}..{} of the broker core simulation",
        args.first,
        args.first + args.seeds
    );
    workspace::broker_test(
        "sim",
        &[
            ("MBUS_SIM_SEEDS", args.seeds.to_string()),
            ("MBUS_SIM_BASE", args.first.to_string()),
        ],
    )?;
    println!("sim: every seed kept every promise");
    Ok(())
}
