//! What a bench ran on and what it measured: the machine, the mbus commit and the peers'
//! versions, each read without changing anything.

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use xtask::process::Proc;
use xtask::workspace;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// `2 CPUs (AMD EPYC), Linux 6.1.0, 23.4 GiB RAM`, with `unknown` for what cannot be read.
pub fn describe() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".to_owned(), |k| k.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kib| kib.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib / (1 << 20) as f64)
        });
    format!("{cpus} CPUs ({model}), Linux {kernel}, {memory} RAM")
}

/// The short commit of the workspace, `-dirty` when tracked files are changed or untracked
/// ones (which the build may include) exist.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        // Without optional locks `git status` does not write the refreshed index back, so it
        // changes nothing in a tree that others are working in.
        cmd.current_dir(workspace::root())
            .env("GIT_OPTIONAL_LOCKS", "0")
            .args(args);
        capture("git", &mut cmd)
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    match git(&["status", "--porcelain"]) {
        Some(changes) if changes.is_empty() => head,
        Some(_) => format!("{head}-dirty"),
        None => format!("{head} (state unknown)"),
    }
}

/// The version a peer reports: `v2.9.10` from `nats-server: v2.9.10`, `7.0.15` from
/// `Redis server v=7.0.15 sha=...`.
pub fn version(exe: &Path) -> String {
    let Some(text) = capture("version", Command::new(exe).arg("--version")) else {
        return "unknown version".to_owned();
    };
    parse_version(&text).unwrap_or(text)
}

fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|word| word.strip_prefix("v=").unwrap_or(word))
        .find(|v| {
            let digits = v.strip_prefix('v').unwrap_or(v);
            digits.starts_with(|c: char| c.is_ascii_digit()) && digits.contains('.')
        })
        .map(str::to_owned)
}

/// Where `name` is installed: on `PATH`, or in the sbin directories that are often not on
/// it for ordinary users (Debian puts nats-server in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(sbin)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A short command's standard output, trimmed, if it exits 0 in time.
fn capture(name: &str, cmd: &mut Command) -> Option<String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn(name, cmd).ok()?;
    let lines = proc.stdout_lines().ok()?;
    proc.finish(COMMAND_TIMEOUT).ok()?;
    Some(
        lines
            .iter()
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned(),
    )
}
