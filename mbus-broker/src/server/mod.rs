//! The event loop: one thread, one `mio::Poll`, non-blocking sockets, and the core it feeds.
//!
//! The loop alone touches sockets and tokens. Each iteration it accepts, reads what arrived and
//! passes decoded frames to the core, then writes what the core says connections are owed.

mod accept;
pub mod http;
mod input;
mod shutdown;
mod traffic;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbus_proto::{ErrorCode, Role};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::BrokerConfig;
use crate::engine::{ConnId, Core, HELLO_FRAME_LIMIT, Stats};
use input::Input;
pub use shutdown::ShutdownHandle;

const PRODUCERS: Token = Token(0);
const CONSUMERS: Token = Token(1);
const WAKER: Token = Token(2);
const SIGNALS: Token = Token(3);
const HTTP_LISTENER: Token = Token(4);
const FIRST_CONN: usize = 5;
/// The first token of a monitoring connection, far above any client's.
const FIRST_HTTP: usize = usize::MAX / 2;

/// Most bytes read from one connection per loop iteration, so a busy peer cannot starve others.
const READ_BUDGET: usize = 1 << 20;
/// Size of the read buffer shared by all connections.
const SCRATCH: usize = 256 << 10;
/// How long to wait before accepting again after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Errors that stop a broker from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listening address could not be resolved or bound.
    #[error("cannot listen on {addr} for {role}s")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The port's role.
        role: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The topics in the data directory could not be opened.
    #[error("cannot open the data directory")]
    Storage(#[source] crate::store::StoreError),
    /// The configuration cannot serve any client.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The poller failed; the loop cannot go on.
    #[error("event loop failed")]
    Poll(#[source] io::Error),
}

/// One client socket and what has arrived of its next frame.
struct Socket {
    stream: TcpStream,
    peer: SocketAddr,
    input: Input,
    /// Bytes read from it, for monitoring.
    bytes_in: u64,
}

/// How many connections the kernel completes ahead of the loop's accepts. std's and mio's 128
/// overflows when a crowd connects at once, and each connection dropped that way waits for a
/// SYN retransmit, a second or more; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listener on `addr`, with address reuse as std sets it and a deep backlog.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// A bound broker, ready to [`Server::run`].
pub struct Server {
    poll: Poll,
    producers: TcpListener,
    consumers: TcpListener,
    shutdown: ShutdownHandle,
    core: Core,
    sockets: Vec<Option<Socket>>,
    config: BrokerConfig,
    scratch: Vec<u8>,
    /// Connections that used their read budget and may hold more input.
    read_backlog: Vec<ConnId>,
    ready: Vec<ConnId>,
    /// While set, accepting waits: the process had no file descriptor left.
    accept_paused_until: Option<Instant>,
    /// When a shutdown stops waiting for consumers.
    grace_ends: Option<Instant>,
    /// Bytes held by all connections' incomplete frames, bounded by `--max-pending-input`.
    input_held: usize,
    /// Loop iterations so far.
    turns: u64,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// The core's counters as of the last turn, for [`Server::stats_handle`].
    stats: Arc<Mutex<Stats>>,
    /// The monitoring port, with `--http`.
    http: Option<http::Http>,
    /// What monitoring shows of the group commits.
    commits: http::CommitMetrics,
}

impl Server {
    /// Binds both ports and prepares the loop.
    pub fn bind(config: BrokerConfig) -> Result<Server, ServerError> {
        if config.max_frame < HELLO_FRAME_LIMIT {
            // Below this, a client's Hello (up to 4 KiB) could be refused before it is read.
            return Err(ServerError::Config(format!(
                "--max-frame {} is below the least a broker takes, {HELLO_FRAME_LIMIT} bytes",
                config.max_frame
            )));
        }
        let listen = |addr: io::Result<SocketAddr>, host: &str, port: u16, role: Role| {
            addr.and_then(bind_listener)
                .map_err(|source| ServerError::Bind {
                    addr: format!("{host}:{port}"),
                    role: role.as_str(),
                    source,
                })
        };
        let mut producers = listen(
            config.producer_addr(),
            &config.phost,
            config.pport,
            Role::Producer,
        )?;
        let mut consumers = listen(
            config.consumer_addr(),
            &config.chost,
            config.cport,
            Role::Consumer,
        )?;
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let registry = poll.registry();
        registry
            .register(&mut producers, PRODUCERS, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        registry
            .register(&mut consumers, CONSUMERS, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let waker = Waker::new(registry, WAKER).map_err(ServerError::Poll)?;
        let http = match config.http_addr() {
            None => None,
            Some(addr) => {
                let mut listener =
                    addr.and_then(bind_listener)
                        .map_err(|source| ServerError::Bind {
                            addr: config.http.clone().unwrap_or_default(),
                            role: "monitoring client",
                            source,
                        })?;
                registry
                    .register(&mut listener, HTTP_LISTENER, Interest::READABLE)
                    .map_err(ServerError::Poll)?;
                Some(http::Http::new(listener, FIRST_HTTP))
            }
        };
        let now = Instant::now();
        let storage = config
            .storage()
            .map(|s| Box::new(s) as Box<dyn crate::engine::storage::Storage>);
        let core = Core::start(config.core(), storage, now).map_err(ServerError::Storage)?;
        if let Some(dir) = &config.data_dir {
            log::info!(
                "recovered {} topics from {} in {:.1?}",
                core.stats().topics,
                dir.display(),
                now.elapsed()
            );
        }
        Ok(Server {
            core,
            shutdown: ShutdownHandle::new(waker),
            poll,
            producers,
            consumers,
            sockets: Vec::new(),
            config,
            scratch: vec![0; SCRATCH],
            read_backlog: Vec::new(),
            ready: Vec::new(),
            accept_paused_until: None,
            grace_ends: None,
            input_held: 0,
            turns: 0,
            signals: None,
            stats: Arc::default(),
            http,
            commits: http::CommitMetrics::default(),
        })
    }

    /// Makes SIGINT and SIGTERM stop the loop as [`ShutdownHandle::shutdown`] does.
    pub fn stop_on_signals(&mut self) -> Result<(), ServerError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM]).map_err(ServerError::Poll)?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// The address producers connect to.
    pub fn producer_addr(&self) -> SocketAddr {
        self.producers
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address consumers connect to.
    pub fn consumer_addr(&self) -> SocketAddr {
        self.consumers
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address of the monitoring port, with `--http`.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|h| h.local_addr().ok())
    }

    /// A handle that stops [`Server::run`] from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The core's counters, updated at the end of every loop turn while someone holds this.
    pub fn stats_handle(&self) -> Arc<Mutex<Stats>> {
        self.stats.clone()
    }

    /// How many times the loop has polled; a loop that spins shows here.
    pub fn turns(&self) -> u64 {
        self.turns
    }

    /// The core, for inspection once the loop has stopped.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Serves until a shutdown is requested, then gives consumers a bounded time to take what
    /// they are owed and returns.
    pub fn run(&mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        while !self.shutdown.requested() {
            self.turn(&mut events, true)?;
        }
        log::info!("shutting down: no new connections, producers are closed after a final confirm");
        self.poll.registry().deregister(&mut self.producers).ok();
        self.poll.registry().deregister(&mut self.consumers).ok();
        // Nothing more is taken from producers, so that consumers can be brought to the end of
        // every topic within the grace period.
        self.reject_all(Some(Role::Producer));
        let deadline = Instant::now() + self.config.shutdown_grace;
        self.grace_ends = Some(deadline);
        while self.core.owes_output() && Instant::now() < deadline {
            self.turn(&mut events, false)?;
        }
        let drained = !self.core.owes_output();
        self.reject_all(None);
        self.flush_ready();
        for index in 0..self.sockets.len() {
            self.drop_socket(ConnId::from_index(index));
        }
        let stats = self.core.stats();
        log::info!(
            "stopped: {} connections served, {} topics, {} messages published, {}",
            stats.connections_total,
            stats.topics,
            stats.messages,
            if drained {
                "every consumer had all it was owed"
            } else {
                "some consumers were still owed messages after the grace period"
            }
        );
        Ok(())
    }

    /// Tells every connection of `role` (or every connection) that the broker is shutting down.
    fn reject_all(&mut self, role: Option<Role>) {
        for index in 0..self.sockets.len() {
            let id = ConnId::from_index(index);
            if self.sockets[index].is_some() && role.is_none_or(|r| self.core.role(id) == Some(r)) {
                self.core
                    .reject(id, ErrorCode::ShuttingDown, "broker is shutting down");
            }
        }
    }

    /// Answers the monitoring connections that are ready, from the core as it is after this
    /// turn's commit, and closes those whose time is up.
    fn serve_http(&mut self, ready: &[Token], now: Instant) {
        let Some(http) = &mut self.http else {
            return;
        };
        let sockets = &self.sockets;
        let bytes_in = |i: usize| {
            sockets
                .get(i)
                .and_then(Option::as_ref)
                .map_or(0, |s| s.bytes_in)
        };
        let mut cx = http::Context {
            core: &mut self.core,
            auth_token: self.config.auth_token.as_deref(),
            shutting_down: self.shutdown.requested(),
            commits: &self.commits,
            bytes_in: &bytes_in,
        };
        for &token in ready {
            http.ready(token, self.poll.registry(), &mut cx);
        }
        http.expire(now, self.poll.registry());
    }

    /// One turn of the loop, always in this order:
    ///
    /// 1. sleep until a socket is ready or the next deadline: the core's
    ///    ([`Core::poll_timeout`]), the end of an accept back-off or of the shutdown grace;
    ///    without sleeping when a connection still has output or unread input;
    /// 2. tell the core the time of day ([`Core::set_wall_clock`], for the messages it stores)
    ///    and the time ([`Core::handle_timeout`]), which fires its due timers;
    /// 3. accept, and read every readable connection, handing the core each frame;
    /// 4. [`Core::commit`]: one durable write for everything read, before any confirm;
    /// 5. answer the monitoring requests that arrived, from the core as it now is;
    /// 6. drop connections the core gave up on ([`Core::take_expired`]);
    /// 7. write what the core says each connection is owed, deliveries first.
    fn turn(&mut self, events: &mut Events, accepting: bool) -> Result<(), ServerError> {
        let busy = self.core.has_ready() || !self.read_backlog.is_empty();
        let wake_at = [
            self.core.poll_timeout(),
            self.accept_paused_until,
            self.grace_ends,
            self.http.as_ref().and_then(http::Http::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = match wake_at {
            _ if busy => Some(Duration::ZERO),
            Some(t) => Some(t.saturating_duration_since(Instant::now())),
            None => None,
        };
        self.turns += 1;
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ServerError::Poll(e)),
        }
        let now = Instant::now();
        self.core.set_wall_clock(unix_ms());
        self.core.handle_timeout(now);
        let mut http_ready = Vec::new();
        if accepting && self.accept_paused_until.is_some_and(|t| now >= t) {
            self.accept_paused_until = None;
            self.accept(Role::Producer);
            self.accept(Role::Consumer);
        }
        for event in events.iter() {
            match event.token() {
                PRODUCERS if accepting => self.accept(Role::Producer),
                CONSUMERS if accepting => self.accept(Role::Consumer),
                SIGNALS => {
                    if let Some(signals) = &mut self.signals {
                        for signal in signals.pending() {
                            log::info!("received signal {signal}, shutting down");
                            self.shutdown.shutdown();
                        }
                    }
                }
                HTTP_LISTENER => {
                    if let Some(http) = &mut self.http {
                        http.accept(self.poll.registry(), now);
                    }
                }
                PRODUCERS | CONSUMERS | WAKER => {}
                token if self.http.as_ref().is_some_and(|h| h.owns(token)) => {
                    http_ready.push(token);
                }
                Token(t) => {
                    let id = ConnId::from_index(t - FIRST_CONN);
                    if event.is_writable() {
                        self.core.writable(id);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        self.read(id);
                    }
                }
            }
        }
        for id in std::mem::take(&mut self.read_backlog) {
            self.read(id);
        }
        let committing = self.core.commit_pending();
        let started = Instant::now();
        self.core.commit();
        if committing > 0 {
            self.commits
                .duration
                .observe(started.elapsed().as_secs_f64());
            self.commits.topics.observe(committing as f64);
        }
        self.serve_http(&http_ready, now);
        let mut expired = Vec::new();
        self.core.take_expired(&mut expired);
        for id in expired {
            if let Some(socket) = self.sockets.get(id.index()).and_then(Option::as_ref) {
                log::info!("{}: dropped, it never took its error frame", socket.peer);
            }
            self.drop_socket(id);
        }
        self.flush_ready();
        if Arc::strong_count(&self.stats) > 1 {
            *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = self.core.stats();
        }
        Ok(())
    }
}

/// The time of day in milliseconds since the Unix epoch; 0 on a clock set before 1970.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
