//! `cargo xtask crash`: the broker's SIGKILL crash test (`mbus-broker/tests/crash.rs`) with as
//! many kill-and-restart cycles as asked; the ordinary test suite runs it with 20.

use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace::root;

#[derive(clap::Args)]
pub struct Args {
    /// Kill-and-restart cycles
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    cycles: u32,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    println!("crash: {} cycles of SIGKILL and restart", args.cycles);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["test", "--release", "-p", "mbus-broker", "--test", "crash"])
        .env("MBUS_CRASH_CYCLES", args.cycles.to_string())
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("the crash test failed ({status})");
    }
    println!(
        "crash: every confirmed message survived {} crashes",
        args.cycles
    );
    Ok(())
}
