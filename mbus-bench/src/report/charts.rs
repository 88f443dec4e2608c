//! The bench's figures as pictures, drawn with `plotters` into SVG files beside the table: each
//! target's throughput as a ratio to nats-server's (w1, w2, w3, w5), and w4's latency
//! percentiles per target, both on logarithmic scales.

use std::path::Path;

use plotters::prelude::*;

use super::{Better, Row, median};

/// One colour per target, in column order.
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
];

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws `ratios.svg` and `latency.svg` into `dir` from the table's rows; a chart with nothing
/// to show is not drawn. Returns the files written.
pub fn draw(
    dir: &Path,
    columns: &[&str],
    baseline: Option<usize>,
    rows: &[Row],
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    let medians = |row: &Row| -> Vec<Option<f64>> {
        row.cells
            .iter()
            .map(|c| match c {
                super::Cell::Runs(v) => median(v),
                _ => None,
            })
            .collect()
    };
    if let Some(base) = baseline {
        let throughput: Vec<(String, Vec<Option<f64>>)> = rows
            .iter()
            .filter(|r| r.better == Better::Higher && !r.label.starts_with('m'))
            .filter_map(|r| {
                let m = medians(r);
                let b = m.get(base).copied().flatten()?;
                let ratios = m.iter().map(|v| v.map(|v| v / b)).collect();
                Some((short(&r.label), ratios))
            })
            .collect();
        if !throughput.is_empty() {
            let path = dir.join("ratios.svg");
            let title = "throughput, ratio to nats-server, log scale (higher is better)";
            bars(&path, title, columns, &throughput)
                .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
            written.push(path);
        }
    }
    let latency: Vec<(String, Vec<Option<f64>>)> = rows
        .iter()
        .filter(|r| r.label.starts_with("w4"))
        .map(|r| (percentile_name(&r.label), medians(r)))
        .collect();
    if !latency.is_empty() {
        let path = dir.join("latency.svg");
        let title = "w4 one-way latency at 20,000 msgs/s, µs, log scale (lower is better)";
        bars(&path, title, columns, &latency)
            .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `w1: 1 publisher -> 1 subscriber, ...` as `w1`.
fn short(label: &str) -> String {
    label.split(':').next().unwrap_or(label).to_owned()
}

/// The percentile a w4 row is about: the last comma-separated part before its unit, `p99`.
fn percentile_name(label: &str) -> String {
    label
        .split(", ")
        .find(|part| part.starts_with('p') || *part == "max")
        .unwrap_or(label)
        .to_owned()
}

/// Grouped bars: one group per row, one bar per column with a value.
fn bars(
    path: &Path,
    title: &str,
    columns: &[&str],
    groups: &[(String, Vec<Option<f64>>)],
) -> Drawn {
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let values = groups.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let top = values.clone().fold(0.0, f64::max) * 1.15;
    let bottom = values.fold(f64::INFINITY, f64::min).max(1e-9) / 2.0;
    let n = groups.len() as f64;
    let width = 0.8 / columns.len() as f64;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60);
    let label = |x: &f64| {
        let i = x.floor() as usize;
        groups
            .get(i)
            .map_or(String::new(), |(name, _)| name.clone())
    };
    // A log scale for both: latencies span orders of magnitude, and on it a ratio of 2 and one
    // of 0.5 lie as far from 1.
    let mut chart = builder.build_cartesian_2d(0.0..n, (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| centered(x, &label))
        .draw()?;
    for (c, name) in columns.iter().enumerate() {
        let colour = COLOURS[c % COLOURS.len()];
        chart
            .draw_series(groups.iter().enumerate().filter_map(|(g, (_, v))| {
                let value = v.get(c).copied().flatten()?;
                let x = g as f64 + 0.1 + c as f64 * width;
                Some(Rectangle::new(
                    [(x, bottom), (x + width * 0.9, value)],
                    colour.filled(),
                ))
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The group's name under the middle of its bars, nothing at the other tick marks.
fn centered(x: &f64, label: &dyn Fn(&f64) -> String) -> String {
    if (x.fract() - 0.5).abs() < 1e-6 {
        label(x)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Better, Cell, Row};
    use super::*;

    #[test]
    fn both_charts_are_drawn_with_every_target_and_workload() {
        let dir = std::env::temp_dir().join(format!("mbus-bench-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let row = |label: &str, better, values: [f64; 2]| Row {
            label: label.to_owned(),
            unit: "",
            better,
            cells: values.iter().map(|&v| Cell::Runs(vec![v])).collect(),
        };
        let rows = [
            row(
                "w1: 1 publisher -> 1 subscriber",
                Better::Higher,
                [4.0e6, 2.0e6],
            ),
            row("w5: 64 KiB", Better::Higher, [1200.0, 400.0]),
            row(
                "w4: one-way latency, 128 B, p50, µs",
                Better::Lower,
                [43.0, 67.0],
            ),
            row(
                "w4: one-way latency, 128 B, p99, µs",
                Better::Lower,
                [260.0, 390.0],
            ),
        ];
        let files = draw(&dir, &["mbus", "nats-server"], Some(1), &rows).unwrap();
        assert_eq!(files.len(), 2);
        let ratios = std::fs::read_to_string(&files[0]).unwrap();
        for words in [
            "<svg",
            "mbus",
            "nats-server",
            "w1",
            "w5",
            "ratio to nats-server",
        ] {
            assert!(ratios.contains(words), "ratios.svg has {words}");
        }
        let latency = std::fs::read_to_string(&files[1]).unwrap();
        for words in ["p50", "p99", "log scale"] {
            assert!(latency.contains(words), "latency.svg has {words}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
