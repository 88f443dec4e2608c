//! The broker-wide memory budget: what all topics' logs hold together, and taking back the
//! oldest buffers across topics once it is passed.
//!
//! Every log reports the memory it holds ([`Log::held`]: frames, their positions, reserved
//! capacity). The core adds up the changes of each publish; while the sum is over `max_memory`,
//! the oldest segment of all topics goes, whichever topic holds it, the newest one included,
//! into the segment pool (`segpool.rs`) when it is a whole segment, for the next segment any
//! topic starts. A memory-only topic then no
//! longer has those messages, and its consumers behind them get a `Gap`, as after retention; a
//! durable topic still has them on disk, where its consumers read them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::memlog::Log;
use super::{Core, TopicId};

/// Least time between two log lines about memory taken back.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// What the budget keeps track of, in the core.
#[derive(Debug)]
pub(super) struct Budget {
    /// The most bytes all logs may hold.
    pub max: usize,
    /// What all logs hold now.
    pub held: usize,
    /// Each topic with memory, by when its oldest buffer was started: the first is the oldest
    /// buffer of all.
    oldest: BTreeSet<(u64, TopicId)>,
    /// Segments taken back since start, and their bytes.
    pub evicted: u64,
    pub evicted_bytes: u64,
    /// When memory taken back was last logged, and how much was taken back since.
    reported: Option<Instant>,
    unreported: (u64, u64),
}

impl Budget {
    pub fn new(max: usize) -> Self {
        Budget {
            max,
            held: 0,
            oldest: BTreeSet::new(),
            evicted: 0,
            evicted_bytes: 0,
            reported: None,
            unreported: (0, 0),
        }
    }
}

/// A log's memory as it was before a change, for [`Core::account`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    held: usize,
    oldest: Option<u64>,
}

impl Mark {
    pub fn of(log: &Log) -> Self {
        Mark {
            held: log.held(),
            oldest: log.oldest_born(),
        }
    }
}

impl Core {
    /// Takes in the change of topic `tid`'s log since `mark`, then takes memory back while all
    /// logs hold more than the budget.
    pub(super) fn account(&mut self, tid: TopicId, mark: Mark) {
        self.note_change(tid, mark);
        while self.budget.held > self.budget.max {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    fn note_change(&mut self, tid: TopicId, mark: Mark) {
        let log = &self.topics[tid].log;
        let budget = &mut self.budget;
        budget.held = budget.held + log.held() - mark.held;
        // Recounted in debug builds (tests, the fuzz target, the simulation) while that is cheap.
        debug_assert!(
            self.topics.len() > 64
                || budget.held == self.topics.iter().map(|t| t.log.held()).sum::<usize>(),
            "the budget counts every log's memory"
        );
        let oldest = log.oldest_born();
        if oldest != mark.oldest {
            if let Some(born) = mark.oldest {
                budget.oldest.remove(&(born, tid));
            }
            if let Some(born) = oldest {
                budget.oldest.insert((born, tid));
            }
        }
    }

    /// Takes back the oldest buffer of all topics; false if no log holds any.
    fn evict_oldest(&mut self) -> bool {
        let Some(&(_, tid)) = self.budget.oldest.first() else {
            return false;
        };
        let topic = &mut self.topics[tid];
        let mark = Mark::of(&topic.log);
        let Some(seg) = topic.log.evict_oldest() else {
            return false;
        };
        self.release(tid, &seg);
        let bytes = seg.buf.len() as u64;
        self.pool.give(seg);
        self.note_change(tid, mark);
        let budget = &mut self.budget;
        budget.evicted += 1;
        budget.evicted_bytes += bytes;
        budget.unreported.0 += 1;
        budget.unreported.1 += bytes;
        if budget
            .reported
            .is_none_or(|at| self.now.duration_since(at) >= REPORT_INTERVAL)
        {
            log::warn!(
                "memory budget of {} bytes reached: took back {} buffers ({} bytes of \
                 messages) from the oldest in memory, last from topic {}",
                budget.max,
                budget.unreported.0,
                budget.unreported.1,
                self.topics[tid].name
            );
            budget.reported = Some(self.now);
            budget.unreported = (0, 0);
        }
        true
    }
}
