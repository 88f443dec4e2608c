//! nats-server as a bench target: its text protocol spoken over a plain socket (`INFO`,
//! `CONNECT`, `SUB`, `PUB`, `MSG`, `PING`/`PONG`, `-ERR`), and the server started with the
//! limits raised that would otherwise cut a subscriber off during a burst.

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};

use super::peer::{Peer, STOP_TIMEOUT};
use super::target::{Conn, Event, Parser, Target};
use xtask::workspace::show;

const SUBJECT: &str = "bench";
/// The server's settings that differ from its defaults, each with its reason.
pub const CONFIG: &str = "\
# Written by `cargo xtask bench`; see BENCHMARKS.md.
# The default, stated so that it matches mbus's 1 MiB frame limit; w5 sends 64 KiB payloads.
max_payload: 1048576
# Default 64 MB: the most bytes a connection may have queued before the server drops it as a
# slow consumer. 2 GiB holds the largest workload (w5, 1.3 GB) in full, as mbus's retention
# and Redis's unlimited pubsub buffer do.
max_pending: 2147483648
";
/// The larger of any message this bench sends and a line of server chatter (`INFO`).
const MAX_FRAME: usize = 2 << 20;
const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";

pub struct Nats {
    peer: Peer,
}

/// Starts nats-server on a free loopback port with [`CONFIG`], its files in `scratch`.
pub fn start(exe: &Path, scratch: &Path) -> anyhow::Result<Nats> {
    start_with(exe, scratch, &[])
}

/// [`start`] with further `nats-server` arguments, such as JetStream's.
pub fn start_with(exe: &Path, scratch: &Path, extra: &[OsString]) -> anyhow::Result<Nats> {
    let config = scratch.join("bench-nats.conf");
    std::fs::write(&config, CONFIG).with_context(|| format!("cannot write {}", show(&config)))?;
    let peer = Peer::start("nats-server", exe, scratch, |port| {
        let port = port.to_string();
        let args = ["-a", "127.0.0.1", "-p", &port, "-c"];
        let mut args: Vec<OsString> = args.map(OsString::from).into();
        args.push(config.into_os_string());
        args.extend_from_slice(extra);
        args
    })?;
    Ok(Nats { peer })
}

/// Connects to `addr`, sends `CONNECT` and `extra`, and waits for the `PONG` that answers the
/// `PING` sent after them: the server has then handled both. `target` parses what comes.
pub fn connect(
    target: &dyn Target,
    addr: SocketAddr,
    extra: &str,
    deadline: Instant,
) -> anyhow::Result<Conn> {
    let mut conn = Conn::connect(addr)?;
    conn.wait_for(target, "INFO", deadline, |e| *e == Event::Welcome)?;
    let mut hello = CONNECT.to_vec();
    hello.extend_from_slice(extra.as_bytes());
    hello.extend_from_slice(b"PING\r\n");
    conn.send(&hello, deadline)?;
    conn.wait_for(target, "PONG", deadline, |e| *e == Event::Pong)?;
    Ok(conn)
}

impl Nats {
    fn connect(&self, extra: &str, deadline: Instant) -> anyhow::Result<Conn> {
        connect(self, self.peer.addr, extra, deadline)
    }

    pub fn addr(&self) -> SocketAddr {
        self.peer.addr
    }
}

impl Target for Nats {
    fn name(&self) -> &'static str {
        "nats-server"
    }

    fn pid(&self) -> u32 {
        self.peer.proc.id()
    }

    fn publisher(&self, deadline: Instant) -> anyhow::Result<Conn> {
        self.connect("", deadline)
    }

    fn subscriber(&self, deadline: Instant) -> anyhow::Result<Conn> {
        self.connect(&format!("SUB {SUBJECT} 1\r\n"), deadline)
    }

    fn idle(&self, deadline: Instant) -> anyhow::Result<Conn> {
        self.connect("", deadline)
    }

    fn encode_publish(&self, payload: &[u8], out: &mut Vec<u8>) {
        write!(out, "PUB {SUBJECT} {}\r\n", payload.len()).expect("writing to a Vec");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    fn encode_flush(&self, out: &mut Vec<u8>) {
        // The server handles a connection's input in order, so its PONG comes after every
        // PUB before the PING has been handled.
        out.extend_from_slice(b"PING\r\n");
    }

    fn parser(&self) -> Parser {
        parse
    }

    fn pong(&self) -> &'static [u8] {
        b"PONG\r\n"
    }

    fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.shut_down()
    }
}

impl Nats {
    /// Stops the server and requires a clean exit.
    pub fn shut_down(mut self) -> anyhow::Result<()> {
        // nats-server exits 1 on SIGTERM and 0 on SIGINT, both after a clean shutdown.
        self.peer.proc.interrupt(STOP_TIMEOUT)
    }
}

/// A `MSG` the server sent: the subscription it is for, and its payload.
pub struct Msg<'a> {
    pub sid: &'a [u8],
    pub payload: &'a [u8],
}

/// One server message: a control line, or `MSG subject sid [reply-to] bytes` with its payload.
fn parse(buf: &[u8]) -> anyhow::Result<Option<(Event<'_>, usize)>> {
    parse_with(buf, |msg| Ok(Event::Message(msg.payload)))
}

/// [`parse`], with `on_msg` telling what each `MSG` is, for clients with several
/// subscriptions on one connection.
pub fn parse_with<'a>(
    buf: &'a [u8],
    on_msg: impl FnOnce(Msg<'a>) -> anyhow::Result<Event<'a>>,
) -> anyhow::Result<Option<(Event<'a>, usize)>> {
    let Some(newline) = buf.iter().take(MAX_FRAME).position(|&b| b == b'\n') else {
        if buf.len() >= MAX_FRAME {
            bail!("nats-server sent a line longer than {MAX_FRAME} bytes");
        }
        return Ok(None);
    };
    let line = &buf[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (op, args) = match line.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => (line, &line[line.len()..]),
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let is = |name: &str| op.eq_ignore_ascii_case(name.as_bytes());
    let event = if is("MSG") {
        let Some((msg, used)) = parse_msg(buf, newline + 1, args, text)? else {
            return Ok(None);
        };
        return Ok(Some((on_msg(msg)?, used)));
    } else if is("PING") {
        Event::Ping
    } else if is("PONG") {
        Event::Pong
    } else if is("INFO") {
        Event::Welcome
    } else if is("+OK") {
        Event::Other
    } else if is("-ERR") {
        bail!("nats-server sent {}", text());
    } else {
        bail!("nats-server sent an unexpected line: {}", text());
    };
    Ok(Some((event, newline + 1)))
}

/// The `MSG` whose line ends at `body`: its sid is the second argument, its byte count the
/// last.
fn parse_msg<'a>(
    buf: &'a [u8],
    body: usize,
    args: &'a [u8],
    text: impl Fn() -> String,
) -> anyhow::Result<Option<(Msg<'a>, usize)>> {
    // Counted rather than collected: this runs once per delivered message.
    let (mut fields, mut sid, mut last): (usize, &[u8], &[u8]) = (0, &[], &[]);
    for field in args.split(|&b| b == b' ' || b == b'\t') {
        if !field.is_empty() {
            fields += 1;
            if fields == 2 {
                sid = field;
            }
            last = field;
        }
    }
    if !(3..=4).contains(&fields) {
        bail!("nats-server sent a malformed MSG line: {}", text());
    }
    let len = std::str::from_utf8(last)
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n <= MAX_FRAME)
        .with_context(|| format!("nats-server sent a MSG with a bad size: {}", text()))?;
    let end = body + len;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        bail!(
            "nats-server sent a MSG payload not followed by CRLF: {}",
            text()
        );
    }
    let payload = &buf[body..end];
    Ok(Some((Msg { sid, payload }, end + 2)))
}
