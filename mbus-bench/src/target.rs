//! What the bench asks of every broker it measures, and the socket plumbing all of them share:
//! loopback connections with `TCP_NODELAY`, large reads into one buffer that is parsed in place,
//! and writes that give up at a deadline instead of blocking forever.

#[cfg(test)]
pub mod testing;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a blocking read or write waits before the caller looks at its deadline again.
pub const POLL: Duration = Duration::from_millis(100);
/// Space kept free for each read: every read asks the kernel for at least this much.
const MIN_READ: usize = 64 << 10;
/// What a connection's input buffer starts with; it grows only for a frame larger than this.
const INPUT_CAPACITY: usize = 256 << 10;

/// One thing a server sent, as the bench understands it whatever the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A delivered message's payload.
    Message(&'a [u8]),
    /// Publishes 1 to n of this connection are stored (mbus `Confirm`, cumulative).
    Confirmed(u64),
    /// One publish reached this many subscribers (the reply to a Redis `PUBLISH`).
    Published(u64),
    /// One publish is stored as this sequence number of its stream (a JetStream `PubAck`).
    Stored(u64),
    /// The reply to a request the bench made (a JetStream API call), its JSON still unparsed.
    Reply(&'a [u8]),
    /// The server asks for a pong.
    Ping,
    /// The answer to a ping the bench sent.
    Pong,
    /// The server greets a new connection (mbus `Welcome`, NATS `INFO`).
    Welcome,
    /// A subscription is active (mbus `Subscribed`, the Redis `subscribe` confirmation).
    Subscribed,
    /// Anything the bench has no use for.
    Other,
}

/// Takes the first event off `buf`, with the bytes it used, or `None` while it is incomplete.
/// A server's error report is an `Err` carrying its text.
pub type Parser = for<'a> fn(&'a [u8]) -> anyhow::Result<Option<(Event<'a>, usize)>>;

/// A running broker and how to talk to it. The load generator is the same for every target;
/// only these few protocol pieces differ.
pub trait Target: Sync {
    /// The name in the table: `mbus`, `nats-server` or `redis-server`.
    fn name(&self) -> &'static str;
    /// The server's process id, for its memory use.
    fn pid(&self) -> u32;
    /// A connection that has done its handshake and may publish at once.
    fn publisher(&self, deadline: Instant) -> anyhow::Result<Conn>;
    /// A connection whose subscription is active: everything published from now on reaches it.
    /// A target that stores messages (durable mode) delivers everything it holds as well, from
    /// the oldest message on.
    fn subscriber(&self, deadline: Instant) -> anyhow::Result<Conn>;
    /// A connection that completes its handshake (if the protocol has one) and then stays idle.
    fn idle(&self, deadline: Instant) -> anyhow::Result<Conn>;
    /// Appends the bytes that publish `payload`.
    fn encode_publish(&self, payload: &[u8], out: &mut Vec<u8>);
    /// Appends what makes the server answer once it has handled everything published before,
    /// for protocols that do not confirm each publish.
    fn encode_flush(&self, _out: &mut Vec<u8>) {}
    /// The parser for everything this server sends.
    fn parser(&self) -> Parser;
    /// The answer to the server's ping.
    fn pong(&self) -> &'static [u8];
    /// Stops the server and requires a clean exit.
    fn stop(self: Box<Self>) -> anyhow::Result<()>;
    /// The group commits the server counted since it started, if it counts them.
    fn commits(&self) -> Option<anyhow::Result<u64>> {
        None
    }
}

/// A client's failure caused by another client of the same run failing first; the report
/// quotes the first failure, not this.
#[derive(Debug)]
pub struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped because another client of the run failed")
    }
}

impl std::error::Error for Aborted {}

/// A connection and what has been read from it but not parsed yet.
pub struct Conn {
    pub stream: TcpStream,
    pub input: Input,
}

impl Conn {
    /// Connects with `TCP_NODELAY`, and with read and write timeouts of [`POLL`] so that no
    /// call blocks past a deadline for long.
    pub fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(POLL)))
            .and_then(|()| stream.set_write_timeout(Some(POLL)))
            .context("cannot set socket options")?;
        Ok(Conn {
            stream,
            input: Input::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8], deadline: Instant) -> anyhow::Result<()> {
        write_all(&mut self.stream, bytes, deadline)
    }

    /// Reads once. `Ok(false)` when nothing came within [`POLL`]; an error when the server
    /// closed the connection.
    pub fn fill(&mut self) -> anyhow::Result<bool> {
        match self.input.read_from(&mut self.stream) {
            Ok(0) => bail!("the server closed the connection"),
            Ok(_) => Ok(true),
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) => Err(e).context("cannot read from the server"),
        }
    }

    /// Reads and parses until an event satisfies `done`, answering pings on the way: the
    /// handshakes. `what` names the awaited event in the error.
    pub fn wait_for(
        &mut self,
        target: &dyn Target,
        what: &str,
        deadline: Instant,
        mut done: impl FnMut(&Event) -> bool,
    ) -> anyhow::Result<()> {
        let parse = target.parser();
        loop {
            while let Some((event, used)) = parse(self.input.data())? {
                let (finished, ping) = (done(&event), event == Event::Ping);
                self.input.consume(used);
                if ping {
                    self.send(target.pong(), deadline)?;
                }
                if finished {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!("{} sent no {what} in time", target.name());
            }
            self.fill()
                .with_context(|| format!("while waiting for {what}"))?;
        }
    }
}

/// Bytes read from a connection: parsed from the front, read into at the back.
pub struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    pub fn new() -> Input {
        Input {
            buf: vec![0; INPUT_CAPACITY],
            start: 0,
            end: 0,
        }
    }

    /// What has been read and not consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start, "consumed more than was read");
        self.start += n;
    }

    /// One read into the free space, after moving the unparsed rest to the front when less
    /// than [`MIN_READ`] is free. The buffer grows only when a single frame needs it, and the
    /// parsers bound how large a frame may be.
    fn read_from(&mut self, stream: &mut impl Read) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < MIN_READ {
                self.buf.resize(self.end + MIN_READ, 0);
            }
        }
        let n = stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }
}

/// Writes all of `bytes`, retrying after write timeouts until `deadline`.
pub fn write_all(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    deadline: Instant,
) -> anyhow::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => bail!("the server stopped taking bytes"),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    bail!("the server took no bytes for too long");
                }
            }
            Err(e) => return Err(e).context("cannot write to the server"),
        }
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
