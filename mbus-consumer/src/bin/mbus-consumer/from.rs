//! `--from`: where each topic starts, as a word, an offset, the last N messages, a time of day
//! or an age.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mbus_consumer::Start;

/// A `--from` value, resolved into a [`Start`] when the consumer subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// A start the broker takes as it is: `earliest`, `latest`, an offset, `-N`, a time.
    Start(Start),
    /// What arrived in the last this long: from the first message stored at or after now
    /// less this.
    Ago(Duration),
}

impl From {
    /// Parses `earliest`, `latest`, an offset, `-N` (the last N messages), an RFC 3339 time in
    /// UTC (`2026-12-02T10:00:00Z`) or a duration (`10m`, `1h30m`, `2days`).
    pub fn parse(s: &str) -> Result<From, String> {
        match s {
            "earliest" => return Ok(From::Start(Start::Earliest)),
            "latest" => return Ok(From::Start(Start::Latest)),
            _ => {}
        }
        if let Ok(offset) = s.parse() {
            return Ok(From::Start(Start::Offset(offset)));
        }
        if let Some(n) = s.strip_prefix('-').and_then(|n| n.parse().ok()) {
            return Ok(From::Start(Start::Last(n)));
        }
        if let Ok(age) = humantime::parse_duration(s) {
            return Ok(From::Ago(age));
        }
        if let Ok(time) = humantime::parse_rfc3339_weak(s) {
            return Ok(From::Start(Start::Time(unix_ms(time))));
        }
        Err(format!(
            "expected `earliest`, `latest`, an offset, `-N` for the last N messages, a time like \
             2026-12-02T10:00:00Z or a duration like 10m, found `{s}`"
        ))
    }

    /// The start to ask the broker for, `now` being the time of the subscription.
    pub fn resolve(self, now: SystemTime) -> Start {
        match self {
            From::Start(start) => start,
            From::Ago(age) => Start::Time(unix_ms(now.checked_sub(age).unwrap_or(UNIX_EPOCH))),
        }
    }
}

/// `time` in milliseconds since the Unix epoch; 0 before it.
fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_to_its_start() {
        let at = |ms| From::Start(Start::Time(ms));
        let cases = [
            ("earliest", From::Start(Start::Earliest)),
            ("latest", From::Start(Start::Latest)),
            ("42", From::Start(Start::Offset(42))),
            ("-10", From::Start(Start::Last(10))),
            ("10m", From::Ago(Duration::from_secs(600))),
            ("1h30m", From::Ago(Duration::from_secs(5400))),
            ("2026-12-02T10:00:00Z", at(1_796_205_600_000)),
            ("2026-12-02T10:00:00.250Z", at(1_796_205_600_250)),
        ];
        for (arg, want) in cases {
            assert_eq!(From::parse(arg), Ok(want), "{arg}");
        }
        for bad in ["soon", "-", "-x", "10 parsecs", "2026-13-01T00:00:00Z", ""] {
            assert!(From::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_age_counts_back_from_the_subscription() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let ten_minutes = From::parse("10m").unwrap();
        assert_eq!(ten_minutes.resolve(now), Start::Time(400_000));
        let before_1970 = From::parse("1h").unwrap();
        assert_eq!(before_1970.resolve(now), Start::Time(0));
        assert_eq!(From::parse("-3").unwrap().resolve(now), Start::Last(3));
    }
}
