//! Progress and the summary line of the commands, as `nats bench` and friends show them: a live
//! line (messages, bytes, rate) on stderr while it is a terminal, through `indicatif`, and one
//! line at the end. On a pipe nothing extra is printed unless asked (`-v`); data never goes to
//! stderr and progress never to stdout.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counts what a command moves, shows it live on a terminal, and sums it up at the end.
pub struct Progress {
    bar: Option<ProgressBar>,
    summary: bool,
    verb: &'static str,
    started: Instant,
    messages: u64,
    bytes: u64,
}

impl Progress {
    /// Progress of messages `verb` ("published", "received"); the summary line is printed when
    /// stderr is a terminal or `verbose` says so.
    pub fn new(verb: &'static str, verbose: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {pos} messages, {per_sec}")
                    .expect("a valid template"),
            );
            bar.set_message(verb);
            bar
        });
        Progress {
            bar,
            summary: terminal || verbose,
            verb,
            started: Instant::now(),
            messages: 0,
            bytes: 0,
        }
    }

    /// One more message of `bytes` bytes.
    pub fn add(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Messages counted so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Clears the live line and prints the summary, with `tail` after it (", all confirmed"),
    /// when one is due.
    pub fn finish(self, tail: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.summary {
            eprintln!(
                "{}{tail}",
                summary(self.verb, self.messages, self.bytes, self.started.elapsed())
            );
        }
    }
}

/// A count with thousands separators, as people read large numbers.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "`verb` 1,000,000 messages (122.1 MiB) in 1.90 s, 526,315 msgs/s".
pub fn summary(verb: &str, messages: u64, bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-9);
    let took = if secs < 1.0 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    };
    format!(
        "{verb} {} messages ({}) in {took}, {} msgs/s",
        grouped(messages),
        bytesize::ByteSize(bytes),
        grouped((messages as f64 / secs) as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_people_count() {
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(0), "0");
        assert_eq!(
            summary("published", 1_000_000, 128_000_000, Duration::from_secs(2)),
            "published 1,000,000 messages (122.1 MiB) in 2.00 s, 500,000 msgs/s"
        );
        assert_eq!(
            summary("received", 3, 30, Duration::from_millis(12)),
            "received 3 messages (30 B) in 12.0 ms, 250 msgs/s"
        );
    }
}
