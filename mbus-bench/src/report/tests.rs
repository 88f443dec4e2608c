//! Medians, percentiles, ratios, figures and the table, on fixed numbers.

use super::{Better, Cell, Row, figure, median, percentile, ratio, render};

#[test]
fn median_of_odd_even_and_no_values() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&[7.0]), Some(7.0));
    assert_eq!(median(&[]), None);
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let samples: Vec<u64> = (1..=1000).collect();
    assert_eq!(percentile(&samples, 50.0), Some(500));
    assert_eq!(percentile(&samples, 99.0), Some(990));
    assert_eq!(percentile(&samples, 99.9), Some(999));
    assert_eq!(percentile(&samples, 100.0), Some(1000));
    assert_eq!(percentile(&samples, 0.0), Some(1));
    assert_eq!(percentile(&[5], 99.9), Some(5));
    assert_eq!(percentile(&[], 50.0), None);
}

#[test]
fn ratios_need_a_positive_baseline() {
    assert_eq!(ratio(150.0, 100.0), Some(1.5));
    assert_eq!(ratio(1.0, 0.0), None);
}

#[test]
fn figures_get_as_many_digits_as_they_deserve() {
    assert_eq!(figure(1_234_567.4), "1,234,567");
    assert_eq!(figure(999_999.6), "1,000,000");
    assert_eq!(figure(812.3), "812");
    assert_eq!(figure(100.0), "100");
    assert_eq!(figure(45.64), "45.6");
    assert_eq!(figure(1.416), "1.42");
    assert_eq!(figure(-2500.0), "-2,500");
}

#[test]
fn the_table_shows_medians_ratios_failures_and_gaps() {
    let rows = [
        Row {
            label: "w1: 1 -> 1".into(),
            unit: "msgs/s",
            better: Better::Higher,
            cells: vec![
                Cell::Runs(vec![900_000.0, 1_000_000.0, 1_100_000.0]),
                Cell::Runs(vec![500_000.0]),
                Cell::Fail,
            ],
        },
        Row {
            label: "w4: p50".into(),
            unit: "µs",
            better: Better::Lower,
            cells: vec![Cell::Runs(vec![30.0]), Cell::Fail, Cell::Runs(vec![45.0])],
        },
        Row {
            label: "m1: retained".into(),
            unit: "ratio",
            better: Better::Lower,
            cells: vec![
                Cell::Runs(vec![1.5]),
                Cell::NotApplicable,
                Cell::NotApplicable,
            ],
        },
    ];
    let table = render(&["mbus", "nats-server", "redis-server"], Some(1), &rows);
    assert_eq!(
        table,
        "| workload | mbus | nats-server | redis-server |\n\
         | --- | ---: | ---: | ---: |\n\
         | w1: 1 -> 1, msgs/s (higher is better) | 1,000,000 (2.00×) | 500,000 | FAIL |\n\
         | w4: p50, µs (lower is better) | 30.0 | FAIL | 45.0 |\n\
         | m1: retained, ratio (lower is better) | 1.50 | n/a | n/a |\n"
    );
}

#[test]
fn without_a_baseline_there_are_no_ratios() {
    let rows = [Row {
        label: "w1".into(),
        unit: "msgs/s",
        better: Better::Higher,
        cells: vec![Cell::Runs(vec![1000.0])],
    }];
    let table = render(&["mbus"], None, &rows);
    assert!(
        table.ends_with("| w1, msgs/s (higher is better) | 1,000 |\n"),
        "{table}"
    );
}
