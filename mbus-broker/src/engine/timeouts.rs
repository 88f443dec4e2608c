//! Time-driven behaviour: the handshake deadline, keepalive pings, and giving up on peers that
//! stay silent or never read their error. The event loop passes the time in; the core keeps none.

use std::time::Instant;

use mbus_proto::{ErrorCode, Frame};

use super::conn::State;
use super::{ConnId, Core};

impl Core {
    /// Tells the core what time it is.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Acts on every deadline that has passed: a connection without `Hello` in time is refused,
    /// a silent one is pinged and then refused if the ping goes unanswered, and one that has been
    /// closing for that long without taking its error frame is put on `expired` to be dropped.
    pub fn check_timeouts(&mut self, expired: &mut Vec<ConnId>) {
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
                State::Closing if quiet >= handshake => expired.push(id),
                _ => {}
            }
        }
        for (id, reason) in refuse {
            self.reject(id, ErrorCode::Timeout, &reason);
        }
        for id in ping {
            self.send(id, Frame::Ping);
        }
    }
}
