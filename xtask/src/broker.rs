//! A broker started for a task: free ports, a log file, ready when both ports accept, and the
//! client commands pointed at it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::ports::{free_ports, wait_for_port};
use crate::process::Proc;
use crate::workspace::{Binaries, show};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const HOST: &str = "127.0.0.1";

pub struct Broker {
    proc: Proc,
    producer: PathBuf,
    consumer: PathBuf,
    producer_port: u16,
    consumer_port: u16,
}

impl Broker {
    /// Starts `mbus-broker` on two free loopback ports with its log in `log`, and returns once
    /// both ports accept connections.
    pub fn start(bins: &Binaries, log: &Path) -> anyhow::Result<Broker> {
        Broker::start_with(bins, log, &[])
    }

    /// [`Broker::start`] with further `mbus-broker` flags, such as retention limits.
    pub fn start_with(bins: &Binaries, log: &Path, flags: &[String]) -> anyhow::Result<Broker> {
        File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        Broker::start_on(bins, log, free_ports()?, flags)
    }

    /// [`Broker::start_with`] on the given producer and consumer ports, its log appended to
    /// `log`: a broker started again where clients look for it.
    pub fn start_on(
        bins: &Binaries,
        log: &Path,
        [producer_port, consumer_port]: [u16; 2],
        flags: &[String],
    ) -> anyhow::Result<Broker> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut proc = Proc::spawn(
            "broker",
            Command::new(&bins.broker)
                .args(["--phost", HOST, "--pport", &producer_port.to_string()])
                .args(["--chost", HOST, "--cport", &consumer_port.to_string()])
                .args(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file),
        )?;
        for port in [producer_port, consumer_port] {
            wait_for_port(&mut proc, port, READY_TIMEOUT)
                .with_context(|| format!("see {}", show(log)))?;
        }
        Ok(Broker {
            proc,
            producer: bins.producer.clone(),
            consumer: bins.consumer.clone(),
            producer_port,
            consumer_port,
        })
    }

    /// `mbus-producer --topic <topic>` aimed at this broker, stderr piped for error reports.
    pub fn producer(&self, topic: &str) -> Command {
        let mut cmd = client(&self.producer, self.producer_port, topic);
        cmd.stdout(Stdio::null());
        cmd
    }

    /// `mbus-consumer --topic <topic>` aimed at this broker, stdout and stderr piped.
    pub fn consumer(&self, topic: &str) -> Command {
        let mut cmd = client(&self.consumer, self.consumer_port, topic);
        cmd.stdout(Stdio::piped());
        cmd
    }

    /// `127.0.0.1:<producer port>` and the same for consumers, for messages.
    pub fn addrs(&self) -> (String, String) {
        (
            format!("{HOST}:{}", self.producer_port),
            format!("{HOST}:{}", self.consumer_port),
        )
    }

    /// The producer and consumer ports, for clients that connect by themselves.
    pub fn ports(&self) -> (u16, u16) {
        (self.producer_port, self.consumer_port)
    }

    /// The broker's process id, for reading its memory use.
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// Kills the broker with SIGKILL, as a crash would.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.proc.kill()
    }

    /// Stops the broker with SIGTERM and requires a clean exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.proc.terminate(STOP_TIMEOUT)
    }
}

fn client(exe: &Path, port: u16, topic: &str) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["--topic", topic, "--host", HOST])
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}
