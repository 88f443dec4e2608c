//! The write path: what a connection is owed, gathered from its control buffer and straight from
//! the topic logs, and handed to one vectored write.

use std::io::{self, IoSlice, Write};

use mbus_proto::Frame;

use super::conn::{Conn, State};
use super::inspect::Counters;
use super::memlog::Cursor;
use super::topic::Topics;
use super::{ConnId, Core};

/// Most slices handed to one vectored write; well under every platform's `IOV_MAX`.
const MAX_SLICES: usize = 64;

/// What a `write` call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Everything owed was written (or the connection is gone).
    Drained,
    /// The sink would block; the event loop calls [`Core::writable`] when it no longer does.
    Blocked,
    /// The write budget ran out with more owed; the connection is back on the ready list.
    Budget,
}

/// Where a run of bytes in one vectored write came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Control,
    Sub(usize),
}

/// Collects what `conn` is owed, in the order it must go out: the one source that is mid-frame
/// first, then control frames, then the other subscriptions round-robin, up to `budget` bytes.
/// Returns the byte count and records in `sources` which run came from where.
fn gather<'a>(
    conn: &'a Conn,
    topics: &'a Topics,
    budget: usize,
    slices: &mut Vec<IoSlice<'a>>,
    sources: &mut Vec<(Source, usize)>,
) -> usize {
    let mut total = 0;
    let mut take = |source: Source, slices: &mut Vec<IoSlice<'a>>| {
        let before = slices.len();
        let n = match source {
            Source::Control => {
                let rest = &conn.control[conn.control_sent..];
                if !rest.is_empty() {
                    slices.push(IoSlice::new(rest));
                }
                rest.len()
            }
            Source::Sub(i) => {
                let sub = conn.subs[i];
                let room = budget.saturating_sub(total);
                topics[sub.topic]
                    .log
                    .read_at(sub.cursor, room, slices, MAX_SLICES)
            }
        };
        if slices.len() > before {
            sources.push((source, n));
            total += n;
        }
    };
    let partial = conn.partial_sub();
    if let Some(i) = partial {
        take(Source::Sub(i), slices);
    }
    take(Source::Control, slices);
    if conn.state != State::Closing {
        let n = conn.subs.len();
        for k in 0..n {
            let i = (conn.next_sub + k) % n;
            if Some(i) != partial && slices.len() < MAX_SLICES {
                take(Source::Sub(i), slices);
            }
        }
    }
    total
}

/// Appends a `Confirm` for every publish not yet confirmed. Confirms are cumulative, so however
/// many publishes a read brought in, one frame answers them.
pub(super) fn queue_confirm(conn: &mut Conn, counters: &mut Counters) {
    if conn.durable > conn.confirmed {
        Frame::Confirm {
            count: conn.durable,
        }
        .encode(&mut conn.control);
        conn.confirmed = conn.durable;
        counters.confirms += 1;
    }
}

impl Core {
    /// Writes what connection `id` is owed to `sink`, until it is drained, the sink would block, or
    /// the write budget is spent.
    pub fn write(&mut self, id: ConnId, sink: &mut impl Write) -> io::Result<Progress> {
        let budget = self.write_budget;
        let mut written = 0;
        let mut sources = Vec::with_capacity(MAX_SLICES);
        loop {
            let Some(conn) = self.conns.get_mut(id) else {
                return Ok(Progress::Drained);
            };
            if conn.state != State::Closing {
                queue_confirm(conn, &mut self.counters);
                // Gaps are noted only once earlier control frames are out, so a consumer that
                // stalls for long hears of one gap per topic, not one per dropped segment.
                if conn.control_pending() == 0 {
                    self.note_gaps(id);
                    // Subscriptions behind the memory cache are fed from disk, a chunk at a
                    // time, through the control buffer.
                    let subs = self.conns[id].subs.len();
                    for i in 0..subs {
                        if self.conns[id].control_pending() > 0 || self.read_disk(id, i) {
                            break;
                        }
                    }
                    // A group member's messages come through the control buffer too.
                    if self.conns[id].control_pending() == 0 && !self.conns[id].groups.is_empty() {
                        self.fill_groups(id);
                    }
                }
            }
            sources.clear();
            let conn = &self.conns[id];
            let mut slices = Vec::with_capacity(MAX_SLICES);
            let total = gather(conn, &self.topics, budget, &mut slices, &mut sources);
            if total == 0 {
                return Ok(Progress::Drained);
            }
            if written >= budget {
                self.mark(id);
                return Ok(Progress::Budget);
            }
            let n = match sink.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.conns[id].blocked = true;
                    return Ok(Progress::Blocked);
                }
                Err(e) => return Err(e),
            };
            drop(slices);
            self.advance(id, &sources, n);
            written += n;
        }
    }

    /// Moves the sources of a vectored write forward by the `n` bytes the sink took.
    fn advance(&mut self, id: ConnId, sources: &[(Source, usize)], mut n: usize) {
        let conn = &mut self.conns[id];
        conn.bytes_out += n as u64;
        for &(source, len) in sources {
            let take = len.min(n);
            match source {
                Source::Control => {
                    conn.control_sent += take;
                    if conn.control_sent == conn.control.len() {
                        conn.control.clear();
                        conn.control_sent = 0;
                        conn.control_data = 0;
                    }
                }
                Source::Sub(i) => {
                    let sub = &mut conn.subs[i];
                    let from = sub.cursor.offset;
                    sub.cursor = self.topics[sub.topic].log.advance(sub.cursor, take);
                    self.counters.delivered += sub.cursor.offset - from;
                    self.counters.delivered_bytes += take as u64;
                    conn.next_sub = i + 1;
                }
            }
            n -= take;
            if n == 0 {
                break;
            }
        }
        debug_assert_eq!(n, 0, "the sink took more than it was given");
        if !conn.subs.is_empty() {
            conn.next_sub %= conn.subs.len();
        }
    }

    /// Tells each subscription that fell behind retention which offsets it lost, and moves it to
    /// the oldest message the topic still holds.
    fn note_gaps(&mut self, id: ConnId) {
        let conn = &mut self.conns[id];
        for sub in &mut conn.subs {
            let topic = &self.topics[sub.topic];
            let first = topic.first();
            if sub.cursor.partial == 0 && sub.cursor.offset < first {
                self.counters.gaps += 1;
                Frame::Gap {
                    topic: &topic.name,
                    from: sub.cursor.offset,
                    to: first,
                }
                .encode(&mut conn.control);
                sub.cursor = Cursor {
                    offset: first,
                    partial: 0,
                };
            }
        }
    }
}

impl Core {
    /// True while some connection has control frames unsent or deliveries it has not taken.
    pub fn owes_output(&self) -> bool {
        self.conns.iter().any(|(id, conn)| {
            conn.control_pending() > 0
                || conn.subs.iter().any(|sub| {
                    let log = &self.topics[sub.topic].log;
                    sub.cursor.partial > 0 || sub.cursor.offset < log.visible()
                })
                || conn.groups.iter().any(|m| {
                    let t = &self.topics[m.topic];
                    let g = &t.groups[m.group];
                    g.member(id).is_some_and(|i| g.can_give(i))
                        && g.next_offset(self.now, t.log.visible()).is_some()
                })
        })
    }

    /// Control bytes (confirms, errors, pongs, gap notices, frames read from disk) that
    /// connection `id` has not taken yet.
    pub fn pending_control(&self, id: ConnId) -> usize {
        self.conns.get(id).map_or(0, Conn::control_pending)
    }
}
