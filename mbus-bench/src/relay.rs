//! The bare relay: the limit a broker is measured against. It speaks mbus's protocol, so the
//! same load generator drives it, and does only what forwarding takes: one thread, one `mio`
//! poll, each read's `Publish` frames decoded and encoded once as `Deliver` frames, that run
//! copied to every subscriber, and a cumulative `Confirm` per read. No log, no retention, no limits, no timers: what a broker adds on top
//! of this is what its figures cost beyond the relay's.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context;
use mbus_proto::{DEFAULT_MAX_FRAME, Frame, PROTOCOL_VERSION, Role, Start};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::mbus;
use super::target::{Conn, Parser, Target};

const PRODUCERS: Token = Token(0);
const CONSUMERS: Token = Token(1);
const WAKER: Token = Token(2);
const FIRST: usize = 3;

/// The relay running on its own thread, on two loopback ports.
pub struct Relay {
    producers: SocketAddr,
    consumers: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

struct Peer {
    stream: TcpStream,
    role: Role,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already written.
    sent: usize,
    subscribed: bool,
    published: u64,
    confirmed: u64,
}

pub fn start() -> anyhow::Result<Relay> {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut producers = TcpListener::bind(any).context("relay: bind")?;
    let mut consumers = TcpListener::bind(any).context("relay: bind")?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut producers, PRODUCERS, Interest::READABLE)?;
    poll.registry()
        .register(&mut consumers, CONSUMERS, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let stop = Arc::new(AtomicBool::new(false));
    let (paddr, caddr) = (producers.local_addr()?, consumers.local_addr()?);
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("bench-relay".into())
        .spawn(move || serve(poll, producers, consumers, &flag))?;
    Ok(Relay {
        producers: paddr,
        consumers: caddr,
        stop,
        waker,
        thread: Some(thread),
    })
}

fn serve(
    mut poll: Poll,
    producers: TcpListener,
    consumers: TcpListener,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut peers: Slab<Peer> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0; 256 << 10];
    let mut next_offset = 0u64;
    let mut touched: Vec<usize> = Vec::new();
    // Peers that used their read budget and may hold more: read again next turn, without
    // waiting for an event that an edge-triggered poll will not send again.
    let mut backlog: Vec<usize> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let wait = (!backlog.is_empty()).then_some(std::time::Duration::ZERO);
        poll.poll(&mut events, wait)?;
        touched.clear();
        // What to read this turn: the backlog, then what the poll says is readable.
        let mut readable = std::mem::take(&mut backlog);
        for event in events.iter() {
            match event.token() {
                WAKER => {}
                token @ (PRODUCERS | CONSUMERS) => {
                    let (listener, role) = if token == PRODUCERS {
                        (&producers, Role::Producer)
                    } else {
                        (&consumers, Role::Consumer)
                    };
                    while let Ok((mut stream, _)) = listener.accept() {
                        stream.set_nodelay(true)?;
                        let entry = peers.vacant_entry();
                        poll.registry().register(
                            &mut stream,
                            Token(FIRST + entry.key()),
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
                        entry.insert(Peer {
                            stream,
                            role,
                            input: Vec::new(),
                            output: Vec::new(),
                            sent: 0,
                            subscribed: false,
                            published: 0,
                            confirmed: 0,
                        });
                    }
                }
                Token(t) => {
                    let key = t - FIRST;
                    if event.is_readable() {
                        readable.push(key);
                    }
                    touched.push(key);
                }
            }
        }
        for key in readable {
            let budget_spent = peers.contains(key)
                && read(
                    &mut peers,
                    key,
                    &mut scratch,
                    &mut next_offset,
                    &mut touched,
                );
            if budget_spent {
                backlog.push(key);
            }
            touched.push(key);
        }
        touched.sort_unstable();
        touched.dedup();
        for &key in &touched {
            if let Some(peer) = peers.get_mut(key) {
                if peer.confirmed < peer.published {
                    Frame::Confirm {
                        count: peer.published,
                    }
                    .encode(&mut peer.output);
                    peer.confirmed = peer.published;
                }
            }
        }
        let keys: Vec<usize> = peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            if write(&mut peers[key]).is_err() {
                let mut gone = peers.remove(key);
                let _ = poll.registry().deregister(&mut gone.stream);
            }
        }
    }
    Ok(())
}

/// Most bytes read from one peer per turn, as the broker reads, so that writes keep pace.
const READ_BUDGET: usize = 1 << 20;

/// Reads what arrived on peer `key`, up to the budget, and acts on every whole frame;
/// subscribers written to are added to `touched`. True if the budget ran out first.
fn read(
    peers: &mut Slab<Peer>,
    key: usize,
    scratch: &mut [u8],
    next_offset: &mut u64,
    touched: &mut Vec<usize>,
) -> bool {
    let mut budget = READ_BUDGET;
    let more = loop {
        let peer = &mut peers[key];
        match peer.stream.read(scratch) {
            Ok(0) => break false,
            Ok(n) => {
                peer.input.extend_from_slice(&scratch[..n]);
                budget = budget.saturating_sub(n);
                if budget == 0 {
                    break true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    let mut input = std::mem::take(&mut peers[key].input);
    // Deliveries are encoded once into this, then handed to every subscriber whole.
    let mut batch = Vec::new();
    let mut at = 0;
    // Stamped as the broker stamps what it stores: once per turn.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    while let Ok(Some((frame, used))) = mbus_proto::decode(&input[at..], DEFAULT_MAX_FRAME) {
        match frame {
            Frame::Hello { .. } => Frame::Welcome {
                version: PROTOCOL_VERSION,
                max_frame: DEFAULT_MAX_FRAME,
                idle_timeout: 60_000,
            }
            .encode(&mut peers[key].output),
            Frame::Subscribe { topic, .. } => {
                let peer = &mut peers[key];
                peer.subscribed = true;
                Frame::Subscribed {
                    topic,
                    offset: *next_offset,
                    first: 0,
                    next: *next_offset,
                }
                .encode(&mut peer.output);
            }
            Frame::Publish {
                topic,
                batch: messages,
            } => {
                Frame::Deliver {
                    topic,
                    offset: *next_offset,
                    time: now,
                    batch: messages,
                }
                .encode(&mut batch);
                *next_offset += messages.len() as u64;
                peers[key].published += 1;
            }
            Frame::Ping => Frame::Pong.encode(&mut peers[key].output),
            _ => {}
        }
        at += used;
    }
    input.drain(..at);
    peers[key].input = input;
    if !batch.is_empty() {
        for (k, sub) in peers.iter_mut().filter(|(_, p)| p.subscribed) {
            sub.output.extend_from_slice(&batch);
            touched.push(k);
        }
    }
    debug_assert!(peers[key].role == Role::Producer || peers[key].published == 0);
    more
}

/// Writes what the socket takes of the peer's output.
fn write(peer: &mut Peer) -> io::Result<()> {
    while peer.sent < peer.output.len() {
        match peer.stream.write(&peer.output[peer.sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => peer.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    peer.output.clear();
    peer.sent = 0;
    Ok(())
}

impl Relay {
    fn connect(&self, role: Role, deadline: Instant) -> anyhow::Result<Conn> {
        let addr = match role {
            Role::Producer => self.producers,
            Role::Consumer => self.consumers,
        };
        mbus::open(self, addr, role, deadline)
    }
}

impl Target for Relay {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn publisher(&self, deadline: Instant) -> anyhow::Result<Conn> {
        self.connect(Role::Producer, deadline)
    }

    fn subscriber(&self, deadline: Instant) -> anyhow::Result<Conn> {
        let conn = self.connect(Role::Consumer, deadline)?;
        mbus::subscribe(self, conn, Start::Latest, deadline)
    }

    fn idle(&self, deadline: Instant) -> anyhow::Result<Conn> {
        self.connect(Role::Consumer, deadline)
    }

    fn encode_publish(&self, payload: &[u8], out: &mut Vec<u8>) {
        mbus::encode_publish(payload, out);
    }

    fn parser(&self) -> Parser {
        mbus::parse
    }

    fn pong(&self) -> &'static [u8] {
        mbus::PONG
    }

    fn stop(mut self: Box<Self>) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake()?;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(e).context("the relay failed"),
            Some(Err(_)) => anyhow::bail!("the relay panicked"),
        }
    }
}
