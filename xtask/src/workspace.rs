//! Where the workspace is and how to build the binaries the tasks run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, anyhow, bail};

/// The binaries a task runs, as cargo reported them.
#[derive(Clone)]
pub struct Binaries {
    pub broker: PathBuf,
    pub producer: PathBuf,
    pub consumer: PathBuf,
}

/// The workspace root: the parent of this crate's directory.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// Where the tasks keep their files (broker logs), created if missing.
pub fn scratch_dir() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("xtask");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// A path as the user would type it from the workspace root.
pub fn show(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The profile name for messages, so the user knows what was measured.
pub fn profile(release: bool) -> &'static str {
    if release { "release" } else { "debug" }
}

/// Builds the broker, producer and consumer and returns their paths.
pub fn build(release: bool) -> anyhow::Result<Binaries> {
    let mut built = cargo_build(release, &["mbus-broker", "mbus-producer", "mbus-consumer"])?;
    let mut take = |name: &str| {
        built
            .remove(name)
            .ok_or_else(|| anyhow!("cargo built no `{name}` binary"))
    };
    Ok(Binaries {
        broker: take("mbus-broker")?,
        producer: take("mbus-producer")?,
        consumer: take("mbus-consumer")?,
    })
}

/// Builds `packages` and returns the executables cargo reports, by name. Cargo's progress goes
/// to stderr as usual; its JSON messages on stdout name the executables, wherever the target
/// directory is.
pub fn cargo_build(release: bool, packages: &[&str]) -> anyhow::Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["build", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped());
    for package in packages {
        cmd.args(["-p", package]);
    }
    if release {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().context("cannot run cargo")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut built = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        built.extend(executable(&line.context("cannot read cargo's output")?));
    }
    let status = child.wait().context("cannot wait for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(built)
}

/// The name and path of the executable a line of cargo's JSON output reports, if it does.
fn executable(line: &str) -> Option<(String, PathBuf)> {
    let msg = serde_json::from_str::<serde_json::Value>(line).ok()?;
    let name = msg["target"]["name"].as_str()?;
    let exe = msg["executable"].as_str()?;
    Some((name.to_owned(), PathBuf::from(exe)))
}

/// Runs one of the broker's test binaries in release mode with `env` set, failing if it fails.
pub fn broker_test(test: &str, env: &[(&str, String)]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["test", "--release", "-p", "mbus-broker", "--test", test])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .with_context(|| format!("cannot run cargo test --test {test}"))?;
    if !status.success() {
        bail!("the {test} test failed ({status})");
    }
    Ok(())
}
