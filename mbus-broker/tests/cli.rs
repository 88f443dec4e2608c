//! The `mbus-broker` command line: sizes and durations with units, and a broker that cannot
//! start says why in one `error: …` line and exits 2 before anything is served.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use support::process::BrokerProcess;

/// The broker run with `args`, on ports the system picks unless `args` names them.
fn broker(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mbus-broker"));
    for port in ["--pport", "--cport"] {
        if !args.contains(&port) {
            command.args([port, "0"]);
        }
    }
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MBUS_AUTH_TOKEN")
        .output()
        .unwrap()
}

/// The one line a broker that could not start wrote, after checking it exited 2 and wrote
/// nothing else.
fn cannot_start(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(output.stdout.is_empty());
    lines[0].to_owned()
}

#[test]
fn a_data_directory_that_cannot_be_used_fails_at_start() {
    let line = cannot_start(&broker(&["--data-dir", "/proc/nope"]));
    assert_eq!(
        line,
        "error: cannot start the broker: cannot open the data directory: /proc/nope: No such \
         file or directory (os error 2)"
    );
}

#[test]
fn a_port_in_use_fails_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let line = cannot_start(&broker(&["--cport", &port]));
    assert!(
        line.starts_with(&format!(
            "error: cannot start the broker: cannot listen on 127.0.0.1:{port} for consumers: "
        )),
        "{line}"
    );
}

#[test]
fn bad_flags_and_combinations_fail_at_start_in_one_line() {
    for (args, words) in [
        (&["--fsync", "batch"][..], "--data-dir"),
        (&["--cache-bytes", "1MiB"], "--data-dir"),
        (&["--retention-bytes", "lots"], "--retention-bytes"),
        (&["--idle-timeout", "0s"], "positive duration"),
        (&["--max-frame", "4GiB"], "4 GiB"),
        (&["--max-frame", "1KiB"], "4096"),
    ] {
        let line = cannot_start(&broker(args));
        assert!(line.contains(words), "{args:?}: {line}");
    }
}

#[test]
fn sizes_and_durations_take_units_and_help_shows_them() {
    let mut started = BrokerProcess::start(&[
        "--retention-bytes",
        "1GB",
        "--max-memory",
        "512MiB",
        "--idle-timeout",
        "1m30s",
        "--shutdown-grace",
        "500ms",
    ]);
    assert!(
        started
            .terminate(std::time::Duration::from_secs(5))
            .success()
    );
    let help = Command::new(env!("CARGO_BIN_EXE_mbus-broker"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for default in [
        "[default: 1MiB]",
        "[default: 256MiB]",
        "[default: 256KiB]",
        "[default: 64MiB]",
        "[default: 10s]",
        "[default: 60s]",
        "[default: 3s]",
    ] {
        assert!(help.contains(default), "--help shows {default}");
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_itself() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mbus-broker"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["--completions", shell]);
        assert!(
            script.contains("max-memory") && script.contains("data-dir"),
            "{shell}"
        );
    }
    let man = run(&["--man"]);
    assert!(man.contains(".TH mbus-broker 1"), "{man}");
    assert!(man.contains("max\\-memory"));
}
