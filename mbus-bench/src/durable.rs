//! `cargo xtask bench --durable`: the rate of confirmed publishes to brokers that store them on
//! disk (mbus with `--fsync always` and `--fsync batch`, nats-server with JetStream file
//! storage) at windows of 1, 100, 1,000 and 10,000 unconfirmed publishes, each run followed by a
//! read-back of the whole topic or stream, checked; for mbus, its group commits per second too,
//! read from its `/metrics`.

use std::path::Path;

use anyhow::Context;

use super::plan::{Kind, PAYLOAD, Scale};
use super::report::{self, Better, Cell, Row};
use super::target::Target;
use super::{Bench, Column, Figures, Outcome, file_run, jetstream, mbus, stop_after, workloads};
use xtask::workspace::show;

/// Messages of a full run at the widest windows; `--quick` publishes a tenth.
pub const MESSAGES: u64 = 1_000_000;
/// Most publishes unconfirmed at any time, the same for every target: a producer that waits for
/// each confirm (as a request handler does), and three that keep more in flight.
pub const WINDOWS: [u64; 4] = [1, 100, 1_000, 10_000];

/// Messages of a full run at `window`: narrow windows are bound by the sync's latency, so they
/// publish fewer, to keep each run to seconds.
pub fn messages(window: u64) -> u64 {
    match window {
        0..=1 => MESSAGES / 50,
        2..=100 => MESSAGES / 5,
        _ => MESSAGES,
    }
}

/// A broker and how it is set to store, a column of the durable table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    MbusAlways,
    MbusBatch,
    JetStream,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::MbusAlways, Setup::MbusBatch, Setup::JetStream];

    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            Setup::MbusAlways => "mbus --fsync always",
            Setup::MbusBatch => "mbus --fsync batch",
            Setup::JetStream => "nats-server JetStream (default sync)",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Setup::MbusAlways | Setup::MbusBatch => Kind::Mbus,
            Setup::JetStream => Kind::Nats,
        }
    }

    /// The data directory's name in the scratch directory.
    fn dir(self) -> &'static str {
        match self {
            Setup::MbusAlways => "bench-durable-mbus-always",
            Setup::MbusBatch => "bench-durable-mbus-batch",
            Setup::JetStream => "bench-durable-jetstream",
        }
    }
}

/// Whether the durable table has a column for `kind` (Redis keeps nothing here).
pub fn has_setup(kind: Kind) -> bool {
    Setup::ALL.iter().any(|s| s.kind() == kind)
}

/// The durable table's columns and, for each window, their figures so far: confirmed
/// publishes per second, and group commits per second (mbus only).
pub struct Results {
    columns: Vec<Setup>,
    rates: Vec<Vec<Figures>>,
    commits: Vec<Vec<Figures>>,
}

impl Bench {
    /// Every run of every setup whose target is among `columns`, interleaved like the
    /// workloads' runs; failures are added to `failures`.
    pub fn durable(&self, columns: &[Column], failures: &mut Vec<String>) -> Results {
        let setups: Vec<(Setup, &Column)> = Setup::ALL
            .iter()
            .filter_map(|&s| Some((s, columns.iter().find(|c| c.kind == s.kind())?)))
            .collect();
        let empty = || -> Vec<Vec<Figures>> {
            WINDOWS
                .iter()
                .map(|_| setups.iter().map(|_| Figures::default()).collect())
                .collect()
        };
        let mut results = Results {
            columns: setups.iter().map(|&(s, _)| s).collect(),
            rates: empty(),
            commits: empty(),
        };
        let runs = self.scale.runs;
        for run in 1..=runs {
            for (w, &window) in WINDOWS.iter().enumerate() {
                for (i, &(setup, column)) in setups.iter().enumerate() {
                    let what = format!("durable {} window {window} run {run}/{runs}", setup.name());
                    let outcome = self.run_durable(setup, column, window);
                    let mut cells = vec![("msgs/s", &mut results.rates[w][i])];
                    if setup.kind() == Kind::Mbus {
                        cells.push(("commits/s", &mut results.commits[w][i]));
                    }
                    file_run(&what, outcome, cells, failures);
                }
            }
        }
        results
    }

    /// One run at `window` against a freshly started broker with an empty data directory.
    fn run_durable(&self, setup: Setup, column: &Column, window: u64) -> anyhow::Result<Outcome> {
        let dir = self.scratch.join(setup.dir());
        fresh_dir(&dir)?;
        let target: Box<dyn Target> = match setup {
            Setup::MbusAlways => Box::new(mbus::start_durable(
                &self.bins,
                &self.scratch,
                self.mbus_retention.as_deref(),
                &dir,
                "always",
            )?),
            Setup::MbusBatch => Box::new(mbus::start_durable(
                &self.bins,
                &self.scratch,
                self.mbus_retention.as_deref(),
                &dir,
                "batch",
            )?),
            Setup::JetStream => Box::new(jetstream::start(column.exe()?, &self.scratch, &dir)?),
        };
        let count = self.scale.count(messages(window));
        let timeout = self.scale.timeout;
        let measured = stop_after(target, |target| {
            let measured = workloads::confirmed(target, count, PAYLOAD, window, timeout)?;
            let commits = target.commits().transpose()?;
            Ok((measured, commits))
        });
        let (measured, commits) = measured?;
        // Kept after a failure, for a look at what the broker wrote.
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", show(&dir)))?;
        let secs = measured.read_back.as_secs_f64();
        let publish = measured.publish.as_secs_f64();
        let mut figures = vec![count as f64 / publish];
        // Commits of the whole run, the read-back's few included, over the publishing time.
        figures.extend(commits.map(|c| c as f64 / publish));
        Ok(Outcome {
            figures,
            note: Some(format!(
                "read back in order in {} ms ({} msgs/s)",
                report::figure(secs * 1e3),
                report::figure(count as f64 / secs)
            )),
        })
    }
}

/// `dir`, emptied or created.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", show(dir)))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", show(dir)))
}

/// The durable section of the report: what was measured, and the table.
pub fn render(results: &Results, scale: &Scale) -> String {
    let names: Vec<&str> = results.columns.iter().map(|s| s.name()).collect();
    let baseline = results.columns.iter().position(|s| *s == Setup::JetStream);
    let mut rows = Vec::new();
    for (w, &window) in WINDOWS.iter().enumerate() {
        rows.push(Row {
            label: format!(
                "durable: 1 publisher, {} x {PAYLOAD} B, at most {} unconfirmed, confirmed \
                 publishes",
                report::count(scale.count(messages(window))),
                report::count(window)
            ),
            unit: "msgs/s",
            better: Better::Higher,
            cells: results.rates[w].iter().map(Figures::cell).collect(),
        });
    }
    for (w, &window) in WINDOWS.iter().enumerate() {
        rows.push(Row {
            label: format!(
                "durable: group commits of mbus at most {} unconfirmed",
                report::count(window)
            ),
            unit: "commits/s",
            better: Better::Higher,
            cells: results
                .columns
                .iter()
                .zip(&results.commits[w])
                .map(|(s, f)| match s.kind() {
                    Kind::Mbus => f.cell(),
                    _ => Cell::NotApplicable,
                })
                .collect(),
        });
    }
    let mut text = String::from(
        "Durable mode: the rate from the first publish to the last confirm (mbus `Confirm`, \
         JetStream `PubAck`), each broker storing into an empty directory; after the last \
         confirm a subscriber read the topic or stream back from its first message and got \
         every message once, in order. What a confirm means: mbus `--fsync always`, \
         fdatasynced (one group commit per event-loop iteration); mbus `--fsync batch`, \
         written to the OS, fdatasynced within 200 ms; JetStream, written to the OS, synced \
         every 2 minutes (its default, which nats-server 2.9 cannot change). So the `always` \
         column pays for a promise the baseline does not make. Under `--fsync always` each group \
         commit of the one topic makes one fdatasync (of its log; STORAGE.md, section 7), so \
         mbus's commits per second are its syncs per second; they are counted by the broker \
         (`mbus_commit_duration_seconds_count` on its `/metrics`).",
    );
    if baseline.is_some() {
        text += " In parentheses: the figure divided by JetStream's median from the same bench \
                 run.";
    }
    text += "\n\n";
    text += &report::render(&names, baseline, &rows);
    text
}
