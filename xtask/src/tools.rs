//! Programs from Debian's packages that tasks need (`promtool`, `nats-server`), installed
//! through apt-get when they are missing.

use std::process::{Command, Stdio};

use anyhow::{Context, ensure};

/// Makes sure `tool` runs (`tool --version`), installing Debian's `package` through apt-get
/// when it does not.
pub fn ensure_tool(tool: &str, package: &str) -> anyhow::Result<()> {
    let found = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found(tool) {
        return Ok(());
    }
    println!("test: installing {tool} (Debian's {package} package) through apt-get");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        let status = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .context("cannot run apt-get")?;
        ensure!(
            status.success(),
            "apt-get {} failed ({status})",
            args.join(" ")
        );
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", package])?;
    ensure!(
        found(tool),
        "{tool} is still missing after installing {package}"
    );
    Ok(())
}
