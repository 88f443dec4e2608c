//! The `mbus-producer` command: publishes one message, or each line of stdin as it arrives, and
//! exits once the broker has confirmed them all.

use std::io::{self, BufRead, BufReader};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{CommandFactory, Parser};
use log::info;
use mbus_client::cli::{BrokerArgs, DocArgs, Progress, ReconnectArgs, parse_topic};
use mbus_producer::{Producer, ProducerError, ProducerOptions, generated_identity};

use crate::load::Load;

mod load;

/// Publish messages to an mbus broker and wait until it has stored them.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The topic to publish to.
    #[arg(
        short,
        long,
        value_parser = parse_topic,
        required_unless_present_any = ["completions", "man"]
    )]
    topic: Option<String>,
    /// The message to publish; without it, each line of stdin is one message. With --count,
    /// the template of each message: `{{count}}` is its number, from 1.
    #[arg(short, long)]
    message: Option<String>,
    /// Generate this many messages from the --message template (`{{count}}` without one)
    /// instead of reading stdin, and end with a line saying how fast they went.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// With --count: pad (with `.`) or cut each message to this size (`128`, `4KiB`).
    #[arg(long, requires = "count", value_parser = parse_size)]
    size: Option<usize>,
    /// With --count: publish at most this many messages a second.
    #[arg(long, requires = "count", value_parser = parse_rate)]
    rate: Option<f64>,
    /// A header to give every message, as `name=value`; repeat the option for more (a name may
    /// repeat too).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The broker's producer port.
    #[arg(long, default_value_t = 9990)]
    port: u16,
    /// Report a line the broker would refuse (one larger than it takes) on stderr and go on,
    /// rather than stop there.
    #[arg(long)]
    skip_invalid: bool,
    /// When stdin pauses, wait up to this long after the first line not yet written (`5ms`)
    /// for more lines, so that a trickle goes out in fewer, larger batches; 0 writes each pause
    /// at once.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    linger: Duration,
    /// The identity the broker knows this producer by, so that what it resends after a
    /// reconnect is stored once (1 to 64 of `A-Z a-z 0-9 . _ -`). By default one is made for
    /// the process; given one, a later run with it goes on after the last publish of the one
    /// before.
    #[arg(long, value_parser = parse_producer_id)]
    producer_id: Option<String>,
    #[command(flatten)]
    reconnect: ReconnectArgs,
    /// End with a summary line (messages, bytes, rate) even when stderr is not a terminal.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    docs: DocArgs,
}

fn main() -> ExitCode {
    mbus_client::cli::main(|| run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if cli
        .docs
        .print(Cli::command())
        .context("cannot write to stdout")?
    {
        return Ok(());
    }
    let topic = cli.topic.as_deref().expect("clap requires a topic here");
    let headers: Vec<(&str, &[u8])> = cli
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    mbus_proto::batch::check_headers(&headers).context("invalid --header")?;
    let mut options = ProducerOptions::default();
    options.connect.auth_token = cli.broker.auth_token.clone();
    options.identity = Some(cli.producer_id.clone().unwrap_or_else(generated_identity));
    options.reconnect = cli.reconnect.policy();
    let host = &cli.broker.host;
    let addr = (host.as_str(), cli.port);
    let mut producer = match Producer::connect(addr, &options) {
        // A broker older than idempotent producers is still served, without the promise.
        Err(ProducerError::NoIdempotence(reason)) if cli.producer_id.is_none() => {
            log::warn!(
                "the broker does not know idempotent producers ({reason}); publishing without \
                 an identity, so a message resent after a reconnect may be stored twice"
            );
            options.identity = None;
            Producer::connect(addr, &options)
        }
        other => other,
    }
    .with_context(|| format!("cannot connect to the broker at {host}:{}", cli.port))?;
    if let Some(count) = cli.count {
        let load = Load {
            count,
            template: cli
                .message
                .clone()
                .unwrap_or_else(|| "{{count}}".to_owned()),
            size: cli.size,
            rate: cli.rate,
        };
        let started = Instant::now();
        let bytes = load.publish(&mut producer, topic, &headers)?;
        let confirmed = producer
            .finish()
            .context("the broker did not confirm every message")?;
        eprintln!("{}", load::summary(confirmed, bytes, started.elapsed()));
        return Ok(());
    }
    let mut progress = Progress::new("published", cli.verbose);
    let refused = match &cli.message {
        Some(message) => match producer.publish_with(topic, message.as_bytes(), &headers) {
            Ok(_) => {
                progress.add(message.len());
                None
            }
            Err(e) => return Err(e).with_context(|| format!("cannot publish to `{topic}`")),
        },
        None => {
            let stdin = BufReader::with_capacity(STDIN_BUFFER, io::stdin());
            let lines = Lines {
                topic,
                headers: &headers,
                skip_invalid: cli.skip_invalid,
                linger: cli.linger,
            };
            lines.publish(&mut producer, stdin, &mut progress)?
        }
    };
    // Whatever stopped the input, every message taken before it is confirmed first.
    let confirmed = producer
        .finish()
        .context("the broker did not confirm every message")?;
    info!("{confirmed} messages confirmed");
    progress.finish(", all confirmed");
    match refused {
        Some(refusal) => Err(anyhow::anyhow!(
            "{refusal}; the {confirmed} messages before it were published and confirmed"
        )),
        None => Ok(()),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("expected a size such as 128 or 4KiB: {e}"))?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{s} is too large"))
}

fn parse_producer_id(s: &str) -> Result<String, mbus_proto::TopicError> {
    mbus_proto::validate_producer_id(s).map(|()| s.to_owned())
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE with a name, found `{s}`")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!(
            "expected a positive number of messages a second, found `{s}`"
        )),
    }
}

/// How much of stdin is read at once: a fast pipe goes out in writes of about this size.
const STDIN_BUFFER: usize = 64 << 10;

/// Publishes each line of `input`, without its newline, as one message. Whenever the lines
/// read so far are used up, what was published is written out before reading on (after
/// waiting up to `linger` for more), so that a line that arrives alone reaches the broker at
/// once, while a fast pipe still goes out in large writes. A line the broker would refuse is reported on stderr and skipped with
/// `skip_invalid`; without it, publishing stops there and the refusal is returned, to be
/// reported once what came before is confirmed.
struct Lines<'a> {
    topic: &'a str,
    headers: &'a [(&'a str, &'a [u8])],
    skip_invalid: bool,
    linger: Duration,
}

impl Lines<'_> {
    fn publish<R: io::Read>(
        &self,
        producer: &mut Producer,
        mut input: BufReader<R>,
        progress: &mut Progress,
    ) -> anyhow::Result<Option<String>> {
        let topic = self.topic;
        let mut line = Vec::new();
        let mut number = 0u64;
        // When the first line not yet written was published.
        let mut unwritten: Option<Instant> = None;
        loop {
            number += 1;
            if input.buffer().is_empty() {
                let wait = unwritten.map_or(Duration::ZERO, |at| {
                    self.linger.saturating_sub(at.elapsed())
                });
                if wait.is_zero() || !stdin_readable_within(wait) {
                    producer.flush().context("cannot write to the broker")?;
                    unwritten = None;
                }
            }
            line.clear();
            if input
                .read_until(b'\n', &mut line)
                .context("cannot read stdin")?
                == 0
            {
                return Ok(None);
            }
            let message = line.strip_suffix(b"\n").unwrap_or(&line);
            match producer.publish_with(topic, message, self.headers) {
                Ok(_) => {
                    progress.add(message.len());
                    unwritten.get_or_insert_with(Instant::now);
                }
                Err(e @ ProducerError::TooLarge { .. }) => {
                    let refusal = format!("line {number} cannot be published to `{topic}`: {e}");
                    if !self.skip_invalid {
                        return Ok(Some(refusal));
                    }
                    eprintln!("skipped: {refusal}");
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot publish line {number} to `{topic}`"));
                }
            }
        }
    }
}

/// Whether stdin has something to read (or has ended) within `wait`.
fn stdin_readable_within(wait: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: `fd` is one valid pollfd that outlives the call.
    unsafe { libc::poll(&mut fd, 1, ms) > 0 }
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
    fn short_flags_follow_kcat() {
        let cli = parse(&["-t", "orders", "-m", "hi"]).unwrap();
        assert_eq!(
            (cli.topic.as_deref(), cli.message.as_deref()),
            (Some("orders"), Some("hi"))
        );
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
    fn completions_and_the_man_page_need_no_topic() {
        assert!(parse(&["--man"]).unwrap().docs.man);
        let cli = parse(&["--completions", "bash"]).unwrap();
        assert_eq!(
            cli.docs.completions.map(|s| s.to_string()),
            Some("bash".into())
        );
        assert!(parse(&["--completions", "cmd"]).is_err());
    }

    #[test]
    fn port_must_be_a_port() {
        let err = parse(&["--topic", "orders", "--port", "70000"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
