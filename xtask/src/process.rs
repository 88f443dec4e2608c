//! Child processes that never outlive xtask: spawned behind a guard, waited for with a timeout,
//! stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[cfg(test)]
mod tests;

/// A running child process. Dropping it kills the process if it is still running, so an early
/// return on any error leaves nothing behind.
pub struct Proc {
    name: String,
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Proc {
    /// Starts `cmd`. When its stderr is piped, a thread collects it so that a failure can quote
    /// the child's own error line and the child never blocks on a full pipe.
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> anyhow::Result<Proc> {
        let name = name.into();
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {name} ({})",
                cmd.get_program().to_string_lossy()
            )
        })?;
        let stderr = child.stderr.take().map(|mut pipe| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        });
        Ok(Proc {
            name,
            child,
            stderr,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id, for reading its memory use from `/proc`.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn take_stdin(&mut self) -> anyhow::Result<ChildStdin> {
        let name = &self.name;
        self.child
            .stdin
            .take()
            .with_context(|| format!("{name}'s stdin is not piped"))
    }

    /// The child's stdout as a stream of lines, read by a thread; the channel closes at EOF.
    pub fn stdout_lines(&mut self) -> anyhow::Result<Receiver<String>> {
        let name = &self.name;
        let stdout: ChildStdout = self
            .child
            .stdout
            .take()
            .with_context(|| format!("{name}'s stdout is not piped"))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
                line.clear();
            }
        });
        Ok(rx)
    }

    /// The exit status, if the child has exited.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let name = &self.name;
        self.child
            .try_wait()
            .with_context(|| format!("cannot wait for {name}"))
    }

    /// Waits for the child to exit and requires exit code 0.
    pub fn finish(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {} s",
                    self.name,
                    timeout.as_secs_f64()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        if !status.success() {
            let why = self.last_stderr_line();
            bail!("{} failed ({status}){why}", self.name);
        }
        Ok(())
    }

    /// Kills the child with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let name = &self.name;
        self.child
            .kill()
            .and_then(|()| self.child.wait().map(drop))
            .with_context(|| format!("cannot kill {name}"))
    }

    /// Sends SIGTERM, then waits for a clean exit (code 0).
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.stop_with(libc::SIGTERM, "SIGTERM", timeout)
    }

    /// Sends SIGINT, then waits for a clean exit (code 0), for programs such as nats-server
    /// that exit 0 on SIGINT but 1 on SIGTERM.
    pub fn interrupt(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.stop_with(libc::SIGINT, "SIGINT", timeout)
    }

    fn stop_with(
        &mut self,
        signal: libc::c_int,
        signal_name: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        if self.try_wait()?.is_none() {
            let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
            // SAFETY: kill has no memory effects; the pid is our own child, not yet reaped, so
            // it cannot belong to another process.
            if unsafe { libc::kill(pid, signal) } != 0 {
                let e = std::io::Error::last_os_error();
                bail!("cannot send {signal_name} to {}: {e}", self.name);
            }
        }
        self.finish(timeout)
    }

    /// `: <last line>` of what the child wrote to stderr, or nothing; only once it has exited.
    fn last_stderr_line(&mut self) -> String {
        let Some(text) = self.stderr.take().and_then(|t| t.join().ok()) else {
            return String::new();
        };
        match text.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => format!(": {}", line.trim()),
            None => String::new(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
