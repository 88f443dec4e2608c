//! Connecting again after the connection to the broker is lost: the policy both clients follow,
//! and which errors call for it.

use std::fmt::Display;
use std::time::Duration;

use mbus_proto::ErrorCode;

use crate::ClientError;

/// How a client connects again after losing its connection: it waits `backoff`, doubled after
/// each failed attempt up to `max_backoff`, and gives up after `max_attempts` failures in a row,
/// logging a line per attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnect {
    /// The wait before the first attempt.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Failed attempts in a row after which the last error is returned.
    pub max_attempts: u32,
}

impl Default for Reconnect {
    /// 100 ms, doubling up to 5 s, 30 attempts: about two minutes without a broker.
    fn default() -> Self {
        Reconnect {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: 30,
        }
    }
}

impl Reconnect {
    /// The policy with `max_attempts` attempts, or none (`None`) for 0.
    pub fn attempts(max_attempts: u32) -> Option<Reconnect> {
        (max_attempts > 0).then(|| Reconnect {
            max_attempts,
            ..Reconnect::default()
        })
    }

    /// Calls `attempt` after each wait until it succeeds, fails with an error that `retry` says
    /// another attempt would not mend (returned at once), or the attempts are used up (the last
    /// error is returned). `lost` is the error that ended the connection.
    pub fn run<T, E: Display>(
        &self,
        lost: E,
        retry: impl Fn(&E) -> bool,
        mut attempt: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut wait = self.backoff;
        let mut last = lost;
        for n in 1..=self.max_attempts {
            log::warn!(
                "lost the broker ({last}); connecting again in {wait:?}, attempt {n} of {}",
                self.max_attempts
            );
            std::thread::sleep(wait);
            wait = (wait * 2).min(self.max_backoff);
            match attempt() {
                Ok(done) => return Ok(done),
                Err(e) if retry(&e) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// Whether `e` means the broker went away, or is going, so that connecting again may work:
/// the connection failed or closed, the broker is shutting down or full. A refusal of what the
/// client asked (a bad topic, a wrong token, a full disk) is not: asking again gets the same
/// answer.
pub fn is_lost(e: &ClientError) -> bool {
    match e {
        ClientError::Io(_) | ClientError::Closed => true,
        ClientError::Refused { code, .. } => {
            matches!(
                code,
                ErrorCode::ShuttingDown | ErrorCode::TooManyConnections
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_stop_at_success_at_a_lasting_error_or_at_the_limit() {
        let policy = Reconnect {
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_attempts: 3,
        };
        let mut calls = 0;
        let ok = policy.run(
            "lost",
            |_| true,
            || {
                calls += 1;
                if calls < 2 { Err("down") } else { Ok(calls) }
            },
        );
        assert_eq!(ok, Ok(2));
        let mut calls = 0;
        let out: Result<(), &str> = policy.run(
            "lost",
            |_| true,
            || {
                calls += 1;
                Err("down")
            },
        );
        assert_eq!((out, calls), (Err("down"), 3));
        let mut calls = 0;
        let out: Result<(), &str> = policy.run(
            "lost",
            |e| *e != "refused",
            || {
                calls += 1;
                Err("refused")
            },
        );
        assert_eq!((out, calls), (Err("refused"), 1));
        assert_eq!(Reconnect::attempts(0), None);
        assert_eq!(Reconnect::attempts(4).map(|r| r.max_attempts), Some(4));
    }
}
