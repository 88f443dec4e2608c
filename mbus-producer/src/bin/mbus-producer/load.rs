//! Generated load: `--count N` messages made from the `--message` template (`{{count}}` is the
//! message's number, from 1), padded or cut to `--size` bytes, at most `--rate` a second, as
//! `nats pub --count` makes them, so that a user can measure their own deployment.

use std::time::{Duration, Instant};

use anyhow::Context;
use mbus_producer::Producer;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Load {
    pub count: u64,
    pub template: String,
    pub size: Option<usize>,
    pub rate: Option<f64>,
}

impl Load {
    /// Message number `n`: the template with `{{count}}` replaced by `n`, padded with `.` or
    /// cut to the size if one is given.
    pub fn message(&self, n: u64, out: &mut Vec<u8>) {
        out.clear();
        let mut parts = self.template.split("{{count}}");
        out.extend_from_slice(parts.next().unwrap_or_default().as_bytes());
        for part in parts {
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        if let Some(size) = self.size {
            out.resize(size, b'.');
        }
    }

    /// Publishes every message and returns how many bytes of payload went out. With a rate,
    /// message `n` is not published before `n / rate` seconds from the start, and what is
    /// buffered is written out before each wait.
    pub fn publish(
        &self,
        producer: &mut Producer,
        topic: &str,
        headers: &[(&str, &[u8])],
    ) -> anyhow::Result<u64> {
        let started = Instant::now();
        let mut message = Vec::new();
        let mut bytes = 0;
        for n in 1..=self.count {
            if let Some(rate) = self.rate {
                let due = started + Duration::from_secs_f64((n - 1) as f64 / rate);
                let now = Instant::now();
                if due > now {
                    producer.flush().context("cannot write to the broker")?;
                    std::thread::sleep(due - now);
                }
            }
            self.message(n, &mut message);
            producer
                .publish_with(topic, &message, headers)
                .with_context(|| format!("cannot publish message {n} to `{topic}`"))?;
            bytes += message.len() as u64;
        }
        Ok(bytes)
    }
}

/// The line a load run ends with: how much, how fast, and that the broker confirmed it all.
pub fn summary(messages: u64, bytes: u64, took: Duration) -> String {
    format!(
        "{}, all confirmed",
        mbus_client::cli::summary("published", messages, bytes, took)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(template: &str, size: Option<usize>) -> Load {
        Load {
            count: 3,
            template: template.to_owned(),
            size,
            rate: None,
        }
    }

    #[test]
    fn the_template_numbers_each_message_and_the_size_pads_or_cuts() {
        let mut out = Vec::new();
        load("order {{count}} of {{count}}", None).message(12, &mut out);
        assert_eq!(out, b"order 12 of 12");
        load("n{{count}}", Some(6)).message(7, &mut out);
        assert_eq!(out, b"n7....");
        load("a long message", Some(4)).message(1, &mut out);
        assert_eq!(out, b"a lo");
    }

    #[test]
    fn the_summary_says_all_was_confirmed() {
        let line = summary(1_000_000, 128_000_000, Duration::from_millis(2000));
        assert_eq!(
            line,
            "published 1,000,000 messages (122.1 MiB) in 2.00 s, 500,000 msgs/s, all confirmed"
        );
    }
}
