//! `/metrics`: the core's figures in the Prometheus exposition format, encoded with
//! `prometheus-client` from a registry built for each scrape, so that a scrape always sees the
//! values of that moment. Names follow Prometheus's rules: `mbus_` first, base units
//! (`_bytes`, `_seconds`), `_total` on counters.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::Context;
use crate::engine::inspect::{ERROR_CODES, GroupInfo};
use mbus_proto::ErrorCode;

/// At most this many topics get series of their own, the first by name; the broker-wide series
/// count every topic.
pub const MAX_TOPIC_SERIES: usize = 1000;

type Labels = Vec<(String, String)>;

/// What the loop measures of its commits, kept across scrapes.
#[derive(Debug, Clone)]
pub struct CommitMetrics {
    /// How long each group commit took, syncs included.
    pub duration: Histogram,
    /// How many topics each group commit made durable.
    pub topics: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            // 10 µs to about 10 s.
            duration: Histogram::new(exponential_buckets(1e-5, 4.0, 11)),
            topics: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
        }
    }
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The exposition text of everything the broker measures.
pub fn exposition(cx: &Context<'_>) -> String {
    let core: &crate::engine::Core = cx.core;
    let stats = core.stats();
    let counters = core.counters();
    let mut registry = Registry::with_prefix("mbus");

    let connections = Family::<Labels, Gauge>::default();
    let infos = core.conn_infos();
    for role in ["producer", "consumer"] {
        let n = infos.iter().filter(|c| c.role.as_str() == role).count();
        connections
            .get_or_create(&labels(&[("role", role)]))
            .set(n as i64);
    }
    registry.register("connections", "Client connections open now", connections);
    registry.register(
        "connections_opened",
        "Client connections accepted since start",
        counter(stats.connections_total),
    );
    registry.register("topics", "Topics that exist", gauge(stats.topics as u64));
    registry.register(
        "topics_unavailable",
        "Topics whose files could not be opened at start",
        gauge(stats.unavailable_topics as u64),
    );
    registry.register(
        "messages_published",
        "Messages published since start",
        counter(stats.messages),
    );
    registry.register_with_unit(
        "published",
        "Payload bytes published since start",
        Unit::Bytes,
        counter(counters.published_bytes),
    );
    registry.register(
        "messages_delivered",
        "Messages written to consumers since start, each consumer counted",
        counter(counters.delivered),
    );
    registry.register_with_unit(
        "delivered",
        "Bytes of deliveries written to consumers since start",
        Unit::Bytes,
        counter(counters.delivered_bytes),
    );
    registry.register(
        "confirms",
        "Confirm frames sent since start",
        counter(counters.confirms),
    );
    registry.register(
        "gaps",
        "Gap frames sent since start: consumers told of messages they missed",
        counter(counters.gaps),
    );
    registry.register(
        "publishes_deduplicated",
        "Publishes of idempotent producers confirmed without being stored again: resends of what was stored",
        counter(counters.deduplicated),
    );
    registry.register(
        "messages_dropped",
        "Messages of memory-only topics dropped by retention or the memory budget",
        counter(counters.dropped),
    );
    let errors = Family::<Labels, Counter>::default();
    for (code, &n) in counters.errors.iter().enumerate() {
        if n > 0 {
            let name = if code == ERROR_CODES - 1 {
                "other".to_owned()
            } else {
                format!("{:?}", ErrorCode::from_u16(code as u16))
            };
            errors.get_or_create(&labels(&[("code", &name)])).inc_by(n);
        }
    }
    registry.register(
        "errors",
        "Error frames sent to peers since start, by code (SlowConsumer among them)",
        errors,
    );
    registry.register_with_unit(
        "memory_held",
        "Memory all topics' logs hold",
        Unit::Bytes,
        gauge(stats.memory_held as u64),
    );
    registry.register(
        "memory_evictions",
        "Buffers taken back from logs to keep within the memory budget",
        counter(stats.memory_evicted),
    );
    registry.register_with_unit(
        "memory_pooled",
        "Memory of segment buffers pooled for reuse, on top of what the logs hold",
        Unit::Bytes,
        gauge(stats.memory_pooled as u64),
    );
    registry.register(
        "segments_reused",
        "Whole segments started with a pooled buffer",
        counter(stats.segments_reused),
    );
    registry.register(
        "segments_allocated",
        "Whole segments started with fresh memory",
        counter(stats.segments_allocated),
    );

    let mut topics = core.topic_infos();
    let disk: u64 = topics.iter().filter_map(|t| t.disk_bytes).sum();
    registry.register_with_unit(
        "disk",
        "Bytes of all topics' files on disk",
        Unit::Bytes,
        gauge(disk),
    );
    registry.register_with_unit(
        "commit_duration",
        "Time each group commit took, syncs included",
        Unit::Seconds,
        cx.commits.duration.clone(),
    );
    registry.register(
        "commit_topics",
        "Topics each group commit made durable",
        cx.commits.topics.clone(),
    );

    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics.truncate(MAX_TOPIC_SERIES);
    let per_topic = |help: &str, value: &dyn Fn(&crate::engine::inspect::TopicInfo) -> u64| {
        let family = Family::<Labels, Gauge>::default();
        for topic in &topics {
            family
                .get_or_create(&labels(&[("topic", &topic.name)]))
                .set(i64::try_from(value(topic)).unwrap_or(i64::MAX));
        }
        (help.to_owned(), family)
    };
    for (name, (help, family)) in [
        (
            "topic_messages",
            per_topic("Messages a topic holds", &|t| t.next - t.first),
        ),
        (
            "topic_first_offset",
            per_topic("A topic's oldest offset", &|t| t.first),
        ),
        (
            "topic_next_offset",
            per_topic("The offset a topic's next message gets", &|t| t.next),
        ),
        (
            "topic_subscribers",
            per_topic("Consumers subscribed to a topic", &|t| {
                t.subscribers.len() as u64
            }),
        ),
        (
            "topic_max_lag",
            per_topic(
                "Messages the furthest behind consumer of a topic has not read",
                &|t| t.subscribers.iter().map(|s| s.lag).max().unwrap_or(0),
            ),
        ),
    ] {
        registry.register(name, help, family);
    }
    let memory = per_topic("Bytes of a topic's messages in memory", &|t| {
        t.memory_bytes as u64
    });
    registry.register_with_unit("topic_memory", memory.0, Unit::Bytes, memory.1);

    // Each group of the topics above, labelled with its topic and name.
    let groups: Vec<(&str, &GroupInfo)> = topics
        .iter()
        .flat_map(|t| t.groups.iter().map(move |g| (t.name.as_str(), g)))
        .collect();
    register_per_group::<Gauge>(
        &mut registry,
        &groups,
        &[
            ("group_members", "Members of a consumer group", &|g| {
                u64::from(g.stats.members)
            }),
            (
                "group_lag",
                "Messages of a topic its consumer group has not finished with",
                &|g| g.lag,
            ),
            (
                "group_in_flight",
                "Messages a consumer group's members hold unacknowledged",
                &|g| g.stats.in_flight,
            ),
            (
                "group_waiting",
                "Messages waiting to be given out again by a consumer group",
                &|g| g.stats.waiting,
            ),
        ],
        |gauge, value| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        },
    );
    register_per_group::<Counter>(
        &mut registry,
        &groups,
        &[
            (
                "group_redeliveries",
                "Deliveries of a message again by a consumer group",
                &|g| g.stats.redelivered,
            ),
            (
                "group_dead_letters",
                "Messages a consumer group sent to its dead-letter topic",
                &|g| g.stats.dead_lettered,
            ),
            (
                "group_lost",
                "Messages retention removed before a consumer group finished with them",
                &|g| g.stats.lost,
            ),
        ],
        |counter, value| {
            counter.inc_by(value);
        },
    );

    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// One figure of a group as a metric: its name, its help, and how it is read.
type GroupSeries<'a> = (&'a str, &'a str, &'a dyn Fn(&GroupInfo) -> u64);

/// Registers a family per entry of `series`, with one series for each of `groups` (labelled
/// with its topic and name) given its figure by `set`.
fn register_per_group<M>(
    registry: &mut Registry,
    groups: &[(&str, &GroupInfo)],
    series: &[GroupSeries<'_>],
    set: fn(&M, u64),
) where
    M: Default,
    Family<Labels, M>: prometheus_client::registry::Metric,
{
    for &(name, help, value) in series {
        let family = Family::<Labels, M>::default();
        for (topic, group) in groups {
            set(
                &family.get_or_create(&labels(&[("topic", topic), ("group", &group.name)])),
                value(group),
            );
        }
        registry.register(name, help, family);
    }
}

/// The same exposition in the classic Prometheus text format (0.0.4), for clients that do not
/// ask for OpenMetrics (`curl`, `promtool check metrics`, older scrapers). The two differ only
/// in what the encoder writes here: a counter's `HELP` and `TYPE` name its `_total` series,
/// and there are no `UNIT` or `EOF` lines.
pub fn classic(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_by_their_series() {
        let openmetrics = "# HELP mbus_confirms Confirms.\n# TYPE mbus_confirms counter\n\
                           mbus_confirms_total 3\n# HELP mbus_memory_held_bytes Held.\n\
                           # TYPE mbus_memory_held_bytes gauge\n# UNIT mbus_memory_held_bytes bytes\n\
                           mbus_memory_held_bytes 7\n# EOF\n";
        assert_eq!(
            classic(openmetrics),
            "# HELP mbus_confirms_total Confirms.\n# TYPE mbus_confirms_total counter\n\
             mbus_confirms_total 3\n# HELP mbus_memory_held_bytes Held.\n\
             # TYPE mbus_memory_held_bytes gauge\nmbus_memory_held_bytes 7\n"
        );
    }
}
