//! `mbus-bench` (run as `cargo xtask bench`): the same workloads against mbus and two peers,
//! nats-server and redis-server, on loopback in one run, reported as a markdown table of
//! medians and ratios to nats-server. It is always an optimized build: the load generator
//! shares the machine with the servers, so its own speed is part of every figure.
//!
//! Every target gets a freshly started server for every run, and the same load generator
//! (`load`): raw protocol over `std::net::TcpStream`, publishers and subscribers as threads
//! of this process. Only the few protocol pieces of the `Target` trait differ. `--durable`
//! adds a table of confirmed publishes to brokers that store on disk (`durable`).

mod durable;
mod jetstream;
mod load;
mod machine;
mod mbus;
mod memory;
mod nats;
mod peer;
mod plan;
mod queue;
mod record;
mod redis;
mod relay;
mod report;
mod target;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use plan::{
    IDLE_CONNECTIONS, Kind, LARGE_PAYLOAD, LATENCY_RATE, Metric, PAYLOAD, Scale, Workload, metrics,
};
use report::{Cell, Row};
use target::Target;
use workloads::Flow;

use xtask::workspace::{self, Binaries, show};

const INSTALL_HINT: &str = "apt-get install nats-server redis-server";
/// Run the same workloads against mbus, nats-server and redis-server and print a table.
#[derive(Parser)]
#[command(name = "mbus-bench", about)]
pub struct Args {
    /// A smoke check: a tenth of the messages, 1 s of latency, one run of each
    #[arg(long)]
    quick: bool,
    /// Bench only this target; repeat for more [default: all three]
    #[arg(long, value_enum)]
    only: Vec<Kind>,
    /// Workloads to run, comma-separated [default: all]
    #[arg(long, value_enum, value_delimiter = ',')]
    workload: Vec<Workload>,
    /// Runs of each workload per target [default: 3, or 1 with --quick]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Bench confirmed publishes to brokers that store on disk: mbus --data-dir with --fsync
    /// always and batch, nats-server JetStream file storage; no other workload unless
    /// --workload names it
    #[arg(long)]
    durable: bool,
    /// Bench a work queue: 1 publisher and 4 workers acking each message, against an mbus
    /// consumer group, a JetStream work-queue stream with a pull consumer, and a Redis Streams
    /// consumer group; no other workload unless --workload names it
    #[arg(long)]
    queue: bool,
    /// Run mbus with its monitoring port on (`--http`) and scrape `/metrics` once a second
    /// during every run, as a Prometheus would
    #[arg(long)]
    scrape: bool,
    /// mbus's retention per topic (`--retention-bytes`), e.g. 4GiB to bench a broker that
    /// holds gigabytes [default: the broker's, 256 MiB]
    #[arg(long, value_name = "SIZE")]
    mbus_retention: Option<String>,
}

/// A target in the table, and the program that runs it (none for mbus: cargo built it).
struct Column {
    kind: Kind,
    exe: Option<PathBuf>,
}

impl Column {
    /// The peer's program, which every column but mbus's and the relay's has.
    fn exe(&self) -> anyhow::Result<&Path> {
        self.exe.as_deref().context("the peer's program is unknown")
    }
}

/// Each metric's figures so far, per column.
struct Tally {
    metric: Metric,
    cells: Vec<Figures>,
}

/// One cell's figures so far: one per run, and whether any run failed.
#[derive(Default)]
struct Figures {
    values: Vec<f64>,
    failed: bool,
}

impl Figures {
    fn cell(&self) -> Cell {
        if self.failed {
            Cell::Fail
        } else {
            Cell::Runs(self.values.clone())
        }
    }
}

/// What one run measured: the figures of its workload that apply to its target, in the order
/// of [`metrics`], and a remark for the progress line.
struct Outcome {
    figures: Vec<f64>,
    note: Option<String>,
}

impl From<Vec<f64>> for Outcome {
    fn from(figures: Vec<f64>) -> Outcome {
        Outcome {
            figures,
            note: None,
        }
    }
}

struct Bench {
    bins: Binaries,
    scratch: PathBuf,
    scale: Scale,
    scrape: bool,
    mbus_retention: Option<String>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    // The idle-connection measure holds 10,000 sockets open at once on this side too.
    rlimit::increase_nofile_limit(u64::MAX).context("cannot raise the file descriptor limit")?;
    let scale = Scale::new(args);
    let workloads: Vec<Workload> = Workload::value_variants()
        .iter()
        .copied()
        .filter(|w| {
            if args.workload.is_empty() {
                !args.durable && !args.queue
            } else {
                args.workload.contains(w)
            }
        })
        .collect();
    // The durable mode alone needs no Redis.
    let wanted = |kind: Kind| {
        (args.only.is_empty() || args.only.contains(&kind))
            && (!workloads.is_empty()
                || (args.durable && durable::has_setup(kind))
                || (args.queue && kind != Kind::Relay))
    };
    let columns = columns(wanted);
    if columns.is_empty() {
        bail!("none of the targets asked for has anything to bench");
    }

    eprintln!("bench: building mbus-broker, mbus-producer and mbus-consumer (release build)");
    let bins = workspace::build(true)?;
    let bench = Bench {
        bins,
        scratch: workspace::scratch_dir()?,
        scale,
        scrape: args.scrape,
        mbus_retention: args.mbus_retention.clone(),
    };

    let mut tallies: Vec<Tally> = workloads
        .iter()
        .flat_map(|&w| metrics(w, &bench.scale))
        .map(|metric| Tally {
            metric,
            cells: columns.iter().map(|_| Figures::default()).collect(),
        })
        .collect();
    let mut failures = Vec::new();
    let runs = bench.scale.runs;
    // As users run a broker: each target is started once and serves every pass of every
    // workload that runs against a live server; the passes go over all those workloads in
    // turn, and the targets take turns within each, so that a drifting machine hits all alike.
    let live: Vec<Workload> = workloads
        .iter()
        .copied()
        .filter(|w| w.on_live_server())
        .collect();
    let mut servers: Vec<Option<Box<dyn Target>>> = Vec::new();
    if !live.is_empty() {
        for column in &columns {
            match bench.start(column) {
                Ok(target) => servers.push(Some(target)),
                Err(e) => {
                    failures.push(format!("starting {}: {e:#}", column.kind.name()));
                    servers.push(None);
                }
            }
        }
    }
    for run in 1..=runs {
        for &workload in &live {
            for (col, column) in columns.iter().enumerate() {
                if !workload.runs_on(column.kind) {
                    continue;
                }
                let what = format!("{workload} {} run {run}/{runs}", column.kind.name());
                let mine = cells_of(&mut tallies, workload, col, column.kind);
                let outcome = match &servers[col] {
                    Some(target) => bench.measure(workload, column.kind, target.as_ref()),
                    None => Err(anyhow::anyhow!("the server did not start")),
                };
                file_run(&what, outcome, mine, &mut failures);
            }
        }
    }
    for (server, column) in servers.into_iter().zip(&columns) {
        if let Some(Err(e)) = server.map(|s| s.stop()) {
            failures.push(format!("stopping {}: {e:#}", column.kind.name()));
        }
    }
    // What needs a server of its own (memory use) or starts its own (the clients' pair).
    for &workload in workloads.iter().filter(|w| !w.on_live_server()) {
        for run in 1..=runs {
            for (col, column) in columns.iter().enumerate() {
                if !workload.runs_on(column.kind) {
                    continue;
                }
                let what = format!("{workload} {} run {run}/{runs}", column.kind.name());
                let mine = cells_of(&mut tallies, workload, col, column.kind);
                file_run(&what, bench.run_once(workload, column), mine, &mut failures);
            }
        }
    }
    let durable = args.durable.then(|| bench.durable(&columns, &mut failures));

    let queue = args.queue.then(|| bench.queue(&columns, &mut failures));
    let mut text = render(&bench, &columns, &tallies, durable.as_ref(), &failures);
    if let Some(queue) = queue {
        text += "\n";
        text += &queue;
    }
    println!("{text}");
    let path = bench.scratch.join("bench.md");
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", show(&path)))?;
    eprintln!("bench: the table is also in {}", show(&path));
    let names: Vec<&str> = columns.iter().map(|c| c.kind.name()).collect();
    let baseline = columns.iter().position(|c| c.kind == Kind::Nats);
    for chart in report::charts::draw(&bench.scratch, &names, baseline, &rows(&columns, &tallies))?
    {
        eprintln!("bench: drew {}", show(&chart));
    }
    if !failures.is_empty() {
        bail!(
            "{} runs failed; the table shows FAIL for them",
            failures.len()
        );
    }
    Ok(())
}

/// The cells one run of `workload` against column `col` fills, each with its unit, in the order
/// of the run's figures.
fn cells_of(
    tallies: &mut [Tally],
    workload: Workload,
    col: usize,
    kind: Kind,
) -> Vec<(&'static str, &mut Figures)> {
    tallies
        .iter_mut()
        .filter(|t| t.metric.workload == workload && t.metric.applies_to(kind))
        .map(|t| (t.metric.unit, &mut t.cells[col]))
        .collect()
}

/// Files one run's figures, in order, into the cells they belong to, each with its unit, and
/// prints its progress line; a failed run marks those cells failed and is listed with its
/// reason.
fn file_run(
    what: &str,
    outcome: anyhow::Result<Outcome>,
    cells: Vec<(&'static str, &mut Figures)>,
    failures: &mut Vec<String>,
) {
    match outcome {
        Ok(outcome) => {
            let mut shown = Vec::new();
            for ((unit, figures), value) in cells.into_iter().zip(outcome.figures) {
                shown.push(format!("{} {unit}", report::figure(value)));
                figures.values.push(value);
            }
            shown.extend(outcome.note);
            eprintln!("bench: {what}: {}", shown.join(", "));
        }
        Err(e) => {
            eprintln!("bench: {what}: FAIL: {e:#}");
            failures.push(format!("{what}: {e:#}"));
            for (_, figures) in cells {
                figures.failed = true;
            }
        }
    }
}

/// Runs `measure` against `target`, then stops the target, whatever `measure` returned; a run
/// succeeds only if both do.
fn stop_after<T>(
    target: Box<dyn Target>,
    measure: impl FnOnce(&dyn Target) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let measured = measure(&*target);
    let stopped = target.stop();
    let outcome = measured?;
    stopped?;
    Ok(outcome)
}

/// The targets `wanted`, in table order, without the peers that are not installed.
fn columns(wanted: impl Fn(Kind) -> bool) -> Vec<Column> {
    let mut columns = Vec::new();
    for &kind in Kind::value_variants() {
        if !wanted(kind) {
            continue;
        }
        if matches!(kind, Kind::Mbus | Kind::Relay) {
            columns.push(Column { kind, exe: None });
            continue;
        }
        match machine::find_program(kind.name()) {
            Some(exe) => columns.push(Column {
                kind,
                exe: Some(exe),
            }),
            None => eprintln!(
                "bench: {} is not installed, so the bench runs without it; to include it: \
                 {INSTALL_HINT}",
                kind.name()
            ),
        }
    }
    columns
}

impl Bench {
    /// One run of one workload against a freshly started server, stopped afterwards: for
    /// what a live server would skew (memory use) or what starts its own (the clients' pair).
    fn run_once(&self, workload: Workload, column: &Column) -> anyhow::Result<Outcome> {
        let scale = &self.scale;
        if workload == Workload::Own {
            let count = scale.count(1_000_000);
            let flags = mbus::flags(self.mbus_retention.as_deref());
            let elapsed = workloads::own_clients(
                &self.bins,
                &self.scratch,
                &flags,
                count,
                PAYLOAD,
                scale.timeout,
            )?;
            return Ok(vec![count as f64 / elapsed.as_secs_f64()].into());
        }
        let target = self.start(column)?;
        stop_after(target, |target| self.measure(workload, column.kind, target))
    }

    /// The server of `column`, started and ready.
    fn start(&self, column: &Column) -> anyhow::Result<Box<dyn Target>> {
        let exe = || column.exe();
        Ok(match column.kind {
            Kind::Mbus => Box::new(mbus::start(
                &self.bins,
                &self.scratch,
                self.mbus_retention.as_deref(),
                self.scrape,
            )?),
            Kind::Nats => Box::new(nats::start(exe()?, &self.scratch)?),
            Kind::Redis => Box::new(redis::start(exe()?, &self.scratch)?),
            Kind::Relay => Box::new(relay::start()?),
        })
    }

    /// The figures of `workload` that apply to `kind`, in the order of [`metrics`].
    fn measure(
        &self,
        workload: Workload,
        kind: Kind,
        target: &dyn Target,
    ) -> anyhow::Result<Outcome> {
        let scale = &self.scale;
        let flow = |publishers, subscribers, per_publisher, size| Flow {
            publishers,
            subscribers,
            per_publisher: scale.count(per_publisher),
            size,
        };
        let rate = |flow: Flow| workloads::throughput(target, &flow, scale.timeout);
        let figures = match workload {
            Workload::W1 => vec![rate(flow(1, 1, 1_000_000, PAYLOAD))?.per_second()],
            Workload::W2 => vec![rate(flow(1, 4, 250_000, PAYLOAD))?.per_second()],
            Workload::W3 => vec![rate(flow(4, 1, 250_000, PAYLOAD))?.per_second()],
            Workload::W4 => {
                let l = workloads::latency(
                    target,
                    LATENCY_RATE,
                    scale.latency,
                    PAYLOAD,
                    scale.timeout,
                )?;
                let note = format!("paced at {} msgs/s", report::figure(l.paced));
                return Ok(Outcome {
                    figures: vec![l.p50, l.p99, l.p999, l.max],
                    note: Some(note),
                });
            }
            Workload::W5 => vec![rate(flow(1, 1, 20_000, LARGE_PAYLOAD))?.megabytes_per_second()],
            Workload::M1 => {
                let mut figures = Vec::new();
                let mut note = None;
                if kind == Kind::Mbus {
                    let count = scale.count(1_000_000);
                    let rss = workloads::retained(target, count, PAYLOAD, scale.timeout)?;
                    figures.push(rss as f64 / (count as f64 * PAYLOAD as f64));
                    note = Some(format!("{} MB resident", report::figure(rss as f64 / 1e6)));
                }
                let per_connection =
                    workloads::idle_connections(target, IDLE_CONNECTIONS, scale.timeout)?;
                figures.push(per_connection / 1024.0);
                return Ok(Outcome { figures, note });
            }
            Workload::Own => bail!("the own-clients workload runs no target"),
        };
        Ok(figures.into())
    }
}

/// The table's rows: each metric's cells, one per column.
fn rows(columns: &[Column], tallies: &[Tally]) -> Vec<Row> {
    tallies
        .iter()
        .map(|t| Row {
            label: t.metric.label.clone(),
            unit: t.metric.unit,
            better: t.metric.better,
            cells: columns
                .iter()
                .zip(&t.cells)
                .map(|(column, figures)| {
                    if t.metric.applies_to(column.kind) {
                        figures.cell()
                    } else {
                        Cell::NotApplicable
                    }
                })
                .collect(),
        })
        .collect()
}

/// The whole report: what was measured on what, the tables, and why any run failed.
fn render(
    bench: &Bench,
    columns: &[Column],
    tallies: &[Tally],
    durable: Option<&durable::Results>,
    failures: &[String],
) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.kind.name()).collect();
    let baseline = columns.iter().position(|c| c.kind == Kind::Nats);
    let rows = rows(columns, tallies);
    let peers: Vec<String> = columns
        .iter()
        .filter_map(|c| {
            Some(format!(
                "{} {}",
                c.kind.name(),
                machine::version(c.exe.as_deref()?)
            ))
        })
        .collect();
    let scale = &bench.scale;
    let mut text = String::new();
    text += &format!("Machine: {}.\n", machine::describe());
    text += &format!("mbus commit {} (release build)", machine::commit());
    if !peers.is_empty() {
        text += &format!("; peers: {}", peers.join(", "));
    }
    text += ".\n";
    let runs = match scale.runs {
        1 => "One run".to_owned(),
        n => format!("Median of {n} runs"),
    };
    text += &format!(
        "{runs} per target over loopback (127.0.0.1). Each target is one server started once \
         for every pass of w1 to w5, as users run a broker: each pass runs every workload in \
         turn, the targets taking turns within each; m1 and own start their own."
    );
    if baseline.is_some() && !tallies.is_empty() {
        text += " In parentheses: the figure divided by nats-server's median from the same \
                 bench run; above 1.00× is better where higher is better, below 1.00× where \
                 lower is better.";
    }
    if scale.quick {
        text += " `--quick`: a tenth of the messages and 1 s of latency, a smoke check, not a \
                 measurement.";
    }
    text += "\n";
    if !tallies.is_empty() {
        text += "\n";
        text += &report::render(&names, baseline, &rows);
    }
    if let Some(durable) = durable {
        text += "\n";
        text += &durable::render(durable, scale);
    }
    if !failures.is_empty() {
        text += "\nFailed runs:\n\n";
        for failure in failures {
            text += &format!("- {failure}\n");
        }
    }
    text
}
