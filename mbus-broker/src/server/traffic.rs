//! Moving bytes for the connections: reading until the socket would block or the turn's
//! budget is spent, writing what the core says each is owed, and closing sockets cleanly.

use std::io::{self, Read};

use mbus_proto::ErrorCode;

use crate::engine::{ConnId, Progress};

use super::input::Input;
use super::{READ_BUDGET, Server};

impl Server {
    /// Writes to every connection the core says may be owed something.
    pub(super) fn flush_ready(&mut self) {
        self.core.take_ready(&mut self.ready);
        for id in std::mem::take(&mut self.ready) {
            let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else {
                continue;
            };
            match self.core.write(id, &mut socket.stream) {
                Ok(Progress::Drained) if self.core.is_closing(id) => self.drop_socket(id),
                Ok(_) => {}
                Err(e) => {
                    log::info!("{}: write failed, closing: {e}", socket.peer);
                    self.drop_socket(id);
                }
            }
        }
    }

    /// Reads until the socket would block, the budget is spent, or the connection closes.
    pub(super) fn read(&mut self, id: ConnId) {
        let mut budget = READ_BUDGET;
        loop {
            if self.core.is_closing(id) {
                return;
            }
            let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else {
                return;
            };
            let held = socket.input.held();
            let read =
                socket
                    .input
                    .read_from(&mut socket.stream, &mut self.scratch, &mut self.core, id);
            self.input_held = self.input_held - held + socket.input.held();
            if self.input_held > self.config.max_pending_input && socket.input.held() > held {
                return self.refuse_input(id);
            }
            let socket = self.sockets[id.index()].as_mut().expect("read it just now");
            match read {
                Ok(0) => {
                    if socket.input.is_mid_frame() {
                        log::info!("{}: closed in the middle of a frame", socket.peer);
                    } else {
                        log::debug!("{}: closed", socket.peer);
                    }
                    return self.drop_socket(id);
                }
                Ok(n) => {
                    socket.bytes_in += n as u64;
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.read_backlog.push(id);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::info!("{}: read failed, closing: {e}", socket.peer);
                    return self.drop_socket(id);
                }
            }
        }
    }

    /// Closes a connection whose incomplete frame took the broker past `--max-pending-input`;
    /// what it sent of that frame is let go at once.
    fn refuse_input(&mut self, id: ConnId) {
        let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else {
            return;
        };
        self.input_held -= socket.input.held();
        socket.input = Input::default();
        let reason = format!(
            "the broker holds {} bytes of incomplete frames, its limit; send frames whole",
            self.config.max_pending_input
        );
        self.core.reject(id, ErrorCode::LimitReached, &reason);
    }

    /// Closes a connection's socket and forgets it in the core.
    pub(super) fn drop_socket(&mut self, id: ConnId) {
        let Some(mut socket) = self.sockets.get_mut(id.index()).and_then(Option::take) else {
            return;
        };
        self.input_held -= socket.input.held();
        self.poll.registry().deregister(&mut socket.stream).ok();
        // Finish our side cleanly and take what the peer still sent, so that the close is a FIN
        // the peer can read our last frame before, rather than a reset that may discard it.
        socket.stream.shutdown(std::net::Shutdown::Write).ok();
        let mut sink = [0; 4096];
        for _ in 0..16 {
            match socket.stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        self.core.close(id);
    }
}
