//! Free loopback ports, and waiting until a child listens on one.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::Proc;

/// `N` distinct ports that were free a moment ago. The listeners are all held until every port
/// is read, so the kernel cannot hand out the same port twice.
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot bind a loopback port")?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .context("cannot read a bound port")?
            .port();
    }
    Ok(ports)
}

/// Waits until `port` on loopback accepts a connection, failing early if `proc` exits.
pub fn wait_for_port(proc: &mut Proc, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = proc.try_wait()? {
            bail!(
                "{} exited ({status}) before listening on {addr}",
                proc.name()
            );
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not listen on {addr} within {} s",
                proc.name(),
                timeout.as_secs_f64()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}
