//! Import: a JetStream stream into mbus topics. A durable JetStream consumer with explicit acks
//! reads the stream's `<prefix>.>` subjects in order; a thread publishes each message to its
//! topic with the idempotent mbus producer, numbering each publish by the message's stream
//! sequence, and JetStream is acked only once mbus confirmed. After any restart the consumer is
//! set to start right after its ack floor, so messages come again in order, and the broker
//! stores each resend once: its number is the same as before.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt;
use mbus_producer::{Producer, ProducerError, ProducerOptions, Reconnect};
use tokio::sync::{mpsc, watch};

use crate::stream::StreamSpec;
use crate::{headers, subject};

/// What an import is told.
#[derive(Debug, Clone)]
pub struct Import {
    pub nats: String,
    pub stream: String,
    pub create: Option<StreamSpec>,
    pub durable: String,
    pub prefix: String,
    /// The destination broker's producer address.
    pub mbus: String,
    pub auth_token: Option<String>,
    /// The producer identity the broker knows the import by.
    pub producer_id: String,
    /// Messages JetStream may hand out before the import acks them.
    pub max_pending: usize,
}

/// One message from JetStream on its way to mbus, with what acks it.
struct Incoming {
    sequence: u64,
    /// `None` when its subject is no topic: it is terminated rather than imported.
    topic: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    data: bytes::Bytes,
    message: jetstream::Message,
}

/// Figures the import reports as it goes.
#[derive(Debug, Default)]
struct Progress {
    imported: AtomicU64,
}

/// Imports until `stop` turns true, then drains what is in flight.
pub async fn run(import: Import, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let progress = Arc::new(Progress::default());
    crate::retry::supervise("import", &stop, || session(&import, &stop, &progress)).await
}

async fn session(
    import: &Import,
    stop: &watch::Receiver<bool>,
    progress: &Arc<Progress>,
) -> anyhow::Result<()> {
    let js = crate::nats::jetstream(&import.nats).await?;
    let stream = crate::stream::ensure(&js, &import.stream, import.create.as_ref()).await?;
    let mut source = start_at_floor(&stream, import).await?;
    let mut messages = source
        .messages()
        .await
        .context("cannot pull from the JetStream consumer")?;
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(import.max_pending.max(1));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(jetstream::Message, bool)>();
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let import = import.clone();
        let writing = writing.clone();
        tokio::task::spawn_blocking(move || write_mbus(&import, in_rx, done_tx, &writing))
    };
    let acker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            while let Some((message, imported)) = done_rx.recv().await {
                let acked = if imported {
                    message.ack().await
                } else {
                    message.ack_with(AckKind::Term).await
                };
                acked.map_err(|e| anyhow::anyhow!("cannot ack in JetStream: {e}"))?;
                if imported {
                    progress.imported.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        })
    };
    let mut report = tokio::time::interval(Duration::from_secs(5));
    let mut stop = stop.clone();
    let pulled: anyhow::Result<()> = loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = report.tick() => {
                if let Ok(info) = source.info().await {
                    log::info!(
                        "import: {} imported, {} pending in JetStream",
                        progress.imported.load(Ordering::Relaxed),
                        info.num_pending
                    );
                }
                continue;
            }
            _ = stop.wait_for(|s| *s) => break Ok(()),
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => break Err(anyhow::anyhow!("pulling from JetStream failed: {e}")),
            None => break Err(anyhow::anyhow!("the JetStream consumer ended")),
        };
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(e) => break Err(anyhow::anyhow!("a JetStream message without its info: {e}")),
        };
        let topic = subject::topic_of(&import.prefix, message.subject.as_str()).map(str::to_owned);
        if topic.is_none() {
            log::error!(
                "import: stream sequence {sequence}, subject {} names no mbus topic; terminated",
                message.subject
            );
        }
        let incoming = Incoming {
            sequence,
            topic,
            headers: headers::from_nats(message.headers.as_ref()),
            data: message.payload.clone(),
            message,
        };
        if in_tx.send(incoming).await.is_err() {
            break Err(anyhow::anyhow!("the mbus writer stopped"));
        }
    };
    drop(in_tx);
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.context("the mbus writer panicked")?;
    let acked = acker.await.context("the acknowledging task failed")?;
    pulled?;
    written?;
    acked?;
    log::info!("import: drained");
    Ok(())
}

/// The durable consumer, made to start right after the last message it acknowledged: whatever
/// it had handed out unacknowledged comes again first, in order, rather than after its ack wait
/// behind newer messages.
async fn start_at_floor(
    stream: &jetstream::stream::Stream,
    import: &Import,
) -> anyhow::Result<consumer::PullConsumer> {
    let durable = import.durable.as_str();
    let start = match stream.get_consumer::<consumer::pull::Config>(durable).await {
        Ok(mut existing) => {
            let floor = existing
                .info()
                .await
                .context("cannot read the JetStream consumer")?
                .ack_floor
                .stream_sequence;
            stream
                .delete_consumer(durable)
                .await
                .context("cannot reset the JetStream consumer")?;
            Some(floor + 1)
        }
        Err(_) => None,
    };
    let config = consumer::pull::Config {
        durable_name: Some(durable.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        filter_subject: subject::all(&import.prefix),
        deliver_policy: match start {
            Some(start_sequence) => consumer::DeliverPolicy::ByStartSequence { start_sequence },
            None => consumer::DeliverPolicy::All,
        },
        // Never handed out again within a session: a session restarts at its floor instead.
        ack_wait: Duration::from_secs(3600),
        max_ack_pending: i64::try_from(import.max_pending).unwrap_or(i64::MAX),
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(config)
        .await
        .context("cannot create the JetStream consumer")?;
    log::info!(
        "import: JetStream consumer {durable} of {} starts at stream sequence {}",
        import.stream,
        start.unwrap_or(1)
    );
    Ok(consumer)
}

/// The blocking side: publishes each message as one `Publish` numbered by its stream sequence,
/// and hands back what mbus confirmed to be acked in JetStream, in order.
fn write_mbus(
    import: &Import,
    mut incoming: mpsc::Receiver<Incoming>,
    done: mpsc::UnboundedSender<(jetstream::Message, bool)>,
    writing: &AtomicBool,
) -> anyhow::Result<()> {
    let mut session: Option<Session> = None;
    let hand_back = |message: jetstream::Message, imported: bool| {
        done.send((message, imported))
            .map_err(|_| anyhow::anyhow!("the acknowledging task stopped"))
    };
    loop {
        let next = match incoming.try_recv() {
            Ok(next) => next,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing more has come: what was published is confirmed before waiting.
                if let Some(s) = session.as_mut() {
                    s.settle(&hand_back)?;
                }
                match incoming.blocking_recv() {
                    Some(next) => next,
                    None => return Ok(()),
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => {
                if let Some(s) = session.as_mut() {
                    s.settle(&hand_back)?;
                }
                return Ok(());
            }
        };
        let Some(topic) = next.topic.as_deref() else {
            if let Some(s) = session.as_mut() {
                s.settle(&hand_back)?;
            }
            hand_back(next.message, false)?;
            continue;
        };
        // A stream sequence that does not follow the last one (a gap, or a message handed out
        // again) starts the numbering again there, on a new connection.
        if session
            .as_ref()
            .is_some_and(|s| s.producer.next_number() != next.sequence)
        {
            session.take().expect("checked").settle(&hand_back)?;
        }
        if session.is_none() {
            session = Some(Session {
                producer: connect(import, next.sequence)?,
                unconfirmed: VecDeque::new(),
                handed_back: 0,
            });
        }
        let s = session.as_mut().expect("connected above");
        let with_origin: Vec<(&str, &[u8])> = next
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();
        match s.producer.publish_with(topic, &next.data, &with_origin) {
            Ok(_) => {}
            Err(e @ (ProducerError::TooLarge { .. } | ProducerError::Headers(_))) => {
                log::error!(
                    "import: stream sequence {} cannot be published to {topic}: {e}; terminated",
                    next.sequence
                );
                // Its number goes unused: the next message starts a connection of its own.
                session.take().expect("connected").settle(&hand_back)?;
                hand_back(next.message, false)?;
                continue;
            }
            Err(e) => return Err(e).context("cannot publish to the mbus broker"),
        }
        s.producer.end_batch();
        s.unconfirmed.push_back(next.message);
        if s.unconfirmed.len() >= MAX_UNCONFIRMED || !writing.load(Ordering::Relaxed) {
            s.settle(&hand_back)?;
        } else {
            s.hand_back_confirmed(&hand_back)?;
        }
    }
}

/// Messages published to mbus and not yet confirmed, at most, before the writer waits.
const MAX_UNCONFIRMED: usize = 8192;

/// One producer connection and the JetStream messages it published, in order.
struct Session {
    producer: Producer,
    unconfirmed: VecDeque<jetstream::Message>,
    /// Messages of this connection already handed back: one per publish.
    handed_back: u64,
}

impl Session {
    /// Hands back, to be acked in JetStream, each message the broker has confirmed so far.
    fn hand_back_confirmed(
        &mut self,
        hand_back: &impl Fn(jetstream::Message, bool) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        while self.handed_back < self.producer.confirmed() {
            let message = self
                .unconfirmed
                .pop_front()
                .expect("one message per publish");
            hand_back(message, true)?;
            self.handed_back += 1;
        }
        Ok(())
    }

    /// Waits until the broker confirmed everything published, and hands it all back.
    fn settle(
        &mut self,
        hand_back: &impl Fn(jetstream::Message, bool) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.producer
            .wait_confirmed()
            .context("the mbus broker did not confirm")?;
        self.hand_back_confirmed(hand_back)
    }
}

/// A producer connection whose first publish is number `first`.
fn connect(import: &Import, first: u64) -> anyhow::Result<Producer> {
    let mut options = ProducerOptions::default();
    options.connect.auth_token = import.auth_token.clone();
    options.identity = Some(import.producer_id.clone());
    options.reconnect = Some(Reconnect::default());
    options.resume_at = Some(first);
    Producer::connect(import.mbus.as_str(), &options)
        .with_context(|| format!("cannot connect to the mbus broker at {}", import.mbus))
}
