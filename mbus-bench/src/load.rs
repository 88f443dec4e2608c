//! The load generator, one design for every target: a publisher that writes large batches while
//! a thread of its own drains the server's replies (optionally keeping at most a window of
//! publishes unconfirmed), and a subscriber loop that parses deliveries in place from large
//! reads.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};

use super::target::{Aborted, Conn, Event, Parser, Target, write_all};

/// Publishes are gathered until the batch holds this much, then written at once.
const BATCH: usize = 64 << 10;

/// A publishing connection. Its server's replies (confirms, pings, errors) are read by a thread
/// while it writes, so that neither side ever waits on a full socket buffer.
pub struct Publisher {
    name: &'static str,
    writer: Arc<Mutex<TcpStream>>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    batch: Vec<u8>,
    sent: u64,
    /// Most publishes sent and not yet confirmed, if bounded.
    window: Option<u64>,
    /// Confirmed publishes as last seen, so that the window is checked without the lock.
    acked: u64,
    deadline: Instant,
}

#[derive(Default)]
struct Shared {
    replies: Mutex<Replies>,
    changed: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Replies {
    /// Publishes the server has confirmed or answered.
    acked: u64,
    /// When the read that brought the latest confirm or answer returned.
    acked_at: Option<Instant>,
    /// Whether the answer to the flush request has come.
    flushed: bool,
    error: Option<String>,
}

impl Publisher {
    /// Takes over a connection from [`Target::publisher`]. `subscribers` is how many
    /// subscribers each publish must reach, for servers that say (Redis).
    pub fn new(
        target: &dyn Target,
        conn: Conn,
        subscribers: u64,
        deadline: Instant,
    ) -> anyhow::Result<Publisher> {
        let writer = conn
            .stream
            .try_clone()
            .context("cannot share the publisher socket")?;
        let writer = Arc::new(Mutex::new(writer));
        let shared = Arc::new(Shared::default());
        let replies = ReplyReader {
            conn,
            parse: target.parser(),
            pong: target.pong(),
            subscribers,
            writer: Arc::clone(&writer),
            shared: Arc::clone(&shared),
            deadline,
        };
        let reader = thread::Builder::new()
            .name("publisher replies".into())
            .spawn(move || replies.run())
            .context("cannot start a thread")?;
        Ok(Publisher {
            name: target.name(),
            writer,
            shared,
            reader: Some(reader),
            batch: Vec::with_capacity(BATCH * 2),
            sent: 0,
            window: None,
            acked: 0,
            deadline,
        })
    }

    /// Keeps at most `window` publishes unconfirmed: a publish that would exceed it first writes
    /// the batch and waits for confirms.
    pub fn with_window(mut self, window: u64) -> Publisher {
        self.window = Some(window.max(1));
        self
    }

    /// Adds a publish to the batch, and writes the batch once it is large enough.
    pub fn publish(&mut self, target: &dyn Target, payload: &[u8]) -> anyhow::Result<()> {
        if let Some(window) = self.window.filter(|&w| self.sent - self.acked >= w) {
            self.write_batch()?;
            let due = self.sent + 1 - window;
            let acked = self.wait(|r| r.acked >= due)?.acked;
            self.acked = acked;
        }
        target.encode_publish(payload, &mut self.batch);
        self.sent += 1;
        if self.batch.len() >= BATCH {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Writes one publish on its own, at once.
    pub fn publish_now(&mut self, target: &dyn Target, payload: &[u8]) -> anyhow::Result<()> {
        target.encode_publish(payload, &mut self.batch);
        self.sent += 1;
        self.write_batch()
    }

    /// Writes what is left, then waits until the server has confirmed every publish (or has
    /// answered the flush request, for a protocol without confirms). Returns when the read that
    /// brought the last confirm or answer returned.
    pub fn finish(mut self, target: &dyn Target) -> anyhow::Result<Instant> {
        target.encode_flush(&mut self.batch);
        self.write_batch()?;
        let sent = self.sent;
        let replies = self.wait(|r| r.acked >= sent || r.flushed)?;
        Ok(replies.acked_at.unwrap_or_else(Instant::now))
    }

    /// Waits until the replies satisfy `done`, failing on the reader's error or at the deadline.
    fn wait(&self, done: impl Fn(&Replies) -> bool) -> anyhow::Result<MutexGuard<'_, Replies>> {
        let mut replies = self.replies();
        loop {
            if let Some(error) = &replies.error {
                bail!("{error}");
            }
            if done(&replies) {
                return Ok(replies);
            }
            let now = Instant::now();
            if now >= self.deadline {
                bail!(
                    "{} confirmed {} of {} publishes in time",
                    self.name,
                    replies.acked,
                    self.sent
                );
            }
            replies = self
                .shared
                .changed
                .wait_timeout(replies, self.deadline - now)
                .expect("the reply reader does not panic")
                .0;
        }
    }

    fn write_batch(&mut self) -> anyhow::Result<()> {
        if let Some(error) = &self.replies().error {
            bail!("{error}");
        }
        let mut writer = self.writer.lock().expect("the reply reader does not panic");
        write_all(&mut writer, &self.batch, self.deadline)
            .with_context(|| format!("cannot publish to {}", self.name))?;
        self.batch.clear();
        Ok(())
    }

    fn replies(&self) -> MutexGuard<'_, Replies> {
        self.shared
            .replies
            .lock()
            .expect("the reply reader does not panic")
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // The reader notices the stop flag within a poll interval anyway; closing the socket
        // wakes it at once.
        if let Ok(writer) = self.writer.lock() {
            let _ = writer.shutdown(Shutdown::Both);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The publisher's reading half, run by its own thread.
struct ReplyReader {
    conn: Conn,
    parse: Parser,
    pong: &'static [u8],
    subscribers: u64,
    writer: Arc<Mutex<TcpStream>>,
    shared: Arc<Shared>,
    deadline: Instant,
}

impl ReplyReader {
    fn run(mut self) {
        if let Err(e) = self.read() {
            let mut replies = self.shared.replies.lock().expect("no thread panics");
            replies.error = Some(format!("{e:#}"));
            self.shared.changed.notify_all();
        }
    }

    fn read(&mut self) -> anyhow::Result<()> {
        loop {
            let stopping = || self.shared.stop.load(Ordering::Relaxed);
            match self.conn.fill() {
                _ if stopping() => return Ok(()),
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Err(e.context("on the publisher connection")),
            }
            let read_at = Instant::now();
            // Counted per read, not per reply, to take the lock once per read.
            let (mut confirmed, mut answered, mut flushed, mut ping) = (None, 0, false, false);
            while let Some((event, used)) = (self.parse)(self.conn.input.data())? {
                match event {
                    Event::Confirmed(count) => confirmed = Some(count),
                    Event::Published(reached) if reached != self.subscribers => bail!(
                        "a publish reached {reached} subscribers instead of {}",
                        self.subscribers
                    ),
                    Event::Published(_) | Event::Stored(_) => answered += 1,
                    Event::Pong => flushed = true,
                    Event::Ping => ping = true,
                    Event::Message(_) => bail!("a message arrived on the publisher connection"),
                    Event::Welcome | Event::Subscribed | Event::Reply(_) | Event::Other => {}
                }
                self.conn.input.consume(used);
            }
            if ping {
                let mut writer = self.writer.lock().map_err(|_| anyhow!("poisoned lock"))?;
                write_all(&mut writer, self.pong, self.deadline)?;
            }
            let mut replies = self.shared.replies.lock().expect("no thread panics");
            if confirmed.is_some() || answered > 0 || flushed {
                replies.acked_at = Some(read_at);
            }
            if let Some(count) = confirmed {
                replies.acked = count;
            }
            replies.acked += answered;
            replies.flushed |= flushed;
            self.shared.changed.notify_all();
        }
    }
}

/// Reads deliveries until `sink` says it has everything, answering pings. `sink` gets each
/// payload and the time the read that brought it returned, and fails the run by returning an
/// error. The rest of that last read is checked too, so that a duplicate right behind the last
/// expected message still shows.
pub fn receive(
    target: &dyn Target,
    conn: &mut Conn,
    deadline: Instant,
    abort: &AtomicBool,
    mut sink: impl FnMut(&[u8], Instant) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let parse = target.parser();
    let mut now = Instant::now();
    let mut done = false;
    loop {
        let mut ping = false;
        while let Some((event, used)) = parse(conn.input.data())? {
            match event {
                Event::Message(payload) => done |= sink(payload, now)?,
                Event::Ping => ping = true,
                _ => {}
            }
            conn.input.consume(used);
        }
        if done {
            return Ok(());
        }
        if ping {
            conn.send(target.pong(), deadline)?;
        }
        // The deadline first: when every client runs out of time together, the subscriber's
        // account of what it missed is worth more than "another client failed".
        if Instant::now() >= deadline {
            bail!("time limit reached");
        }
        if abort.load(Ordering::Relaxed) {
            return Err(Aborted.into());
        }
        if conn.fill()? {
            now = Instant::now();
        }
    }
}
