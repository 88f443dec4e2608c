//! The `mbus-consumer` command: subscribes to topics and prints each message as one line.

mod delivered;
mod exec;
mod format;
mod from;
mod output;

use std::collections::HashMap;
use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::{CommandFactory, Parser};
use log::{info, warn};
use mbus_client::cli::{BrokerArgs, DocArgs, Progress, ReconnectArgs, parse_topic};
use mbus_consumer::{Consumer, ConsumerError, ConsumerOptions, Event};
use mbus_proto::GroupOptions;

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
    /// Exit once every topic is printed up to where it ended when subscribed ("dump and exit");
    /// with --group, once the group has given out everything the topic held when this consumer
    /// joined and has nothing waiting to be given out again.
    #[arg(short = 'e', long)]
    exit_at_end: bool,
    /// Share each topic's messages with the other members of this consumer group instead of
    /// reading all of them: each message goes to one member, and is acknowledged once it is
    /// written to stdout (or once --exec succeeded), so that what a member did not finish goes
    /// to another. The first member creates the group where --from says.
    #[arg(short = 'g', long, value_parser = parse_topic)]
    group: Option<String>,
    /// With --group: the most messages this member holds unacknowledged (default 1,000; 1
    /// with --exec, so that a busy worker leaves the rest to the others).
    #[arg(long, requires = "group", value_parser = clap::value_parser!(u32).range(1..))]
    credit: Option<u32>,
    /// With --group: run this shell command for each message, its payload on the command's
    /// stdin and MBUS_TOPIC, MBUS_OFFSET, MBUS_GROUP, MBUS_ATTEMPT and MBUS_TIME in its
    /// environment. Exit 0 acknowledges the message; anything else gives it back to the group,
    /// to be delivered again after --nak-delay. Messages are not printed.
    #[arg(short = 'x', long, requires = "group", value_name = "CMD")]
    exec: Option<String>,
    /// With --exec: how long a message whose command failed waits before it is delivered again.
    #[arg(long, requires = "exec", default_value = "0s", value_parser = humantime::parse_duration)]
    nak_delay: Duration,
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

const RECEIVE: &str = "cannot receive from the broker";
/// How often an idle member with `--exit-at-end` asks whether its group is at its end.
const IDLE_ASK: Duration = Duration::from_millis(200);

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
    options.reconnect = cli.reconnect.policy();
    let host = &cli.broker.host;
    let mut consumer = Consumer::connect((host.as_str(), cli.port), &options)
        .with_context(|| format!("cannot connect to the broker at {host}:{}", cli.port))?;
    let start = cli.from.resolve(SystemTime::now());
    for topic in &cli.topics {
        match &cli.group {
            Some(group) => {
                let credit = cli
                    .credit
                    .unwrap_or(if cli.exec.is_some() { 1 } else { 1000 });
                consumer
                    .join(topic, group, start, credit, GroupOptions::default())
                    .with_context(|| format!("cannot join group `{group}` of `{topic}`"))?
            }
            None => consumer
                .subscribe(topic, start)
                .with_context(|| format!("cannot subscribe to `{topic}`"))?,
        }
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
    // Messages of a group written to the output and not yet flushed: acked once they are.
    let mut printed: Vec<(String, u64)> = Vec::new();
    // A group's exit at its end waits for GroupState answers to this many GroupInfos.
    let mut asked = 0;
    let mut last_ask: Option<Instant> = None;
    while cli.count.is_none_or(|count| progress.messages() < count)
        && !(cli.exit_at_end && ends.all_reached(cli.topics.len()))
    {
        // Flushing only before the consumer would block keeps bulk output in large writes
        // while a reader at a terminal sees each line at once.
        let event = match consumer.try_next_event().context(RECEIVE)? {
            Some(event) => event,
            None => {
                if !flush_and_ack(cli, consumer, out, &mut printed)? {
                    return Ok(());
                }
                match &cli.group {
                    Some(group) if cli.exit_at_end => {
                        // Asked at most five times a second while idle.
                        if asked == 0 && last_ask.is_none_or(|t| t.elapsed() >= IDLE_ASK) {
                            for topic in &cli.topics {
                                consumer.group_info(topic, group).context(RECEIVE)?;
                            }
                            asked = cli.topics.len();
                            last_ask = Some(Instant::now());
                        }
                        match consumer.next_event_timeout(IDLE_ASK) {
                            Err(ConsumerError::Timeout) => continue,
                            other => other.context(RECEIVE)?,
                        }
                    }
                    _ => consumer.next_event().context(RECEIVE)?,
                }
            }
        };
        match event {
            Event::Message {
                topic,
                offset,
                time,
                headers,
                data,
                group,
                attempt,
            } => {
                let m = Delivered {
                    topic,
                    offset,
                    time,
                    headers,
                    data,
                };
                match (group, &cli.exec) {
                    (Some(group), Some(command)) => {
                        let (topic, group) = (topic.to_owned(), group.to_owned());
                        progress.add(data.len());
                        match exec::run(command, &m, &group, attempt)? {
                            exec::Verdict::Done => consumer.ack(&topic, &group, offset),
                            exec::Verdict::Failed => {
                                consumer.nak(&topic, &group, offset, cli.nak_delay)
                            }
                        }
                        .context(RECEIVE)?;
                        continue;
                    }
                    (Some(_), None) => {
                        if !still_open(out.message(&m))? {
                            return Ok(());
                        }
                        progress.add(data.len());
                        printed.push((topic.to_owned(), offset));
                        if printed.len() >= 1024
                            && !flush_and_ack(cli, consumer, out, &mut printed)?
                        {
                            return Ok(());
                        }
                    }
                    (None, _) => {
                        if !still_open(out.message(&m))? {
                            return Ok(());
                        }
                        progress.add(data.len());
                        ends.reached(topic, offset + 1);
                    }
                }
            }
            Event::Joined {
                topic,
                group,
                floor,
                next,
                end,
                ack_wait,
                max_deliver,
                dead_letter,
                ..
            } => {
                info!(
                    "joined group `{group}` of `{topic}`: offsets below {floor} are done, {next} is                      the next to give out, the topic ends at {end}; ack wait {ack_wait} ms, {max_deliver}                      deliveries, dead letters to `{dead_letter}`"
                );
                ends.joined(topic, end);
            }
            Event::GroupState { topic, state, .. } => {
                asked = asked.saturating_sub(1);
                ends.group_state(topic, state.next, state.waiting);
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
    flush_and_ack(cli, consumer, out, &mut printed)?;
    Ok(())
}

/// Flushes the output and then acknowledges the group messages it held, sending the acks at
/// once; false when stdout is gone (its messages are not acked, and go to other members).
fn flush_and_ack(
    cli: &Cli,
    consumer: &mut Consumer,
    out: &mut Output<io::StdoutLock<'_>>,
    printed: &mut Vec<(String, u64)>,
) -> anyhow::Result<bool> {
    if !still_open(out.flush())? {
        return Ok(false);
    }
    if let Some(group) = &cli.group {
        for (topic, offset) in printed.drain(..) {
            consumer.ack(&topic, group, offset).context(RECEIVE)?;
        }
        consumer.flush_acks().context(RECEIVE)?;
    }
    Ok(true)
}

/// Where each topic ended when it was subscribed, and whether the output got there.
#[derive(Debug, Default)]
struct Ends {
    /// Each topic's end and position.
    topics: HashMap<String, (u64, u64)>,
    /// Topics at their end.
    reached: usize,
    /// Topics read through a group that are not at their end yet, with where they ended when
    /// the group was joined.
    groups: HashMap<String, u64>,
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

    /// Records that a group of `topic` was joined when the topic ended at `end`: it is at its
    /// end once a `GroupState` says the group gave out that much, whatever this member printed.
    fn joined(&mut self, topic: &str, end: u64) {
        self.groups.insert(topic.to_owned(), end);
    }

    /// Records that the group of `topic` has given out everything up to the end it was joined
    /// at, if `next` is that far and nothing waits to be given out again.
    fn group_state(&mut self, topic: &str, next: u64, waiting: u64) {
        if self
            .groups
            .get(topic)
            .is_some_and(|&end| next >= end && waiting == 0)
        {
            self.groups.remove(topic);
            self.topics.insert(topic.to_owned(), (0, 0));
            self.reached += 1;
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
