//! `cargo xtask fuzz`: runs the fuzz targets in `fuzz/` with cargo-fuzz (libFuzzer) on the
//! stable toolchain, installing cargo-fuzz first when it is missing.

use std::process::Command;

use anyhow::{Context, bail};

use xtask::workspace::root;

/// The targets in `fuzz/fuzz_targets`.
const TARGETS: [&str; 2] = ["decode", "core"];

#[derive(clap::Args)]
pub struct Args {
    /// Seconds to fuzz each target
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Fuzz only this target (decode or core); repeatable
    #[arg(long, value_parser = TARGETS)]
    target: Vec<String>,
}

impl Args {
    /// Every target, for `secs` seconds each.
    pub fn for_secs(secs: u64) -> Args {
        Args {
            secs,
            target: Vec::new(),
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let targets: Vec<&str> = if args.target.is_empty() {
        TARGETS.to_vec()
    } else {
        args.target.iter().map(String::as_str).collect()
    };
    for target in targets {
        println!("fuzz: {target} for {} s", args.secs);
        // Without a sanitizer the build needs no nightly toolchain; the code under test has no
        // `unsafe`, so a panic or an abort is what there is to find.
        let status = cargo()
            .current_dir(root().join("fuzz"))
            .args(["fuzz", "run", target, "--sanitizer", "none", "--"])
            .arg(format!("-max_total_time={}", args.secs))
            .arg("-print_final_stats=1")
            .status()
            .context("cannot run cargo fuzz")?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}); the input is in fuzz/artifacts/{target}"
            );
        }
    }
    println!("fuzz: no crash");
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let found = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz from crates.io");
    let status = cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}
