//! `cargo xtask crash`: the broker's SIGKILL crash test (`mbus-broker/tests/crash.rs`) with as
//! many kill-and-restart cycles as asked; the ordinary test suite runs it with 20.

use xtask::workspace;

#[derive(clap::Args)]
pub struct Args {
    /// Kill-and-restart cycles
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    cycles: u32,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    println!("crash: {} cycles of SIGKILL and restart", args.cycles);
    workspace::broker_test("crash", &[("MBUS_CRASH_CYCLES", args.cycles.to_string())])?;
    println!(
        "crash: every confirmed message survived {} crashes",
        args.cycles
    );
    Ok(())
}
