//! A peer server (nats-server, redis-server) started for one run: on a free loopback port,
//! its output in a log file, ready once the port accepts connections.

use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use xtask::ports::{free_ports, wait_for_port};
use xtask::process::Proc;
use xtask::workspace::show;

const READY_TIMEOUT: Duration = Duration::from_secs(10);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Peer {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Peer {
    /// Starts `exe` with the arguments `args` makes for a free port, both its output streams
    /// going to `<scratch>/bench-<name>.log`.
    pub fn start(
        name: &str,
        exe: &Path,
        scratch: &Path,
        args: impl FnOnce(u16) -> Vec<OsString>,
    ) -> anyhow::Result<Peer> {
        let log = scratch.join(format!("bench-{name}.log"));
        let log_file =
            File::create(&log).with_context(|| format!("cannot create {}", show(&log)))?;
        let stderr = log_file
            .try_clone()
            .with_context(|| format!("cannot share {}", show(&log)))?;
        let [port] = free_ports()?;
        let mut proc = Proc::spawn(
            name,
            Command::new(exe)
                .args(args(port))
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(stderr),
        )?;
        wait_for_port(&mut proc, port, READY_TIMEOUT)
            .with_context(|| format!("see {}", show(&log)))?;
        Ok(Peer {
            proc,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        })
    }
}
