//! The figures as a markdown table: each target's median over its runs, and that median as a
//! ratio to the baseline's (nats-server's) median.

pub mod charts;
#[cfg(test)]
mod tests;

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One line of the table: a figure of one workload, for every target.
pub struct Row {
    /// What was measured, e.g. `w1: 1 publisher -> 1 subscriber, 1,000,000 x 128 B`.
    pub label: String,
    pub unit: &'static str,
    pub better: Better,
    /// One per column, in the order of the columns.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// The figure of every run.
    Runs(Vec<f64>),
    /// At least one run failed; the notes under the table say why.
    Fail,
    /// The figure does not exist for this target.
    NotApplicable,
}

impl Cell {
    fn median(&self) -> Option<f64> {
        match self {
            Cell::Runs(values) => median(values),
            Cell::Fail | Cell::NotApplicable => None,
        }
    }
}

/// The middle value, or the mean of the two middle ones; `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The nearest-rank percentile `p` (0 to 100) of sorted samples: the smallest sample that at
/// least `p` percent of the samples do not exceed. `None` for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    // The small subtraction keeps a rank that is whole on paper whole in floating point:
    // 99.9 % of 1000 is 999, not 999.0000000000001 rounded up to 1000.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `value / baseline`, when the baseline is a positive figure.
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0).then(|| value / baseline)
}

/// A figure with as many digits as it deserves: `1,234,567`, `812`, `45.6`, `1.42`.
pub fn figure(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        let sign = if value < 0.0 { "-" } else { "" };
        format!("{sign}{}", count(magnitude.round() as u64))
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A whole number with its thousands grouped: 1, 100, 10,000.
pub fn count(value: u64) -> String {
    mbus_client::cli::grouped(value)
}

/// The table: a header naming the columns, then one line per row. Every cell but the
/// baseline's shows its ratio to the baseline's median when both exist.
pub fn render(columns: &[&str], baseline: Option<usize>, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| workload | {} |", columns.join(" | "));
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(columns.len()));
    for row in rows {
        let better = match row.better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
        };
        let base = baseline
            .and_then(|b| row.cells.get(b))
            .and_then(Cell::median);
        let cells: Vec<String> = row
            .cells
            .iter()
            .enumerate()
            .map(|(i, cell)| match (cell, cell.median()) {
                (Cell::Fail, _) => "FAIL".to_owned(),
                (_, None) => "n/a".to_owned(),
                (_, Some(m)) => match base.and_then(|b| ratio(m, b)) {
                    Some(r) if Some(i) != baseline => format!("{} ({r:.2}×)", figure(m)),
                    _ => figure(m),
                },
            })
            .collect();
        let _ = writeln!(
            out,
            "| {}, {} ({better}) | {} |",
            row.label,
            row.unit,
            cells.join(" | ")
        );
    }
    out
}
