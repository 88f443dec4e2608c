//! Where the workspace is and how to build the binaries the tasks run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The binaries a task runs, as cargo reported them.
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

/// Builds the broker, producer and consumer and returns their paths. Cargo's progress goes to
/// stderr as usual; its JSON messages on stdout name the executables, wherever the target
/// directory is.
pub fn build(release: bool) -> anyhow::Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["build", "--message-format=json-render-diagnostics"])
        .args([
            "-p",
            "mbus-broker",
            "-p",
            "mbus-producer",
            "-p",
            "mbus-consumer",
        ])
        .stdout(Stdio::piped());
    if release {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().context("cannot run cargo")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut found = Found::default();
    for line in BufReader::new(stdout).lines() {
        found.note(&line.context("cannot read cargo's output")?);
    }
    let status = child.wait().context("cannot wait for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    found.into_binaries()
}

#[derive(Default)]
struct Found {
    broker: Option<PathBuf>,
    producer: Option<PathBuf>,
    consumer: Option<PathBuf>,
}

impl Found {
    fn note(&mut self, line: &str) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        else {
            return;
        };
        let slot = match name {
            "mbus-broker" => &mut self.broker,
            "mbus-producer" => &mut self.producer,
            "mbus-consumer" => &mut self.consumer,
            _ => return,
        };
        *slot = Some(PathBuf::from(exe));
    }

    fn into_binaries(self) -> anyhow::Result<Binaries> {
        let missing = |name: &str| anyhow::anyhow!("cargo built no `{name}` binary");
        Ok(Binaries {
            broker: self.broker.ok_or_else(|| missing("mbus-broker"))?,
            producer: self.producer.ok_or_else(|| missing("mbus-producer"))?,
            consumer: self.consumer.ok_or_else(|| missing("mbus-consumer"))?,
        })
    }
}
