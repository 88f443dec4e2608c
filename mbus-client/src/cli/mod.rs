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
