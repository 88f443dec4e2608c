//! mbus as a bench target: `mbus-broker` started with retention that holds every workload (and,
//! in durable mode, a data directory), and its frames encoded and decoded by `mbus-proto`, the
//! crate third-party clients use.

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use mbus_proto::{Frame, PROTOCOL_VERSION, Role, Start};

use super::target::{Conn, Event, Parser, Target};
use xtask::broker::Broker;
use xtask::workspace::Binaries;

pub const TOPIC: &str = "bench";
/// Deliveries may be up to 9 bytes larger than the broker's own 1 MiB frame limit.
const MAX_FRAME: u32 = 2 << 20;

pub struct Mbus {
    broker: Broker,
    /// Where subscribers start: from now on, or from the oldest message held (durable mode).
    start: Start,
    /// The broker's monitoring port, if it has one.
    http: Option<SocketAddr>,
    /// What scrapes the broker's metrics during the run, when asked to.
    _scraper: Option<Scraper>,
}

/// The body of `GET /metrics` from the broker's monitoring port at `addr`.
fn fetch_metrics(addr: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

/// A free port on loopback for the broker's monitoring port.
fn free_http_addr() -> anyhow::Result<SocketAddr> {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// A thread that fetches `/metrics` once a second until dropped.
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    fn start(addr: SocketAddr) -> Scraper {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let _ = fetch_metrics(addr);
                for _ in 0..10 {
                    if flag.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        });
        Scraper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `mbus-broker` flags the bench adds to the defaults: none, as users run it, but a
/// retention other than the default's 256 MiB when asked (`--mbus-retention`). A subscriber
/// that fell behind retention would see a gap and fail the run.
pub fn flags(retention: Option<&str>) -> Vec<String> {
    retention
        .map(|r| vec!["--retention-bytes".to_owned(), r.to_owned()])
        .unwrap_or_default()
}

/// `mbus-broker` for the memory workloads; with `scrape`, its monitoring port on and scraped
/// once a second.
pub fn start(
    bins: &Binaries,
    scratch: &Path,
    retention: Option<&str>,
    scrape: bool,
) -> anyhow::Result<Mbus> {
    let mut flags = flags(retention);
    let http = if scrape {
        let addr = free_http_addr()?;
        flags.extend(["--http".into(), addr.to_string()]);
        Some(addr)
    } else {
        None
    };
    let broker = Broker::start_with(bins, &scratch.join("bench-mbus.log"), &flags)?;
    Ok(Mbus {
        broker,
        start: Start::Latest,
        http,
        _scraper: http.map(Scraper::start),
    })
}

impl Mbus {
    /// The broker's producer and consumer addresses.
    pub fn addrs(&self) -> (SocketAddr, SocketAddr) {
        let (p, c) = self.broker.ports();
        (
            SocketAddr::from((Ipv4Addr::LOCALHOST, p)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, c)),
        )
    }
}

/// `mbus-broker` keeping its topics in `data_dir` with `--fsync <fsync>`; its subscribers read
/// the topic from the oldest message on.
pub fn start_durable(
    bins: &Binaries,
    scratch: &Path,
    retention: Option<&str>,
    data_dir: &Path,
    fsync: &str,
) -> anyhow::Result<Mbus> {
    let mut flags = flags(retention);
    flags.extend(["--data-dir".into(), data_dir.display().to_string()]);
    flags.extend(["--fsync".into(), fsync.into()]);
    let http = free_http_addr()?;
    flags.extend(["--http".into(), http.to_string()]);
    let broker = Broker::start_with(bins, &scratch.join("bench-mbus.log"), &flags)?;
    Ok(Mbus {
        broker,
        start: Start::Earliest,
        http: Some(http),
        _scraper: None,
    })
}

impl Mbus {
    fn connect(&self, role: Role, deadline: Instant) -> anyhow::Result<Conn> {
        let (producer_port, consumer_port) = self.broker.ports();
        let port = match role {
            Role::Producer => producer_port,
            Role::Consumer => consumer_port,
        };
        open(
            self,
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            role,
            deadline,
        )
    }
}

/// A connection to `addr` that said `Hello` as `role` and got the `Welcome` of `target`, a
/// server speaking mbus's protocol (the broker, or the relay).
pub fn open(
    target: &dyn Target,
    addr: SocketAddr,
    role: Role,
    deadline: Instant,
) -> anyhow::Result<Conn> {
    let mut conn = Conn::connect(addr)?;
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
        role,
        token: None,
    };
    conn.send(&hello.to_bytes(), deadline)?;
    conn.wait_for(target, "Welcome", deadline, |e| *e == Event::Welcome)?;
    Ok(conn)
}

/// `conn`, subscribed to the bench's topic from `start`, once `target` says so.
pub fn subscribe(
    target: &dyn Target,
    mut conn: Conn,
    start: Start,
    deadline: Instant,
) -> anyhow::Result<Conn> {
    let subscribe = Frame::Subscribe {
        topic: TOPIC,
        start,
    };
    conn.send(&subscribe.to_bytes(), deadline)?;
    conn.wait_for(target, "Subscribed", deadline, |e| *e == Event::Subscribed)?;
    Ok(conn)
}

/// A publish of `payload` to the bench's topic.
pub fn encode_publish(payload: &[u8], out: &mut Vec<u8>) {
    Frame::publish(TOPIC, payload).encode(out);
}

/// The whole Pong frame: length 2, then the array [12].
pub const PONG: &[u8] = &[0, 0, 0, 2, 0x91, 0x0c];

impl Target for Mbus {
    fn name(&self) -> &'static str {
        "mbus"
    }

    fn pid(&self) -> u32 {
        self.broker.pid()
    }

    fn publisher(&self, deadline: Instant) -> anyhow::Result<Conn> {
        self.connect(Role::Producer, deadline)
    }

    fn subscriber(&self, deadline: Instant) -> anyhow::Result<Conn> {
        let conn = self.connect(Role::Consumer, deadline)?;
        subscribe(self, conn, self.start, deadline)
    }

    fn idle(&self, deadline: Instant) -> anyhow::Result<Conn> {
        self.connect(Role::Consumer, deadline)
    }

    fn encode_publish(&self, payload: &[u8], out: &mut Vec<u8>) {
        encode_publish(payload, out);
    }

    fn parser(&self) -> Parser {
        parse
    }

    fn pong(&self) -> &'static [u8] {
        PONG
    }

    fn commits(&self) -> Option<anyhow::Result<u64>> {
        let addr = self.http?;
        Some(
            fetch_metrics(addr)
                .with_context(|| format!("cannot fetch the broker's metrics from {addr}"))
                .and_then(|text| {
                    sample(&text, "mbus_commit_duration_seconds_count")
                        .map(|v| v as u64)
                        .context("no mbus_commit_duration_seconds_count in the broker's metrics")
                }),
        )
    }

    fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.broker.stop()
    }
}

pub fn parse(buf: &[u8]) -> anyhow::Result<Option<(Event<'_>, usize)>> {
    let Some((frame, used)) =
        mbus_proto::decode(buf, MAX_FRAME).context("mbus-broker sent a bad frame")?
    else {
        return Ok(None);
    };
    let event = match frame {
        Frame::Deliver { batch, .. } => match batch.split_first() {
            (message, None) => Event::Message(message.data),
            (_, Some(_)) => bail!("mbus-broker delivered a batch of {} messages", batch.len()),
        },
        Frame::Confirm { count } => Event::Confirmed(count),
        Frame::Welcome { .. } => Event::Welcome,
        Frame::Subscribed { .. } => Event::Subscribed,
        Frame::Ping => Event::Ping,
        Frame::Pong => Event::Pong,
        Frame::Gap { from, to, .. } => {
            bail!("mbus-broker reported offsets {from} to {to} (exclusive) lost to retention")
        }
        Frame::Error { code, reason } => bail!("mbus-broker sent Error {code:?}: {reason}"),
        other => bail!("mbus-broker sent an unexpected {} frame", other.name()),
    };
    Ok(Some((event, used)))
}
