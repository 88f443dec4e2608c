//! nats-server with JetStream as a durable bench target: a file-backed stream created through the
//! raw protocol (`$JS.API.STREAM.CREATE`), publishes with a reply subject to which the server
//! sends a `PubAck` once it has stored each, and an ephemeral push consumer
//! (`$JS.API.CONSUMER.CREATE`) that reads the stream back from its first message.

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::nats::{self, Nats};
use super::target::{Conn, Event, Parser, Target};

const STREAM: &str = "bench";
const SUBJECT: &str = "bench";
/// The subscription ids the bench uses, so that the parser tells a connection's messages apart:
/// deliveries of the consumer, PubAcks, and replies to API requests.
const DATA_SID: &str = "1";
const ACK_SID: &str = "2";
const API_SID: &str = "3";
/// The n-th publish asks for its PubAck on `<ACK_INBOX>.<n>`.
const ACK_INBOX: &str = "_INBOX.bench-acks";
const API_INBOX: &str = "_INBOX.bench-api";
/// Consumer k delivers to `<DELIVER>.<k>`.
const DELIVER: &str = "deliver.bench";
/// Longest the stream's creation may take once the server listens.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct JetStream {
    nats: Nats,
    /// Whether the one publisher this target serves has connected.
    publishing: AtomicBool,
    /// The number of the next publish, for its reply subject.
    next_publish: AtomicU64,
    next_consumer: AtomicU64,
}

/// Starts nats-server with JetStream storing in `store_dir` (and the settings of the plain
/// nats-server target), and creates the stream with file storage.
pub fn start(exe: &Path, scratch: &Path, store_dir: &Path) -> anyhow::Result<JetStream> {
    let args: [OsString; 3] = ["-js".into(), "-sd".into(), store_dir.into()];
    let js = JetStream {
        nats: nats::start_with(exe, scratch, &args)?,
        publishing: AtomicBool::new(false),
        next_publish: AtomicU64::new(1),
        next_consumer: AtomicU64::new(1),
    };
    let config = json!({ "name": STREAM, "subjects": [SUBJECT], "storage": "file" });
    let subject = format!("$JS.API.STREAM.CREATE.{STREAM}");
    js.request(&subject, &config, Instant::now() + SETUP_TIMEOUT)
        .context("cannot create the JetStream stream")?;
    Ok(js)
}

impl JetStream {
    /// Sends a JetStream API request on a connection of its own and returns the reply, which
    /// must not report an error.
    fn request(&self, subject: &str, body: &Value, deadline: Instant) -> anyhow::Result<Value> {
        let subscribe = format!("SUB {API_INBOX} {API_SID}\r\n");
        let mut conn = nats::connect(self, self.nats.addr(), &subscribe, deadline)?;
        let body = body.to_string();
        let mut request = format!("PUB {subject} {API_INBOX} {}\r\n", body.len()).into_bytes();
        request.extend_from_slice(body.as_bytes());
        request.extend_from_slice(b"\r\n");
        conn.send(&request, deadline)?;
        let mut reply = None;
        let what = format!("reply to {subject}");
        conn.wait_for(self, &what, deadline, |event| match event {
            Event::Reply(json) => {
                reply = Some(api_reply(json));
                true
            }
            _ => false,
        })?;
        reply.with_context(|| format!("no {what}"))?
    }
}

impl Target for JetStream {
    fn name(&self) -> &'static str {
        "nats-server JetStream"
    }

    fn pid(&self) -> u32 {
        self.nats.pid()
    }

    /// One publisher only: every connection subscribed to the PubAck inbox would receive
    /// every PubAck.
    fn publisher(&self, deadline: Instant) -> anyhow::Result<Conn> {
        if self.publishing.swap(true, Ordering::Relaxed) {
            bail!("the JetStream target serves one publisher only");
        }
        let subscribe = format!("SUB {ACK_INBOX}.* {ACK_SID}\r\n");
        nats::connect(self, self.nats.addr(), &subscribe, deadline)
    }

    /// Subscribes to a deliver subject of its own, then creates an ephemeral push consumer for
    /// it that delivers the whole stream from its first message, without acks.
    fn subscriber(&self, deadline: Instant) -> anyhow::Result<Conn> {
        let k = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        let deliver = format!("{DELIVER}.{k}");
        let subscribe = format!("SUB {deliver} {DATA_SID}\r\n");
        let conn = nats::connect(self, self.nats.addr(), &subscribe, deadline)?;
        let config = json!({
            "stream_name": STREAM,
            "config": {
                "deliver_subject": deliver,
                "deliver_policy": "all",
                "ack_policy": "none",
            },
        });
        let subject = format!("$JS.API.CONSUMER.CREATE.{STREAM}");
        self.request(&subject, &config, deadline)
            .context("cannot create the JetStream consumer")?;
        Ok(conn)
    }

    fn idle(&self, deadline: Instant) -> anyhow::Result<Conn> {
        nats::connect(self, self.nats.addr(), "", deadline)
    }

    fn encode_publish(&self, payload: &[u8], out: &mut Vec<u8>) {
        let n = self.next_publish.fetch_add(1, Ordering::Relaxed);
        let len = payload.len();
        write!(out, "PUB {SUBJECT} {ACK_INBOX}.{n} {len}\r\n").expect("writing to a Vec");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    fn parser(&self) -> Parser {
        parse
    }

    fn pong(&self) -> &'static [u8] {
        b"PONG\r\n"
    }

    fn stop(self: Box<Self>) -> anyhow::Result<()> {
        self.nats.shut_down()
    }
}

/// What nats-server sends, with each `MSG` told apart by its subscription: a delivery, a
/// PubAck (checked here) or an API reply.
fn parse(buf: &[u8]) -> anyhow::Result<Option<(Event<'_>, usize)>> {
    nats::parse_with(buf, |msg| {
        let is = |sid: &str| msg.sid == sid.as_bytes();
        if is(DATA_SID) {
            Ok(Event::Message(msg.payload))
        } else if is(ACK_SID) {
            Ok(Event::Stored(pub_ack(msg.payload)?))
        } else if is(API_SID) {
            Ok(Event::Reply(msg.payload))
        } else {
            bail!(
                "nats-server sent a MSG for subscription {}, which the bench never made",
                String::from_utf8_lossy(msg.sid)
            )
        }
    })
}

/// The stream sequence number of a PubAck, `{"stream":"bench", "seq":1}`; a PubAck that
/// reports an error, or one for another stream, fails.
fn pub_ack(json: &[u8]) -> anyhow::Result<u64> {
    let ack = reply(json, "a publish")?;
    if ack.get("stream").and_then(Value::as_str) != Some(STREAM) {
        bail!(
            "nats-server sent a PubAck for another stream: {}",
            String::from_utf8_lossy(json)
        );
    }
    ack.get("seq").and_then(Value::as_u64).with_context(|| {
        format!(
            "nats-server sent a PubAck without a sequence number: {}",
            String::from_utf8_lossy(json)
        )
    })
}

/// The reply to a JetStream API request, which must not report an error.
fn api_reply(json: &[u8]) -> anyhow::Result<Value> {
    reply(json, "the request")
}

/// A JSON reply to `what`, or its `error` field as an error: `{"code":400,"err_code":10058,
/// "description":"stream name already in use"}` becomes `nats-server refused <what>: stream
/// name already in use (code 400, err_code 10058)`.
fn reply(json: &[u8], what: &str) -> anyhow::Result<Value> {
    let value: Value = serde_json::from_slice(json).with_context(|| {
        format!(
            "nats-server sent a reply to {what} that is not JSON: {}",
            String::from_utf8_lossy(json)
        )
    })?;
    let Some(error) = value.get("error") else {
        return Ok(value);
    };
    let field = |name: &str| match error.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "none".to_owned(),
    };
    bail!(
        "nats-server refused {what}: {} (code {}, err_code {})",
        field("description"),
        field("code"),
        field("err_code")
    )
}
