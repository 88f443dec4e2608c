//! A server's resident memory, read from `/proc/<pid>/status` (Linux).

#[cfg(test)]
mod tests;

use anyhow::Context;

/// The process's resident set size (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// `VmRSS:    1234 kB` in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    Some(kib * 1024)
}
