//! The flags and the `main` that the `mbus-producer` and `mbus-consumer` commands share.

mod progress;

use std::process::ExitCode;

pub use progress::{Progress, grouped, summary};

/// Where the broker is and how to prove the right to use it.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// The broker's host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The shared secret, when the broker requires one.
    #[arg(long, env = "MBUS_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
}

/// How a command connects again when it loses the broker.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconnectArgs {
    /// When the connection is lost, connect again this many times (waiting 100 ms, doubling up
    /// to 5 s, a line on stderr per attempt) and go on where it left off; 0 exits instead.
    #[arg(long, default_value_t = 30)]
    pub reconnect_attempts: u32,
}

impl ReconnectArgs {
    /// The policy the flag asks for: none for 0 attempts.
    pub fn policy(&self) -> Option<crate::Reconnect> {
        crate::Reconnect::attempts(self.reconnect_attempts)
    }
}

/// What `--completions SHELL` and `--man` ask of a command, shared by both clients.
#[derive(Debug, Clone, clap::Args)]
pub struct DocArgs {
    /// Print this command's completions for SHELL (bash, zsh, fish, elvish, powershell) and
    /// exit: `mbus-producer --completions bash > /etc/bash_completion.d/mbus-producer`.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
    /// Print this command's man page (roff) and exit: `mbus-producer --man | man -l -`.
    #[arg(long)]
    pub man: bool,
}

impl DocArgs {
    /// Whether either was asked for: the command then needs none of its other arguments.
    pub fn asked(&self) -> bool {
        self.completions.is_some() || self.man
    }

    /// Prints what was asked for about `command` to stdout; false if nothing was.
    pub fn print(&self, mut command: clap::Command) -> std::io::Result<bool> {
        let out = &mut std::io::stdout();
        if let Some(shell) = self.completions {
            let name = command.get_name().to_owned();
            clap_complete::generate(shell, &mut command, name, out);
        } else if self.man {
            match clap_mangen::Man::new(command).render(out) {
                // A reader that stopped early (`| head`) is no failure.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                _ => {}
            }
        }
        Ok(self.asked())
    }
}

/// Parses a `--topic` value, so that a bad name fails before anything connects.
pub fn parse_topic(name: &str) -> Result<String, mbus_proto::TopicError> {
    mbus_proto::validate_topic(name).map(|()| name.to_owned())
}

/// Starts logging (`RUST_LOG`, warnings by default), runs the command and turns its error
/// into one `error: …` line and a failing exit code.
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
