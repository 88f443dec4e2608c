//! Running a bridge's sessions one after another: a session that fails is logged and started
//! again after a backoff (100 ms, doubling up to 5 s, back to 100 ms after a session that lasted),
//! for as long as the bridge runs; one that ends because the bridge was told to stop ends it.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(5);
/// A session that ran this long before failing starts the backoff over.
const LASTED: Duration = Duration::from_secs(10);

/// Runs `session` until it returns `Ok` (it drained after `stop`) or fails after `stop`.
pub async fn supervise<F, Fut>(
    name: &str,
    stop: &watch::Receiver<bool>,
    mut session: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut wait = FIRST;
    loop {
        let started = Instant::now();
        let failure = match session().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if *stop.borrow() {
            return Err(failure);
        }
        if started.elapsed() >= LASTED {
            wait = FIRST;
        }
        log::warn!("{name}: {failure:#}; starting again in {wait:?}");
        let mut stopped = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|s| *s) => return Ok(()),
        }
        wait = (wait * 2).min(LONGEST);
    }
}
