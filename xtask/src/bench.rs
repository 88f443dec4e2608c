//! `cargo xtask bench`: builds the benchmark (`mbus-bench`) optimized and runs it with the same
//! arguments; `cargo xtask bench --help` shows them.

use std::process::Command;

use anyhow::{Context, bail};

use xtask::workspace::root;

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for mbus-bench, e.g. `--runs 5`, `--workload w1,w3`, `--durable`, `--quick`
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["run", "--quiet", "--release", "-p", "mbus-bench", "--"])
        .args(&args.args)
        .status()
        .context("cannot run cargo run -p mbus-bench")?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}
