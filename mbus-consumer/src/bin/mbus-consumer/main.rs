//! The `mbus-consumer` command: subscribes to topics and prints each message as one line.

mod delivered;
mod format;
mod from;
mod output;

use std::collections::HashMap;
use std::io;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use log::{info, warn};
use mbus_client::cli::{BrokerArgs, DocArgs, Progress, parse_topic};
use mbus_consumer::{Consumer, ConsumerOptions, Event, Reconnect};

use crate::delivered::Delivered;
use crate::format::Template;
use crate::from::From;
use crate::output::{Output, Style};

/// Print the messages of mbus topics, one line each, as they arrive.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// A topic to subscribe to; repeat the option for more.
    #[arg(
        short,
        long = "topic",
        value_name = "TOPIC",
        required_unless_present_any = ["completions", "man"],
        value_parser = parse_topic
    )]
    topics: Vec<String>,
    /// Where each topic starts: `earliest`, `latest`, an offset, `-N` for the last N messages,
    /// a time in UTC (`2026-12-02T10:00:00Z`), or a duration (`10m`) for what it brought.
    #[arg(short = 'o', long, default_value = "earliest", value_parser = From::parse, allow_hyphen_values = true)]
    from: From,
    /// Exit after printing this many messages.
    #[arg(short, long)]
    count: Option<u64>,
    /// Exit once every topic is printed up to where it ended when subscribed ("dump and exit").
    #[arg(short = 'e', long)]
    exit_at_end: bool,
    /// Print a JSON object per message: {"topic", "offset", "time", "headers", "data"}, with
    /// "data_base64" in place of "data" when the payload is not UTF-8, and "headers" (a list of
    /// {"name", "value"}) only when the message has some.
    #[arg(short = 'J', long, conflicts_with = "format")]
    json: bool,
    /// Print each message as this template says, as kcat does: %t the topic, %o the offset,
    /// %T the time (ms since the epoch), %h the headers (name=value,...), %s the payload, %S its
    /// size, %% a percent sign; \n, \t and \\ for a newline, a tab and a backslash. Nothing is
    /// added: end the template with \n for one message per line.
    #[arg(short, long, value_parser = Template::parse)]
    format: Option<Template>,
    /// The broker's consumer port.
    #[arg(long, default_value_t = 9991)]
    port: u16,
    /// When the connection is lost, connect again this many times (waiting 100 ms, doubling up
    /// to 5 s) and go on where each topic left off; 0 exits instead.
    #[arg(long, default_value_t = 30)]
    reconnect_attempts: u32,
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

const RECEIVE: &str = "cannot receive from the broker";

fn run(cli: &Cli) -> anyhow::Result<()> {
    if cli
        .docs
        .print(Cli::command())
        .context("cannot write to stdout")?
    {
        return Ok(());
    }
    let mut options = ConsumerOptions::default();
    options.connect.auth_token = cli.broker.auth_token.clone();
    options.reconnect = (cli.reconnect_attempts > 0).then(|| {
        let mut reconnect = Reconnect::default();
        reconnect.max_attempts = cli.reconnect_attempts;
        reconnect
    });
    let host = &cli.broker.host;
    let mut consumer = Consumer::connect((host.as_str(), cli.port), &options)
        .with_context(|| format!("cannot connect to the broker at {host}:{}", cli.port))?;
    let start = cli.from.resolve(SystemTime::now());
    for topic in &cli.topics {
        consumer
            .subscribe(topic, start)
            .with_context(|| format!("cannot subscribe to `{topic}`"))?;
    }
    let style = match (&cli.format, cli.json) {
        (Some(template), _) => Style::Format(template.clone()),
        (None, true) => Style::Json,
        (None, false) => Style::Plain,
    };
    let mut out = Output::new(io::stdout().lock(), style);
    let mut progress = Progress::new("received", cli.verbose);
    let result = consume(cli, &mut consumer, &mut out, &mut progress);
    progress.finish("");
    result
}

/// Prints what arrives until the count is reached, every topic is at its end (with
/// `--exit-at-end`), or stdout closes.
fn consume(
    cli: &Cli,
    consumer: &mut Consumer,
    out: &mut Output<io::StdoutLock<'_>>,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let mut ends = Ends::default();
    while cli.count.is_none_or(|count| progress.messages() < count)
        && !(cli.exit_at_end && ends.all_reached(cli.topics.len()))
    {
        // Flushing only before the consumer would block keeps bulk output in large writes
        // while a reader at a terminal sees each line at once.
        let event = match consumer.try_next_event().context(RECEIVE)? {
            Some(event) => event,
            None => {
                if !still_open(out.flush())? {
                    return Ok(());
                }
                consumer.next_event().context(RECEIVE)?
            }
        };
        match event {
            Event::Message {
                topic,
                offset,
                time,
                headers,
                data,
            } => {
                let m = Delivered {
                    topic,
                    offset,
                    time,
                    headers,
                    data,
                };
                if !still_open(out.message(&m))? {
                    return Ok(());
                }
                progress.add(data.len());
                ends.reached(topic, offset + 1);
            }
            Event::Gap { topic, from, to } => {
                warn!(
                    "topic `{topic}`: {} messages were lost to retention (offsets {from} to {})",
                    to.saturating_sub(from),
                    to.saturating_sub(1)
                );
                ends.reached(topic, to);
            }
            Event::Subscribed {
                topic,
                offset,
                first,
                next,
            } => {
                info!(
                    "subscribed to `{topic}`, starting at offset {offset}; it holds offsets \
                     {first} to {next} (exclusive)"
                );
                ends.subscribed(topic, offset, next);
            }
            other => info!("{other:?}"),
        }
    }
    still_open(out.flush())?;
    Ok(())
}

/// Where each topic ended when it was subscribed, and whether the output got there.
#[derive(Debug, Default)]
struct Ends {
    /// Each topic's end and position.
    topics: HashMap<String, (u64, u64)>,
    /// Topics at their end.
    reached: usize,
}

impl Ends {
    fn subscribed(&mut self, topic: &str, offset: u64, end: u64) {
        if let Some((_, at)) = self.topics.remove(topic) {
            self.reached -= usize::from(at >= end);
        }
        self.topics.insert(topic.to_owned(), (end, offset));
        self.reached += usize::from(offset >= end);
    }

    /// Records that `topic` was printed up to `at` (exclusive).
    fn reached(&mut self, topic: &str, at: u64) {
        if let Some((end, position)) = self.topics.get_mut(topic) {
            let before = *position >= *end;
            *position = (*position).max(at);
            self.reached += usize::from(!before && *position >= *end);
        }
    }

    /// Whether each of `topics` subscribed topics is at its end.
    fn all_reached(&self, topics: usize) -> bool {
        self.topics.len() >= topics && self.reached >= topics
    }
}

/// Whether stdout still takes output. A reader that went away (`| head`) ends the program
/// quietly, as it ends other filters.
fn still_open(written: io::Result<()>) -> anyhow::Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mbus_consumer::Start;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mbus-consumer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_read_everything_from_the_local_consumer_port() {
        let cli = parse(&["--topic", "orders"]).unwrap();
        assert_eq!(cli.topics, ["orders"]);
        assert_eq!(cli.from, From::Start(Start::Earliest));
        assert!(!cli.exit_at_end);
        assert_eq!((cli.broker.host.as_str(), cli.port), ("127.0.0.1", 9991));
        assert_eq!(cli.count, None);
        assert!(!cli.json);
    }

    #[test]
    fn topic_repeats_and_from_takes_every_start() {
        let cli = parse(&[
            "--topic", "a", "--topic", "b", "--from", "42", "--count", "3",
        ])
        .unwrap();
        assert_eq!(cli.topics, ["a", "b"]);
        assert_eq!(cli.from, From::Start(Start::Offset(42)));
        assert_eq!(cli.count, Some(3));
        let latest = parse(&["--topic", "a", "--from", "latest"]).unwrap();
        assert_eq!(latest.from, From::Start(Start::Latest));
        let last = parse(&["--topic", "a", "--from", "-10", "--exit-at-end"]).unwrap();
        assert_eq!(last.from, From::Start(Start::Last(10)));
        assert!(last.exit_at_end);
    }

    #[test]
    fn ends_are_reached_by_messages_gaps_and_empty_topics() {
        let mut ends = Ends::default();
        ends.subscribed("a", 3, 5);
        ends.subscribed("b", 7, 7);
        assert!(!ends.all_reached(2), "a is at 3 of 5");
        ends.reached("a", 4);
        assert!(!ends.all_reached(2));
        ends.reached("a", 5);
        assert!(ends.all_reached(2));
        ends.reached("a", 6);
        assert!(ends.all_reached(2), "counted once");
        assert!(!ends.all_reached(3), "a third topic has not answered");
        ends.subscribed("a", 0, 5);
        assert!(!ends.all_reached(2), "a resubscription starts again");
        ends.reached("a", 9);
        assert!(ends.all_reached(2), "a gap past the end reaches it");
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        use clap::error::ErrorKind;
        let cases: [(&[&str], ErrorKind); 4] = [
            (&[], ErrorKind::MissingRequiredArgument),
            (&["--topic", "a b"], ErrorKind::ValueValidation),
            (
                &["--topic", "a", "--from", "soon"],
                ErrorKind::ValueValidation,
            ),
            (
                &["--topic", "a", "--count", "-1"],
                ErrorKind::UnknownArgument,
            ),
        ];
        for (args, kind) in cases {
            assert_eq!(parse(args).unwrap_err().kind(), kind, "{args:?}");
        }
    }
}
