//! The `mbus-producer` command: publishes one message, or each line of stdin, and exits once the
//! broker has confirmed them all.

use std::io::{self, BufRead};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use log::info;
use mbus_client::cli::{BrokerArgs, parse_topic};
use mbus_producer::{Producer, ProducerOptions};

/// Publish messages to an mbus broker and wait until it has stored them.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The topic to publish to.
    #[arg(long, value_parser = parse_topic)]
    topic: String,
    /// The message to publish; without it, each line of stdin is one message.
    #[arg(long)]
    message: Option<String>,
    /// The broker's producer port.
    #[arg(long, default_value_t = 9990)]
    port: u16,
    #[command(flatten)]
    broker: BrokerArgs,
}

fn main() -> ExitCode {
    mbus_client::cli::main(|| run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut options = ProducerOptions::default();
    options.connect.auth_token = cli.broker.auth_token.clone();
    let host = &cli.broker.host;
    let mut producer = Producer::connect((host.as_str(), cli.port), &options)
        .with_context(|| format!("cannot connect to the broker at {host}:{}", cli.port))?;
    match &cli.message {
        Some(message) => {
            producer
                .publish(&cli.topic, message.as_bytes())
                .with_context(|| format!("cannot publish to `{}`", cli.topic))?;
        }
        None => publish_lines(&mut producer, &cli.topic, io::stdin().lock())?,
    }
    let confirmed = producer
        .finish()
        .context("the broker did not confirm every message")?;
    info!("{confirmed} messages confirmed");
    Ok(())
}

/// Publishes each line of `input`, without its newline, as one message.
fn publish_lines(
    producer: &mut Producer,
    topic: &str,
    mut input: impl BufRead,
) -> anyhow::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?
            == 0
        {
            return Ok(());
        }
        let message = line.strip_suffix(b"\n").unwrap_or(&line);
        producer
            .publish(topic, message)
            .with_context(|| format!("cannot publish line {} to `{topic}`", producer.sent() + 1))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mbus-producer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_point_at_the_local_producer_port() {
        let cli = parse(&["--topic", "orders", "--message", "hi"]).unwrap();
        assert_eq!((cli.broker.host.as_str(), cli.port), ("127.0.0.1", 9990));
        assert_eq!(cli.message.as_deref(), Some("hi"));
    }

    #[test]
    fn message_is_optional() {
        let cli = parse(&["--topic", "orders", "--port", "7000"]).unwrap();
        assert_eq!(cli.message, None);
        assert_eq!(cli.port, 7000);
    }

    #[test]
    fn topic_is_required_and_checked() {
        let missing = parse(&["--message", "hi"]).unwrap_err();
        assert_eq!(
            missing.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let invalid = parse(&["--topic", "no spaces"]).unwrap_err();
        assert_eq!(invalid.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn port_must_be_a_port() {
        let err = parse(&["--topic", "orders", "--port", "70000"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
