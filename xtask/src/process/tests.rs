//! The guard against real child processes (`sh`, `sleep`): failures quote the child's stderr,
//! SIGTERM must end in exit 0, and dropping the guard ends the child.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::Proc;

const LONG: Duration = Duration::from_secs(30);

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_clean_exit_finishes_and_stdout_arrives_line_by_line() {
    let mut proc = Proc::spawn("child", &mut sh("echo one; echo two")).unwrap();
    let lines = proc.stdout_lines().unwrap();
    proc.finish(LONG).unwrap();
    assert_eq!(lines.iter().collect::<Vec<_>>(), ["one", "two"]);
}

#[test]
fn a_failure_names_the_child_and_quotes_its_last_stderr_line() {
    let script = "echo noise >&2; echo 'error: no broker' >&2; exit 3";
    let mut proc = Proc::spawn("producer 1", &mut sh(script)).unwrap();
    let err = proc.finish(LONG).unwrap_err().to_string();
    assert_eq!(err, "producer 1 failed (exit status: 3): error: no broker");
}

#[test]
fn sigterm_that_the_child_handles_is_a_clean_stop() {
    // The trap exits 0 as the broker does; `read` blocks on a stdin nobody writes to.
    let script = "trap 'exit 0' TERM; echo ready; read line";
    let mut proc = Proc::spawn("broker", sh(script).stdin(Stdio::piped())).unwrap();
    let lines = proc.stdout_lines().unwrap();
    assert_eq!(lines.recv().unwrap(), "ready");
    proc.terminate(LONG).unwrap();
}

#[test]
fn dying_of_sigterm_is_not_a_clean_stop() {
    let mut proc = Proc::spawn("sleeper", Command::new("sleep").arg("30")).unwrap();
    let err = proc.terminate(LONG).unwrap_err().to_string();
    assert!(err.starts_with("sleeper failed (signal: 15"), "{err}");
}

#[test]
fn dropping_the_guard_ends_the_child() {
    let proc = Proc::spawn("sleeper", Command::new("sleep").arg("30")).unwrap();
    let pid = libc::pid_t::try_from(proc.child.id()).unwrap();
    drop(proc);
    // Killed and reaped: no process has that pid any more (it is not reused this soon).
    // SAFETY: signal 0 only checks whether the pid exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, -1);
}

#[test]
fn a_child_that_does_not_exit_in_time_is_an_error() {
    let mut proc = Proc::spawn("sleeper", Command::new("sleep").arg("30")).unwrap();
    let err = proc.finish(Duration::ZERO).unwrap_err().to_string();
    assert_eq!(err, "sleeper did not exit within 0 s");
}
