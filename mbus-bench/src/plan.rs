//! What the bench runs: the targets, the workloads with their sizes, and the figures each
//! workload produces, as the table names them.

use std::fmt;
use std::time::Duration;

use clap::ValueEnum;

use super::Args;
use super::report::{self, Better};

/// Bytes of payload in every workload but w5.
pub const PAYLOAD: usize = 128;
/// Bytes of payload in w5.
pub const LARGE_PAYLOAD: usize = 64 << 10;
/// Messages a second in the latency workload.
pub const LATENCY_RATE: u32 = 20_000;
/// Connections opened and left idle in m1.
pub const IDLE_CONNECTIONS: u32 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Mbus,
    Nats,
    Redis,
    /// The bare relay (`relay.rs`), the limit: forwarding and nothing else.
    Relay,
}

impl Kind {
    /// The name in the table, which for the peers is also their program's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mbus => "mbus",
            Kind::Nats => "nats-server",
            Kind::Redis => "redis-server",
            Kind::Relay => "relay",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 1 publisher, 1 subscriber
    W1,
    /// 1 publisher, 4 subscribers
    W2,
    /// 4 publishers, 1 subscriber
    W3,
    /// One-way latency at a paced rate
    W4,
    /// 64 KiB payloads
    W5,
    /// Memory: retained messages (mbus only) and idle connections
    M1,
    /// mbus's own producer and consumer binaries (mbus only)
    Own,
}

impl Workload {
    pub fn mbus_only(self) -> bool {
        self == Workload::Own
    }

    /// Whether the workload is run against targets of `kind` at all.
    pub fn runs_on(self, kind: Kind) -> bool {
        match kind {
            Kind::Mbus => true,
            Kind::Relay => self.on_live_server(),
            Kind::Nats | Kind::Redis => !self.mbus_only(),
        }
    }

    /// Whether the workload runs against the long-running server of its target; m1 measures
    /// memory, which a server that served other workloads would skew, and own starts its own.
    pub fn on_live_server(self) -> bool {
        !matches!(self, Workload::M1 | Workload::Own)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.to_possible_value().expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

/// How big each workload is, and how often it runs.
pub struct Scale {
    pub quick: bool,
    pub runs: u32,
    pub latency: Duration,
    /// Longest a single run may take before it fails.
    pub timeout: Duration,
}

impl Scale {
    pub fn new(args: &Args) -> Scale {
        Scale {
            quick: args.quick,
            runs: args.runs.unwrap_or(if args.quick { 1 } else { 3 }),
            latency: Duration::from_secs(if args.quick { 1 } else { 5 }),
            timeout: Duration::from_secs(if args.quick { 30 } else { 120 }),
        }
    }

    /// A message count of the full bench, scaled.
    pub fn count(&self, full: u64) -> u64 {
        if self.quick { full / 10 } else { full }
    }
}

/// One figure a workload produces.
pub struct Metric {
    pub workload: Workload,
    pub label: String,
    pub unit: &'static str,
    pub better: Better,
    pub mbus_only: bool,
}

impl Metric {
    pub fn applies_to(&self, kind: Kind) -> bool {
        match kind {
            Kind::Mbus => true,
            // The relay runs in the bench's own process: its memory is not its own to measure.
            Kind::Relay => !self.mbus_only && self.workload.on_live_server(),
            Kind::Nats | Kind::Redis => !self.mbus_only,
        }
    }
}

pub fn metrics(workload: Workload, scale: &Scale) -> Vec<Metric> {
    let n = |full| report::figure(scale.count(full) as f64);
    let metric = |label: String, unit, better, mbus_only| Metric {
        workload,
        label,
        unit,
        better,
        mbus_only,
    };
    let latency = |name: &str| {
        let label = format!(
            "w4: one-way latency at {} msgs/s for {} s, {PAYLOAD} B, {name}",
            report::figure(LATENCY_RATE.into()),
            scale.latency.as_secs()
        );
        metric(label, "µs", Better::Lower, false)
    };
    match workload {
        Workload::W1 => vec![metric(
            format!(
                "w1: 1 publisher -> 1 subscriber, {} x {PAYLOAD} B",
                n(1_000_000)
            ),
            "msgs/s",
            Better::Higher,
            false,
        )],
        Workload::W2 => vec![metric(
            format!(
                "w2: 1 publisher -> 4 subscribers, {} x {PAYLOAD} B",
                n(250_000)
            ),
            "deliveries/s",
            Better::Higher,
            false,
        )],
        Workload::W3 => vec![metric(
            format!(
                "w3: 4 publishers -> 1 subscriber, {} x {PAYLOAD} B each",
                n(250_000)
            ),
            "msgs/s",
            Better::Higher,
            false,
        )],
        Workload::W4 => ["p50", "p99", "p99.9", "max"].map(latency).into(),
        Workload::W5 => vec![metric(
            format!("w5: 1 publisher -> 1 subscriber, {} x 64 KiB", n(20_000)),
            "MB/s of payload",
            Better::Higher,
            false,
        )],
        Workload::M1 => vec![
            metric(
                format!(
                    "m1: broker RSS after {} retained {PAYLOAD} B messages / their payload bytes",
                    n(1_000_000)
                ),
                "ratio",
                Better::Lower,
                true,
            ),
            metric(
                format!(
                    "m1: RSS growth per idle connection, {} connections",
                    report::figure(IDLE_CONNECTIONS.into())
                ),
                "KiB",
                Better::Lower,
                false,
            ),
        ],
        Workload::Own => vec![metric(
            format!(
                "own clients: mbus-producer -> mbus-consumer, {} lines of {PAYLOAD} B",
                n(1_000_000)
            ),
            "msgs/s",
            Better::Higher,
            true,
        )],
    }
}
