//! Every timer of the engine in one place: the handshake deadline, keepalive pings, giving up
//! on peers that never take their error, the batch sync and storage retention. The event loop
//! asks [`Core::poll_timeout`] when to wake and tells the time with [`Core::handle_timeout`];
//! the engine has no clock of its own.

use std::time::{Duration, Instant};

use mbus_proto::{ErrorCode, Frame};

use super::conn::{Conn, State};
use super::{ConnId, Core};

/// How often durable topics are checked against retention.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(1);

/// The engine's deadlines; each is the earliest time its timer may have something to do.
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// A connection's handshake, idle or closing deadline may have passed. Set no later than
    /// the earliest of them, and computed exactly whenever it fires.
    pub conns: Option<Instant>,
    /// Committed messages wait for the batch sync (`Storage::sync_interval`).
    pub sync: Option<Instant>,
    /// The next retention pass over durable topics.
    pub retention: Option<Instant>,
    /// A consumer group's ack wait may pass, or a nak's delay end.
    pub groups: Option<Instant>,
}

impl Core {
    /// The earliest time at which [`Core::handle_timeout`] has something to do, or `None` when
    /// no timer is set. The event loop sleeps until then unless a socket wakes it first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.conns,
            self.timers.sync,
            self.timers.retention,
            self.timers.groups,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Tells the engine the time and fires every timer that is due: a connection without
    /// `Hello` in time is refused, a silent one is pinged and then refused if the ping goes
    /// unanswered, one that has been closing too long without taking its error frame is handed
    /// to [`Core::take_expired`], committed messages are synced under `--fsync batch`, and
    /// durable topics are trimmed to their retention. Called at the start of every turn.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.timers.conns.is_some_and(|t| t <= now) {
            self.check_conns();
        }
        if self.timers.sync.is_some_and(|t| t <= now) {
            self.timers.sync = None;
            self.sync_committed();
        }
        if self.timers.groups.is_some_and(|t| t <= now) {
            self.expire_groups();
        }
        if self.timers.retention.is_some_and(|t| t <= now) {
            self.timers.retention = Some(now + RETENTION_INTERVAL);
            self.enforce_retention();
        }
    }

    /// Moves the connections that must be dropped without further ado into `out`: those that
    /// were closing for longer than the handshake timeout without taking their error frame.
    pub fn take_expired(&mut self, out: &mut Vec<ConnId>) {
        out.append(&mut self.expired);
    }

    /// Makes sure the connection timer fires no later than `at`.
    pub(super) fn schedule_conns(&mut self, at: Instant) {
        self.timers.conns = Some(self.timers.conns.map_or(at, |t| t.min(at)));
    }

    /// When the connection's own timer is due.
    fn deadline(&self, conn: &Conn) -> Instant {
        match conn.state {
            State::Handshake => conn.opened + self.config.handshake_timeout,
            State::Open => conn.heard + self.config.idle_timeout,
            State::Closing => conn.heard + self.config.handshake_timeout,
        }
    }

    /// Acts on every connection whose deadline passed, then sets the timer to the next one,
    /// rounded up so that a broker of many connections does not scan them all for each.
    fn check_conns(&mut self) {
        let now = self.now;
        let handshake = self.config.handshake_timeout;
        let idle = self.config.idle_timeout;
        let mut refuse = Vec::new();
        let mut ping = Vec::new();
        for (id, conn) in self.conns.iter_mut() {
            let quiet = now.saturating_duration_since(conn.heard);
            match conn.state {
                State::Handshake if now.saturating_duration_since(conn.opened) >= handshake => {
                    let reason = format!("no Hello within {:.1}s", handshake.as_secs_f64());
                    refuse.push((id, reason));
                }
                State::Open if quiet >= idle && conn.pinged => {
                    let reason = format!("no answer to a ping within {:.1}s", idle.as_secs_f64());
                    refuse.push((id, reason));
                }
                State::Open if quiet >= idle => {
                    conn.pinged = true;
                    conn.heard = now;
                    ping.push(id);
                }
                State::Closing if quiet >= handshake => self.expired.push(id),
                _ => {}
            }
        }
        for (id, reason) in refuse {
            self.reject(id, ErrorCode::Timeout, &reason);
        }
        for id in ping {
            self.send(id, Frame::Ping);
        }
        let granularity =
            (handshake.min(idle) / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        self.timers.conns = self
            .conns
            .iter()
            .filter(|(id, _)| !self.expired.contains(id))
            .map(|(_, conn)| self.deadline(conn))
            .min()
            .map(|t| t.max(now + granularity));
    }
}
