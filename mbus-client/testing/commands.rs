//! Checks shared by the tests of the `mbus-producer` and `mbus-consumer` commands, which report
//! failures the same way (`mbus_client::cli::main`). Included by both crates' tests with
//! `#[path]`, so that it is not part of any library.

use std::net::TcpListener;
use std::process::{Command, Output};

/// The command `exe` pointed at `port` with `args`, without the caller's token or log filter.
pub fn command(exe: &str, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(exe);
    command
        .args(["--port", &port.to_string()])
        .args(args)
        .env_remove("MBUS_AUTH_TOKEN")
        .env_remove("RUST_LOG");
    command
}

/// The one `error: …` line a failed command wrote to stderr: an error unless it exited 1 and
/// wrote exactly one line there.
pub fn one_error_line(output: &Output) -> Result<String, String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    match (output.status.code(), &lines[..]) {
        (Some(1), [line]) if line.starts_with("error: ") => Ok((*line).to_owned()),
        (code, _) => Err(format!("exit code {code:?}, stderr {stderr:?}")),
    }
}

/// Runs `command` (built by `at` for a port) against a port nobody listens on and checks that
/// it fails with one line saying it cannot connect there.
pub fn fails_to_connect(at: impl FnOnce(u16) -> Command) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = at(port).output().unwrap();
    let line = one_error_line(&output).unwrap();
    let prefix = format!("error: cannot connect to the broker at 127.0.0.1:{port}: ");
    assert!(line.starts_with(&prefix), "{line}");
}
