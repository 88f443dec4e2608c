//! The monitoring and admin port (`--http`): HTTP/1.1 served from the broker's own event loop,
//! one request per connection, each answered from the core as it is at that moment.
//!
//! Every bound is fixed: at most [`MAX_CONNECTIONS`] connections, a request head of at most
//! [`MAX_HEAD`] bytes and no body, and [`REQUEST_TIMEOUT`] from accept to the last byte of the
//! answer. A connection past any of them gets an error status when it can and is closed; the
//! broker's producers and consumers never wait for it: a request is parsed and answered in the
//! turn its last byte arrives, and the answer is written as the socket takes it.

mod metrics;
mod routes;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::engine::Core;
pub use metrics::CommitMetrics;
use routes::{Request, Response};

/// Most monitoring connections at once; another is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// Most bytes of a request line and headers; a longer head is answered 431.
pub const MAX_HEAD: usize = 8 << 10;
/// Time from accept to the end of the answer; a slower client is closed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The port the monitoring address gets when it names none.
pub const DEFAULT_PORT: u16 = 9992;

/// The monitoring listener and its connections.
pub struct Http {
    listener: TcpListener,
    conns: Slab<HttpConn>,
    /// The first token of a connection; tokens below belong to the rest of the loop.
    base: usize,
}

struct HttpConn {
    stream: TcpStream,
    peer: SocketAddr,
    /// What has arrived of the request head.
    head: Vec<u8>,
    /// The answer, once there is one, and how much of it was written.
    answer: Option<(Vec<u8>, usize)>,
    deadline: Instant,
}

/// What the loop hands a request to be answered from.
pub struct Context<'a> {
    /// The core, mutable for the one request that changes it (`DELETE` of a topic).
    pub core: &'a mut Core,
    /// The token `DELETE` requires, when the broker has one.
    pub auth_token: Option<&'a str>,
    pub shutting_down: bool,
    pub commits: &'a CommitMetrics,
    /// Bytes each connection of the core sent, by the core's connection index.
    pub bytes_in: &'a dyn Fn(usize) -> u64,
}

impl Http {
    /// Serves on `listener`; connection `i` gets token `base + i`.
    pub fn new(listener: TcpListener, base: usize) -> Self {
        Http {
            listener,
            conns: Slab::new(),
            base,
        }
    }

    pub fn listener(&mut self) -> &mut TcpListener {
        &mut self.listener
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` is one of this port's connections.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base
    }

    /// The earliest deadline of a connection, for the loop's sleep.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|(_, c)| c.deadline).min()
    }

    /// Accepts what waits; past the connection limit a client is told 503 and closed.
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("http: cannot accept: {e}");
                    return;
                }
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                let busy = Response::text(503, "too many monitoring connections\n");
                let _ = stream.write(&busy.to_bytes());
                log::warn!("http: {peer} refused: {MAX_CONNECTIONS} connections open");
                continue;
            }
            let entry = self.conns.vacant_entry();
            let token = Token(self.base + entry.key());
            if let Err(e) =
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("http: {peer}: cannot register: {e}");
                continue;
            }
            entry.insert(HttpConn {
                stream,
                peer,
                head: Vec::new(),
                answer: None,
                deadline: now + REQUEST_TIMEOUT,
            });
        }
    }

    /// Reads what arrived on the connection of `token`, answers once its request is whole, and
    /// writes as much of the answer as the socket takes.
    pub fn ready(&mut self, token: Token, registry: &Registry, cx: &mut Context<'_>) {
        let key = token.0 - self.base;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let done = match conn.answer {
            None => conn.read_request(cx),
            Some(_) => Ok(false),
        }
        .and_then(|closed| Ok(closed || conn.write_answer()?));
        match done {
            Ok(false) => {}
            Ok(true) => self.close(key, registry),
            Err(e) => {
                log::debug!("http: {}: {e}", conn.peer);
                self.close(key, registry);
            }
        }
    }

    /// Closes the connections whose time is up.
    pub fn expire(&mut self, now: Instant, registry: &Registry) {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        for key in late {
            let conn = &mut self.conns[key];
            if conn.answer.is_none() {
                let _ = conn
                    .stream
                    .write(&Response::text(408, "request timeout\n").to_bytes());
            }
            log::debug!("http: {}: closed after {REQUEST_TIMEOUT:?}", conn.peer);
            self.close(key, registry);
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        let mut conn = self.conns.remove(key);
        let _ = registry.deregister(&mut conn.stream);
    }
}

impl HttpConn {
    /// Reads into the request head and answers it once it is whole. Returns true when the
    /// connection is to be closed without more (the client went away).
    fn read_request(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut chunk = [0; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => self.head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.head.len() > MAX_HEAD {
                break;
            }
        }
        let response = if self.head.len() > MAX_HEAD {
            Response::text(431, "request head too large\n")
        } else {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&self.head) {
                Ok(httparse::Status::Partial) => return Ok(false),
                Ok(httparse::Status::Complete(_)) => {
                    let request = Request::from_parsed(&parsed);
                    routes::answer(&request, cx)
                }
                Err(e) => Response::text(400, &format!("bad request: {e}\n")),
            }
        };
        self.answer = Some((response.to_bytes(), 0));
        Ok(false)
    }

    /// Writes what the socket takes of the answer; true once all of it is written.
    fn write_answer(&mut self) -> io::Result<bool> {
        let Some((bytes, written)) = &mut self.answer else {
            return Ok(false);
        };
        while *written < bytes.len() {
            match self.stream.write(&bytes[*written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        Ok(true)
    }
}
