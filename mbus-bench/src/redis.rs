//! redis-server as a bench target: RESP over a plain socket (`SUBSCRIBE`, pipelined `PUBLISH`,
//! the `message` pushes and `:n` replies), and the server started without persistence and with
//! no limit on a subscriber's output buffer.

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};

use super::peer::{Peer, STOP_TIMEOUT};
use super::target::{Conn, Event, Parser, Target};

const CHANNEL: &str = "bench";
/// Redis's settings that differ from its defaults, as `redis-server` arguments; BENCHMARKS.md
/// gives the reason for each.
pub const SETTINGS: [&str; 10] = [
    "--bind",
    "127.0.0.1",
    "--maxclients",
    "20000",
    "--save",
    "",
    "--appendonly",
    "no",
    "--client-output-buffer-limit",
    "pubsub 0 0 0",
];
/// The longest bulk string or line the bench accepts from the server.
const MAX_FRAME: usize = 2 << 20;

pub struct Redis {
    peer: Peer,
    /// `*3 $7 PUBLISH $n <channel>`, the part of every publish before the payload.
    publish_prefix: Vec<u8>,
}

/// Starts redis-server on a free loopback port, its working directory and log in `scratch`.
pub fn start(exe: &Path, scratch: &Path) -> anyhow::Result<Redis> {
    let peer = Peer::start("redis-server", exe, scratch, |port| {
        let mut args: Vec<OsString> = vec!["--port".into(), port.to_string().into()];
        args.extend(SETTINGS.map(OsString::from));
        // Nothing is saved, but a working directory of our own keeps any file out of the
        // user's.
        args.extend(["--dir".into(), scratch.as_os_str().to_owned()]);
        args
    })?;
    Ok(Redis {
        peer,
        publish_prefix: format!("*3\r\n$7\r\nPUBLISH\r\n${}\r\n{CHANNEL}\r\n", CHANNEL.len())
            .into_bytes(),
    })
}

impl Redis {
    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.peer.addr
    }
}

impl Target for Redis {
    fn name(&self) -> &'static str {
        "redis-server"
    }

    fn pid(&self) -> u32 {
        self.peer.proc.id()
    }

    fn publisher(&self, _deadline: Instant) -> anyhow::Result<Conn> {
        Conn::connect(self.peer.addr)
    }

    fn subscriber(&self, deadline: Instant) -> anyhow::Result<Conn> {
        let mut conn = Conn::connect(self.peer.addr)?;
        let subscribe = format!(
            "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{CHANNEL}\r\n",
            CHANNEL.len()
        );
        conn.send(subscribe.as_bytes(), deadline)?;
        conn.wait_for(self, "subscribe confirmation", deadline, |e| {
            *e == Event::Subscribed
        })?;
        Ok(conn)
    }

    fn idle(&self, _deadline: Instant) -> anyhow::Result<Conn> {
        Conn::connect(self.peer.addr)
    }

    fn encode_publish(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.publish_prefix);
        write!(out, "${}\r\n", payload.len()).expect("writing to a Vec");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    fn parser(&self) -> Parser {
        parse
    }

    fn pong(&self) -> &'static [u8] {
        // Redis never pings its clients; this is the command form, should it ever be needed.
        b"*1\r\n$4\r\nPING\r\n"
    }

    fn stop(mut self: Box<Self>) -> anyhow::Result<()> {
        self.peer.proc.terminate(STOP_TIMEOUT)
    }
}

/// One RESP value the server sent: an integer reply (`:n`, what `PUBLISH` returns), a simple
/// string or error, or an array push such as `["message", channel, payload]`.
fn parse(buf: &[u8]) -> anyhow::Result<Option<(Event<'_>, usize)>> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    if kind != b'*' {
        let Some((value, used)) = scalar(buf, 0)? else {
            return Ok(None);
        };
        let event = match value {
            Value::Int(n) => Event::Published(u64::try_from(n).unwrap_or(0)),
            Value::Simple(s) if s.eq_ignore_ascii_case(b"PONG") => Event::Pong,
            _ => Event::Other,
        };
        return Ok(Some((event, used)));
    }
    let Some((count, mut pos)) = line(buf, 1)? else {
        return Ok(None);
    };
    let count = int(count)?;
    if !(1..=3).contains(&count) {
        bail!("redis-server sent an unexpected array of {count} elements");
    }
    let mut items = [Value::Nil; 3];
    for item in items.iter_mut().take(count as usize) {
        let Some((value, next)) = scalar(buf, pos)? else {
            return Ok(None);
        };
        *item = value;
        pos = next;
    }
    let event = match items {
        [Value::Bulk(b"message"), _, Value::Bulk(payload)] if count == 3 => Event::Message(payload),
        [Value::Bulk(b"subscribe"), ..] => Event::Subscribed,
        _ => Event::Other,
    };
    Ok(Some((event, pos)))
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Simple(&'a [u8]),
    Int(i64),
    Bulk(&'a [u8]),
    Nil,
}

/// A value that is not an array, starting at `pos`, and where the next one starts. An error
/// reply fails the run with its text.
fn scalar(buf: &[u8], pos: usize) -> anyhow::Result<Option<(Value<'_>, usize)>> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((text, next)) = line(buf, pos + 1)? else {
        return Ok(None);
    };
    let value = match kind {
        b'+' => Value::Simple(text),
        b'-' => bail!("redis-server replied -{}", String::from_utf8_lossy(text)),
        b':' => Value::Int(int(text)?),
        b'$' => {
            let len = int(text)?;
            if len < 0 {
                return Ok(Some((Value::Nil, next)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= MAX_FRAME)
                .with_context(|| format!("redis-server sent a bulk string of {len} bytes"))?;
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                bail!("redis-server sent a bulk string not followed by CRLF");
            }
            return Ok(Some((Value::Bulk(&buf[next..end]), end + 2)));
        }
        other => bail!(
            "redis-server sent a value of unexpected type `{}`",
            char::from(other)
        ),
    };
    Ok(Some((value, next)))
}

/// The text from `pos` to the next CRLF, and where the bytes after that CRLF start.
fn line(buf: &[u8], pos: usize) -> anyhow::Result<Option<(&[u8], usize)>> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&rest[..end], pos + end + 2))),
        None if rest.len() > MAX_FRAME => bail!("redis-server sent a line too long"),
        None => Ok(None),
    }
}

fn int(text: &[u8]) -> anyhow::Result<i64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .with_context(|| {
            format!(
                "redis-server sent `{}` where a number was due",
                String::from_utf8_lossy(text)
            )
        })
}
