//! The real `mbus-broker` binary as a child process on free loopback ports.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// A running `mbus-broker` process. Dropping it kills the process (SIGKILL) if it still runs.
pub struct BrokerProcess {
    child: Child,
    pub producers: SocketAddr,
    pub consumers: SocketAddr,
    /// Every line the broker logged, with when it arrived.
    pub log: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl BrokerProcess {
    /// Starts the binary on ports the system picks, with `args` added to its command line, and
    /// waits until it logs the addresses it listens on.
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> BrokerProcess {
        BrokerProcess::start_logging(args, "info")
    }

    /// As [`BrokerProcess::start`], with `RUST_LOG` set to `filter`.
    pub fn start_logging<S: AsRef<OsStr>>(args: &[S], filter: &str) -> BrokerProcess {
        BrokerProcess::start_with(args, filter, None)
    }

    /// As [`BrokerProcess::start_logging`], with the process's file descriptor limit, soft and
    /// hard, set to `nofile` so that the broker cannot raise it.
    pub fn start_with<S: AsRef<OsStr>>(
        args: &[S],
        filter: &str,
        nofile: Option<u64>,
    ) -> BrokerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mbus-broker"));
        command
            .args(["--pport", "0", "--cport", "0"])
            .args(args)
            .env("RUST_LOG", filter)
            .stderr(Stdio::piped());
        if let Some(limit) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches nothing the parent shares.
            unsafe {
                command.pre_exec(move || rlimit::Resource::NOFILE.set(limit, limit));
            }
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addrs_tx, addrs_rx) = mpsc::channel();
        let lines = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addrs) = listening(&line) {
                    addrs_tx.send(addrs).ok();
                }
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
        let (producers, consumers) = addrs_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the broker did not start listening");
        BrokerProcess {
            child,
            producers,
            consumers,
            log,
        }
    }

    /// Waits up to `limit` for a log line containing `words` that arrived after `after`, and
    /// returns when it arrived.
    pub fn wait_for_log(&self, words: &str, after: Instant, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find_map(|(at, line)| (*at >= after && line.contains(words)).then_some(*at));
            if found.is_some() {
                return found;
            }
            thread::sleep(Duration::from_millis(1));
        }
        None
    }

    /// How many file descriptors the broker has open now, from `/proc`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// The broker's resident memory now, in bytes, from `/proc`.
    pub fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// The anonymous part of its resident memory: what it allocated and touched, without the
    /// pages of its own binary and libraries.
    pub fn anon_rss(&self) -> u64 {
        self.status_bytes("RssAnon:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"));
        kib * 1024
    }

    /// Sends SIGTERM and returns the exit status, failing if the process outlives `limit`.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let signalled = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                signalled.elapsed() < limit,
                "the broker still runs {limit:?} after SIGTERM"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BrokerProcess {
    /// SIGKILL: a crash for the tests that want one, and the cleanup when an assertion fails.
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The two addresses of the broker's "listening for producers on A and consumers on B" line.
fn listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.split("listening for producers on ").nth(1)?;
    let (producers, consumers) = rest.split_once(" and consumers on ")?;
    Some((
        producers.trim().parse().ok()?,
        consumers.trim().parse().ok()?,
    ))
}
