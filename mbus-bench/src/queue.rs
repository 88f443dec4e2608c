//! `cargo xtask bench --queue`: a work queue. One publisher, four workers sharing the queue and
//! acking every message, 1,000,000 x 128 B, against mbus (a consumer group), nats-server
//! JetStream (a work-queue stream, a durable pull consumer, explicit acks) and Redis Streams
//! (XREADGROUP and XACK, pipelined). Each server is started once and serves every pass, a new
//! queue per pass; the figure is messages acked per second, from the first publish to the last
//! ack, with every message processed once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mbus_proto::client::{ClientProtocol, Incoming};
use mbus_proto::{AckAction, AckRanges, Frame, GroupOptions, Role, Start};

use super::plan::{Kind, PAYLOAD};
use super::report::{self, Better, Row};
use super::target::Target;
use super::{Bench, Column, Figures, file_run, mbus, nats, redis};

/// Messages of a full pass; `--quick` sends a tenth.
pub const MESSAGES: u64 = 1_000_000;
/// Workers sharing the queue.
pub const WORKERS: usize = 4;
/// Messages the queue lets its workers hold unacknowledged, in all: JetStream's and mbus's
/// default, and what Redis's workers ask for at a time.
const IN_FLIGHT: u32 = 1000;
/// Most publishes unconfirmed at any time, the same for every target.
const WINDOW: u64 = 10_000;

/// One pass's result.
struct Pass {
    elapsed: Duration,
    acked: u64,
}

impl Bench {
    /// Every pass against each target in `columns`, each started once; failures are added to
    /// `failures`. Returns the table.
    pub fn queue(&self, columns: &[Column], failures: &mut Vec<String>) -> String {
        let count = self.scale.count(MESSAGES);
        let mut servers: Vec<(Kind, Server, Figures)> = Vec::new();
        // The relay forwards frames and nothing else: it has no queue to share.
        for column in columns.iter().filter(|c| c.kind != Kind::Relay) {
            match Server::start(self, column) {
                Ok(server) => servers.push((column.kind, server, Figures::default())),
                Err(e) => failures.push(format!("queue: starting {}: {e:#}", column.kind.name())),
            }
        }
        for run in 1..=self.scale.runs {
            for (kind, server, figures) in &mut servers {
                let what = format!("queue {} run {run}/{}", kind.name(), self.scale.runs);
                let outcome = server
                    .pass(run, count, self.scale.timeout)
                    .map(|p| super::Outcome {
                        figures: vec![p.acked as f64 / p.elapsed.as_secs_f64()],
                        note: None,
                    });
                file_run(&what, outcome, vec![("msgs/s", figures)], failures);
            }
        }
        let names: Vec<&str> = servers.iter().map(|(k, _, _)| k.name()).collect();
        let baseline = servers.iter().position(|(k, _, _)| *k == Kind::Nats);
        let row = Row {
            label: format!(
                "queue: 1 publisher, {WORKERS} workers acking each message, {} x {PAYLOAD} B",
                report::figure(count as f64)
            ),
            unit: "msgs/s",
            better: Better::Higher,
            cells: servers.iter().map(|(_, _, f)| f.cell()).collect(),
        };
        for (kind, server, _) in servers {
            if let Err(e) = server.stop() {
                failures.push(format!("queue: stopping {}: {e:#}", kind.name()));
            }
        }
        let mut text = String::from(
            "Work queue: messages published, shared by the workers and acked, per second from \
             the first publish to the last ack; every message was processed once. mbus: a \
             consumer group (`Join`, `Assign`, acks in ranges); nats-server: a JetStream \
             work-queue stream in memory, one durable pull consumer, explicit acks; Redis: a \
             stream and a consumer group, XREADGROUP and XACK pipelined. At most 1,000 messages \
             unacknowledged over all workers, and 10,000 publishes unconfirmed.",
        );
        if baseline.is_some() {
            text += " In parentheses: the figure divided by JetStream's median from the same \
                     bench run.";
        }
        text += "\n\n";
        text += &report::render(&names, baseline, &[row]);
        text
    }
}

/// A server the queue passes run against: the target, which stops it, and its protocol.
struct Server {
    target: Box<dyn Target>,
    kind: Served,
}

enum Served {
    /// The producer and consumer ports.
    Mbus(SocketAddr, SocketAddr),
    Nats(SocketAddr),
    Redis(SocketAddr),
}

impl Server {
    fn start(bench: &Bench, column: &Column) -> anyhow::Result<Server> {
        let exe = || column.exe();
        Ok(match column.kind {
            Kind::Mbus => {
                let m = mbus::start(&bench.bins, &bench.scratch, None, false)?;
                let (p, c) = m.addrs();
                Server {
                    target: Box::new(m),
                    kind: Served::Mbus(p, c),
                }
            }
            Kind::Nats => {
                let store = bench.scratch.join("bench-queue-jetstream");
                let n = nats::start_with(
                    exe()?,
                    &bench.scratch,
                    &["-js".into(), "-sd".into(), store.into()],
                )?;
                let addr = n.addr();
                Server {
                    target: Box::new(n),
                    kind: Served::Nats(addr),
                }
            }
            Kind::Redis => {
                let r = redis::start(exe()?, &bench.scratch)?;
                let addr = r.addr();
                Server {
                    target: Box::new(r),
                    kind: Served::Redis(addr),
                }
            }
            other => bail!("{} has no work queue", other.name()),
        })
    }

    fn stop(self) -> anyhow::Result<()> {
        self.target.stop()
    }

    fn pass(&mut self, run: u32, count: u64, timeout: Duration) -> anyhow::Result<Pass> {
        let queue = format!("wq{run}");
        let deadline = Instant::now() + timeout;
        let acked = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        self.prepare(&queue)?;
        let started = Instant::now();
        let (acked, done) = (&acked, &done);
        thread::scope(|s| -> anyhow::Result<()> {
            let workers: Vec<_> = (0..WORKERS)
                .map(|k| {
                    let queue = queue.clone();
                    let server = &*self;
                    s.spawn(move || {
                        let result = server.work(&queue, k, count, acked, done, deadline);
                        done.store(true, Ordering::Relaxed);
                        result
                    })
                })
                .collect();
            let published = self.publish(&queue, count, deadline);
            if published.is_err() {
                done.store(true, Ordering::Relaxed);
            }
            for w in workers {
                w.join().expect("a worker panicked")?;
            }
            published
        })?;
        let acked = acked.load(Ordering::Relaxed);
        if acked != count {
            bail!("{acked} of {count} messages were processed");
        }
        Ok(Pass {
            elapsed: started.elapsed(),
            acked,
        })
    }

    /// Creates the queue before anything is published: the JetStream stream and its consumer,
    /// the Redis stream and its group. An mbus group is created by its first member, at the
    /// topic's start.
    fn prepare(&self, queue: &str) -> anyhow::Result<()> {
        match self.kind {
            Served::Mbus(..) => Ok(()),
            Served::Nats(addr) => {
                let stream = format!(
                    "{{\"name\":\"{queue}\",\"subjects\":[\"{queue}\"],\"retention\":\"workqueue\",\"storage\":\"memory\"}}"
                );
                js_request(addr, &format!("$JS.API.STREAM.CREATE.{queue}"), &stream)?;
                let consumer = format!(
                    "{{\"stream_name\":\"{queue}\",\"config\":{{\"durable_name\":\"workers\",\"ack_policy\":\"explicit\",\"max_ack_pending\":{IN_FLIGHT}}}}}"
                );
                js_request(
                    addr,
                    &format!("$JS.API.CONSUMER.DURABLE.CREATE.{queue}.workers"),
                    &consumer,
                )
            }
            Served::Redis(addr) => {
                let mut s = connect(addr)?;
                let mut out = Vec::new();
                let create: [&[u8]; 6] = [
                    b"XGROUP",
                    b"CREATE",
                    queue.as_bytes(),
                    b"workers",
                    b"$",
                    b"MKSTREAM",
                ];
                command(&mut out, &create);
                s.write_all(&out)?;
                replies(
                    &mut s,
                    &mut Vec::new(),
                    1,
                    Instant::now() + Duration::from_secs(10),
                )?;
                Ok(())
            }
        }
    }

    fn publish(&self, queue: &str, count: u64, deadline: Instant) -> anyhow::Result<()> {
        match self.kind {
            Served::Mbus(p, _) => mbus_publish(p, queue, count, deadline),
            Served::Nats(addr) => js_publish(addr, queue, count, deadline),
            Served::Redis(addr) => redis_publish(addr, queue, count, deadline),
        }
    }

    fn work(
        &self,
        queue: &str,
        k: usize,
        count: u64,
        acked: &AtomicU64,
        done: &AtomicBool,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let until = Until {
            count,
            acked,
            done,
            deadline,
        };
        match self.kind {
            Served::Mbus(_, c) => mbus_work(c, queue, &until),
            Served::Nats(addr) => js_work(addr, queue, k, &until),
            Served::Redis(addr) => redis_work(addr, queue, k, &until),
        }
    }
}

/// When a worker stops: every message is acked, the pass failed elsewhere, or time is up.
struct Until<'a> {
    count: u64,
    acked: &'a AtomicU64,
    done: &'a AtomicBool,
    deadline: Instant,
}

impl Until<'_> {
    fn add(&self, n: u64) {
        if self.acked.fetch_add(n, Ordering::Relaxed) + n >= self.count {
            self.done.store(true, Ordering::Relaxed);
        }
    }

    fn over(&self) -> anyhow::Result<bool> {
        if Instant::now() > self.deadline {
            bail!("timed out");
        }
        Ok(self.done.load(Ordering::Relaxed))
    }
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(s)
}

/// Reads what arrived into `space`: the byte count, or `None` on a read timeout.
fn read_into(s: &mut TcpStream, space: &mut [u8]) -> anyhow::Result<Option<usize>> {
    match s.read(space) {
        Ok(0) => bail!("the server closed the connection"),
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads what arrived into `buf`; false on a read timeout.
fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
    let mut chunk = [0u8; 64 << 10];
    let n = read_into(s, &mut chunk)?;
    if let Some(n) = n {
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(n.is_some())
}

// mbus: the protocol crate's client state machine over a blocking socket.

fn mbus_open(addr: SocketAddr, role: Role) -> anyhow::Result<(TcpStream, ClientProtocol)> {
    let mut s = connect(addr)?;
    let mut p = ClientProtocol::new(role, None);
    while !p.is_open() {
        mbus_flush(&mut s, &mut p)?;
        mbus_read(&mut s, &mut p)?;
        p.poll()?;
    }
    Ok((s, p))
}

fn mbus_flush(s: &mut TcpStream, p: &mut ClientProtocol) -> anyhow::Result<()> {
    let n = p.outbound().len();
    if n > 0 {
        s.write_all(p.outbound())?;
        p.sent(n);
    }
    Ok(())
}

fn mbus_read(s: &mut TcpStream, p: &mut ClientProtocol) -> anyhow::Result<bool> {
    let n = read_into(s, p.read_space())?;
    if let Some(n) = n {
        p.filled(n);
    }
    Ok(n.is_some())
}

fn mbus_publish(
    addr: SocketAddr,
    queue: &str,
    count: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let (mut s, mut p) = mbus_open(addr, Role::Producer)?;
    let payload = vec![b'x'; PAYLOAD];
    let (mut sent, mut confirmed) = (0u64, 0u64);
    while confirmed < count {
        while sent < count && sent - confirmed < WINDOW && p.outbound().len() < 256 << 10 {
            Frame::publish(queue, &payload).encode(p.outbound_mut());
            sent += 1;
        }
        mbus_flush(&mut s, &mut p)?;
        if sent - confirmed >= WINDOW || sent == count {
            if Instant::now() > deadline {
                bail!("timed out");
            }
            mbus_read(&mut s, &mut p)?;
            while let Some(incoming) = p.poll()? {
                if let Incoming::Confirm { count } = incoming {
                    confirmed = count;
                }
            }
        }
    }
    Ok(())
}

fn mbus_work(addr: SocketAddr, queue: &str, until: &Until<'_>) -> anyhow::Result<()> {
    let (mut s, mut p) = mbus_open(addr, Role::Consumer)?;
    p.send(Frame::Join {
        topic: queue,
        group: "workers",
        start: Start::Earliest,
        credit: IN_FLIGHT,
        options: GroupOptions {
            max_ack_pending: IN_FLIGHT,
            ..GroupOptions::default()
        },
    });
    mbus_flush(&mut s, &mut p)?;
    let mut assigned: Option<std::ops::Range<u64>> = None;
    let mut acks = Vec::new();
    while !until.over()? {
        mbus_read(&mut s, &mut p)?;
        let mut n = 0;
        while let Some(incoming) = p.poll()? {
            match incoming {
                Incoming::Assign { first, count, .. } => {
                    assigned = Some(first..first + u64::from(count));
                }
                Incoming::Deliver { offset, batch, .. } => {
                    let range = assigned.take().context("a Deliver without an Assign")?;
                    let end = offset + p.batch(batch).len() as u64;
                    for o in range.start.max(offset)..range.end.min(end) {
                        AckRanges::push(&mut acks, o);
                        n += 1;
                    }
                }
                _ => {}
            }
        }
        if !acks.is_empty() {
            p.send(Frame::Ack {
                topic: queue,
                group: "workers",
                action: AckAction::Ack,
                delay: 0,
                ranges: AckRanges::new(&acks).expect("pushed"),
            });
            acks.clear();
            mbus_flush(&mut s, &mut p)?;
            until.add(n);
        }
    }
    Ok(())
}

// nats-server JetStream: the text protocol by hand.

const NATS_CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\nPING\r\n";

/// What one server line (and its payload) was.
enum NatsIn {
    /// A `MSG`: its reply subject and payload.
    Msg {
        reply: Vec<u8>,
        payload: Vec<u8>,
    },
    /// An `HMSG`: a status for a pull request (no messages, or its request expired).
    Status,
    Ping,
    Other,
}

/// The next whole server line of `buf` from `at`, and where the next begins.
fn nats_next(buf: &[u8], at: usize) -> anyhow::Result<Option<(NatsIn, usize)>> {
    let rest = &buf[at..];
    let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &rest[..nl];
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let body = at + nl + 2;
    let size =
        |f: &[u8]| -> anyhow::Result<usize> { std::str::from_utf8(f)?.parse().context("a size") };
    match fields.first().copied() {
        Some(b"MSG") => {
            let len = size(fields.last().expect("a size"))?;
            if buf.len() < body + len + 2 {
                return Ok(None);
            }
            let reply = if fields.len() == 5 {
                fields[3].to_vec()
            } else {
                Vec::new()
            };
            Ok(Some((
                NatsIn::Msg {
                    reply,
                    payload: buf[body..body + len].to_vec(),
                },
                body + len + 2,
            )))
        }
        Some(b"HMSG") => {
            let len = size(fields.last().expect("a size"))?;
            if buf.len() < body + len + 2 {
                return Ok(None);
            }
            Ok(Some((NatsIn::Status, body + len + 2)))
        }
        Some(b"PING") => Ok(Some((NatsIn::Ping, body))),
        Some(b"-ERR") => bail!("nats-server: {}", String::from_utf8_lossy(line)),
        _ => Ok(Some((NatsIn::Other, body))),
    }
}

fn nats_open(addr: SocketAddr, subscriptions: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut s = connect(addr)?;
    let mut buf = Vec::new();
    let mut hello = NATS_CONNECT.to_vec();
    hello.extend_from_slice(subscriptions.as_bytes());
    hello.extend_from_slice(b"PING\r\n");
    s.write_all(&hello)?;
    // INFO, then two PONGs: the server has taken the subscriptions.
    let mut pongs = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pongs < 2 {
        if Instant::now() > deadline {
            bail!("nats-server did not answer");
        }
        read_some(&mut s, &mut buf)?;
        while let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") {
            if buf.starts_with(b"PONG") {
                pongs += 1;
            } else if buf.starts_with(b"-ERR") {
                bail!("nats-server: {}", String::from_utf8_lossy(&buf[..nl]));
            }
            buf.drain(..nl + 2);
        }
    }
    Ok((s, buf))
}

/// A JetStream API request; fails if the reply reports an error.
fn js_request(addr: SocketAddr, subject: &str, body: &str) -> anyhow::Result<()> {
    let (mut s, mut buf) = nats_open(addr, "SUB _INBOX.queue-api 9\r\n")?;
    write!(
        s,
        "PUB {subject} _INBOX.queue-api {}\r\n{body}\r\n",
        body.len()
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if Instant::now() > deadline {
            bail!("no reply to {subject}");
        }
        read_some(&mut s, &mut buf)?;
        let mut at = 0;
        while let Some((msg, next)) = nats_next(&buf, at)? {
            at = next;
            if let NatsIn::Msg { payload, .. } = msg {
                let reply: serde_json::Value = serde_json::from_slice(&payload)?;
                if reply.get("error").is_some() {
                    bail!("{subject}: {reply}");
                }
                return Ok(());
            }
        }
        buf.drain(..at);
    }
}

fn js_publish(addr: SocketAddr, queue: &str, count: u64, deadline: Instant) -> anyhow::Result<()> {
    let (mut s, mut buf) = nats_open(addr, "SUB _INBOX.queue-acks.* 2\r\n")?;
    let payload = vec![b'x'; PAYLOAD];
    let (mut sent, mut confirmed) = (0u64, 0u64);
    let mut out = Vec::new();
    while confirmed < count {
        while sent < count && sent - confirmed < WINDOW && out.len() < 256 << 10 {
            write!(out, "PUB {queue} _INBOX.queue-acks.{sent} {PAYLOAD}\r\n")?;
            out.extend_from_slice(&payload);
            out.extend_from_slice(b"\r\n");
            sent += 1;
        }
        s.write_all(&out)?;
        out.clear();
        if sent - confirmed >= WINDOW || sent == count {
            if Instant::now() > deadline {
                bail!("timed out");
            }
            read_some(&mut s, &mut buf)?;
            let mut at = 0;
            while let Some((msg, next)) = nats_next(&buf, at)? {
                at = next;
                match msg {
                    NatsIn::Msg { payload, .. } => {
                        if payload.windows(5).any(|w| w == b"error") {
                            bail!("a publish failed: {}", String::from_utf8_lossy(&payload));
                        }
                        confirmed += 1;
                    }
                    NatsIn::Ping => s.write_all(b"PONG\r\n")?,
                    NatsIn::Status => bail!("a publish was answered with a status, not a PubAck"),
                    NatsIn::Other => {}
                }
            }
            buf.drain(..at);
        }
    }
    Ok(())
}

fn js_work(addr: SocketAddr, queue: &str, k: usize, until: &Until<'_>) -> anyhow::Result<()> {
    let inbox = format!("_INBOX.queue-pull-{k}");
    let (mut s, mut buf) = nats_open(addr, &format!("SUB {inbox} 3\r\n"))?;
    let batch = IN_FLIGHT as usize / WORKERS / 2;
    let pull = format!(
        "PUB $JS.API.CONSUMER.MSG.NEXT.{queue}.workers {inbox} {}\r\n{{\"batch\":{batch},\"expires\":500000000}}\r\n",
        format!("{{\"batch\":{batch},\"expires\":500000000}}").len()
    );
    // Two pulls outstanding, so that one is served while the other's messages are acked.
    s.write_all(pull.as_bytes())?;
    s.write_all(pull.as_bytes())?;
    let mut got_in_pull = 0;
    let mut out = Vec::new();
    while !until.over()? {
        read_some(&mut s, &mut buf)?;
        let mut at = 0;
        let mut n = 0;
        while let Some((msg, next)) = nats_next(&buf, at)? {
            at = next;
            match msg {
                NatsIn::Msg { reply, .. } => {
                    out.extend_from_slice(b"PUB ");
                    out.extend_from_slice(&reply);
                    out.extend_from_slice(b" 0\r\n\r\n");
                    n += 1;
                    got_in_pull += 1;
                    if got_in_pull == batch {
                        got_in_pull = 0;
                        out.extend_from_slice(pull.as_bytes());
                    }
                }
                NatsIn::Status => {
                    got_in_pull = 0;
                    out.extend_from_slice(pull.as_bytes());
                }
                NatsIn::Ping => out.extend_from_slice(b"PONG\r\n"),
                NatsIn::Other => {}
            }
        }
        buf.drain(..at);
        if !out.is_empty() {
            s.write_all(&out)?;
            out.clear();
        }
        if n > 0 {
            until.add(n);
        }
    }
    if k == 0 {
        js_request(addr, &format!("$JS.API.STREAM.DELETE.{queue}"), "")?;
    }
    Ok(())
}

// Redis Streams: RESP by hand.

/// A RESP value, as far as the queue needs one.
enum Resp {
    Nil,
    Int,
    Text(Vec<u8>),
    Array(Vec<Resp>),
}

/// The RESP value at `at` of `buf`, and where the next begins.
fn resp(buf: &[u8], at: usize) -> anyhow::Result<Option<(Resp, usize)>> {
    let Some(nl) = buf
        .get(at..)
        .and_then(|r| r.windows(2).position(|w| w == b"\r\n"))
    else {
        return Ok(None);
    };
    let line = &buf[at + 1..at + nl];
    let next = at + nl + 2;
    let number = || -> anyhow::Result<i64> { Ok(std::str::from_utf8(line)?.parse()?) };
    Ok(match buf[at] {
        b'+' => Some((Resp::Text(line.to_vec()), next)),
        b'-' => bail!("redis: {}", String::from_utf8_lossy(line)),
        b':' => Some((Resp::Int, next)),
        b'_' => Some((Resp::Nil, next)),
        b'$' => match number()? {
            -1 => Some((Resp::Nil, next)),
            len => {
                let end = next + len as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                Some((Resp::Text(buf[next..end].to_vec()), end + 2))
            }
        },
        b'*' => match number()? {
            -1 => Some((Resp::Nil, next)),
            len => {
                let mut items = Vec::with_capacity(len as usize);
                let mut at = next;
                for _ in 0..len {
                    let Some((item, after)) = resp(buf, at)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    at = after;
                }
                Some((Resp::Array(items), at))
            }
        },
        other => bail!("redis sent an unknown type byte {other:#x}"),
    })
}

fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads until `n` replies came; returns them.
fn replies(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<Resp>> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    while out.len() < n {
        match resp(buf, at)? {
            Some((value, next)) => {
                out.push(value);
                at = next;
            }
            None => {
                if Instant::now() > deadline {
                    bail!("timed out");
                }
                read_some(s, buf)?;
            }
        }
    }
    buf.drain(..at);
    Ok(out)
}

fn redis_publish(
    addr: SocketAddr,
    queue: &str,
    count: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut s = connect(addr)?;
    let mut buf = Vec::new();
    let payload = vec![b'x'; PAYLOAD];
    let chunk = 1000u64;
    let mut out = Vec::new();
    let (mut sent, mut confirmed) = (0u64, 0u64);
    while confirmed < count {
        while sent < count && sent - confirmed < WINDOW {
            let n = chunk.min(count - sent);
            for _ in 0..n {
                command(&mut out, &[b"XADD", queue.as_bytes(), b"*", b"d", &payload]);
            }
            s.write_all(&out)?;
            out.clear();
            sent += n;
        }
        let n = chunk.min(sent - confirmed);
        replies(&mut s, &mut buf, n as usize, deadline)?;
        confirmed += n;
    }
    Ok(())
}

fn redis_work(addr: SocketAddr, queue: &str, k: usize, until: &Until<'_>) -> anyhow::Result<()> {
    let mut s = connect(addr)?;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let name = format!("w{k}");
    let count = (IN_FLIGHT as usize / WORKERS).to_string();
    let read = |out: &mut Vec<u8>| {
        command(
            out,
            &[
                b"XREADGROUP",
                b"GROUP",
                b"workers",
                name.as_bytes(),
                b"COUNT",
                count.as_bytes(),
                b"BLOCK",
                b"100",
                b"STREAMS",
                queue.as_bytes(),
                b">",
            ],
        )
    };
    read(&mut out);
    s.write_all(&out)?;
    out.clear();
    while !until.over()? {
        let reply = replies(&mut s, &mut buf, 1, until.deadline)?
            .pop()
            .expect("one");
        let mut ids = Vec::new();
        if let Resp::Array(streams) = reply {
            for stream in streams {
                let Resp::Array(mut parts) = stream else {
                    continue;
                };
                let Some(Resp::Array(entries)) = parts.pop() else {
                    continue;
                };
                for entry in entries {
                    if let Resp::Array(mut fields) = entry {
                        if let Some(Resp::Text(id)) = fields.drain(..).next() {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        // The acks and the next read go together; the ack's reply is read first.
        let n = ids.len();
        if n > 0 {
            let mut args: Vec<&[u8]> = vec![b"XACK", queue.as_bytes(), b"workers"];
            args.extend(ids.iter().map(Vec::as_slice));
            command(&mut out, &args);
        }
        read(&mut out);
        s.write_all(&out)?;
        out.clear();
        if n > 0 {
            match replies(&mut s, &mut buf, 1, until.deadline)?.pop() {
                Some(Resp::Int) => {}
                _ => bail!("XACK was not answered with a count"),
            }
            until.add(n as u64);
        }
    }
    if k == 0 {
        command(&mut out, &[b"DEL", queue.as_bytes()]);
        s.write_all(&out)?;
        // The reply to the read still outstanding, then DEL's.
        let _ = replies(&mut s, &mut buf, 2, Instant::now() + Duration::from_secs(5));
    }
    Ok(())
}
