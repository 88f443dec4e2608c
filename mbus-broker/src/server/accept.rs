//! Accepting connections: the connection limit, running out of descriptors, and registering a
//! new socket with the poller and the core.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mbus_proto::{ErrorCode, Frame, Role};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::input::Input;
use crate::engine::storage::is_out_of_descriptors;

use super::{ACCEPT_BACKOFF, FIRST_CONN, Server, Socket};

impl Server {
    pub(super) fn accept(&mut self, role: Role) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let listener = match role {
                Role::Producer => &self.producers,
                Role::Consumer => &self.consumers,
            };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_descriptors(&e) => {
                    log::warn!("cannot accept {} connections for now: {e}", role.as_str());
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => {
                    log::warn!("accepting a {} connection failed: {e}", role.as_str());
                    continue;
                }
            };
            if self.core.stats().connections >= self.config.max_connections {
                refuse(stream, peer, self.config.max_connections);
                continue;
            }
            self.register(stream, peer, role);
        }
    }

    fn register(&mut self, mut stream: TcpStream, peer: SocketAddr, role: Role) {
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("{peer}: cannot set TCP_NODELAY: {e}");
        }
        let id = self.core.open(role, peer);
        let token = Token(id.index() + FIRST_CONN);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("{peer}: cannot register the connection: {e}");
            self.core.close(id);
            return;
        }
        log::debug!("{peer}: {} connected", role.as_str());
        if self.sockets.len() <= id.index() {
            self.sockets.resize_with(id.index() + 1, || None);
        }
        self.sockets[id.index()] = Some(Socket {
            stream,
            peer,
            input: Input::default(),
            bytes_in: 0,
        });
    }
}

/// Answers a connection over the limit with an error frame, as far as the socket takes it.
fn refuse(mut stream: TcpStream, peer: SocketAddr, max: usize) {
    log::warn!("{peer}: refused, already {max} connections");
    let reason = format!("the broker is at its limit of {max} connections");
    let frame = Frame::Error {
        code: ErrorCode::TooManyConnections,
        reason: &reason,
    };
    stream.write_all(&frame.to_bytes()).ok();
    stream.shutdown(std::net::Shutdown::Write).ok();
}
