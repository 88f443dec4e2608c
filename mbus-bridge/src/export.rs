//! Export: mbus topics to a JetStream stream. A thread reads the topics as a member of an mbus
//! consumer group (so the position is the broker's, durable with it); each message is published
//! to `<prefix>.<topic>` with a `Nats-Msg-Id` of its source, topic and offset, and acked in mbus
//! only once JetStream's PubAck for it came. A resend after any restart is dropped by the
//! stream's duplicate window, so JetStream holds each message once, in its topic's order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use mbus_consumer::{Consumer, ConsumerError, ConsumerOptions, Event, Reconnect};
use mbus_proto::{GroupOptions, Start};
use tokio::sync::{mpsc, watch};

use crate::stream::StreamSpec;
use crate::{headers, subject};

/// What an export is told.
#[derive(Debug, Clone)]
pub struct Export {
    /// The source broker's consumer address.
    pub mbus: String,
    pub auth_token: Option<String>,
    pub topics: Vec<String>,
    /// A topic-name prefix, and the source broker's monitoring address that lists its topics.
    pub prefix_topics: Option<(String, String)>,
    pub group: String,
    /// The source broker's name in message ids.
    pub source: String,
    pub credit: u32,
    pub ack_wait: Duration,
    pub nats: String,
    pub stream: String,
    pub create: Option<StreamSpec>,
    pub prefix: String,
}

/// How often `--topic-prefix` asks the broker for its topics.
const DISCOVER: Duration = Duration::from_secs(5);

/// One message read from mbus, owned, on its way to JetStream.
struct Outgoing {
    topic: String,
    offset: u64,
    subject: String,
    id: String,
    headers: async_nats::HeaderMap,
    data: bytes::Bytes,
}

/// Figures the export reports as it goes.
#[derive(Debug, Default)]
pub struct Progress {
    pub published: AtomicU64,
    pub duplicates: AtomicU64,
    pub awaiting: AtomicU64,
}

/// Exports until `stop` turns true, then drains what is in flight. A failure of either side
/// (the broker, JetStream) ends the session; the next one starts after a backoff, and what the
/// group had given out unacked comes again.
pub async fn run(export: Export, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report(progress.clone(), stop.clone()));
    let result =
        crate::retry::supervise("export", &stop, || session(&export, &stop, &progress)).await;
    reporter.abort();
    result
}

async fn report(progress: Arc<Progress>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        log::info!(
            "export: {} published ({} already in the stream), {} awaiting their PubAck",
            progress.published.load(Ordering::Relaxed),
            progress.duplicates.load(Ordering::Relaxed),
            progress.awaiting.load(Ordering::Relaxed)
        );
    }
}

async fn session(
    export: &Export,
    stop: &watch::Receiver<bool>,
    progress: &Arc<Progress>,
) -> anyhow::Result<()> {
    // A PubAck lost with a node is waited for REPLY_TIMEOUT before the session starts again.
    let js = crate::nats::jetstream(&export.nats).await?;
    crate::stream::ensure(&js, &export.stream, export.create.as_ref()).await?;
    let credit = export.credit.max(1) as usize;
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(credit);
    let (ack_tx, ack_rx) = std_mpsc::channel::<(String, u64)>();
    let reading = Arc::new(AtomicBool::new(true));
    let reader = {
        let export = export.clone();
        let reading = reading.clone();
        tokio::task::spawn_blocking(move || read_mbus(&export, out_tx, ack_rx, &reading))
    };
    // PubAcks are awaited in the order the publishes went, so mbus acks go in order too.
    let (pending_tx, mut pending_rx) = mpsc::channel(credit);
    let acker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            while let Some((topic, offset, ack)) = pending_rx.recv().await {
                let ack: jetstream::context::PublishAckFuture = ack;
                let ack = ack
                    .await
                    .context("JetStream did not acknowledge a publish")?;
                progress.awaiting.fetch_sub(1, Ordering::Relaxed);
                progress.published.fetch_add(1, Ordering::Relaxed);
                if ack.duplicate {
                    progress.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                if ack_tx.send((topic, offset)).is_err() {
                    bail!("the mbus reader stopped");
                }
            }
            anyhow::Ok(())
        })
    };
    let mut stop = stop.clone();
    let publishing = async {
        loop {
            let out = tokio::select! {
                out = out_rx.recv() => out,
                _ = stop.wait_for(|s| *s) => {
                    // Drain: take nothing more from mbus, finish what is on its way.
                    reading.store(false, Ordering::Relaxed);
                    out_rx.recv().await
                }
            };
            let Some(out) = out else {
                return anyhow::Ok(());
            };
            let publish = PublishMessage::build()
                .payload(out.data)
                .headers(out.headers)
                .message_id(out.id);
            let ack = js
                .send_publish(out.subject, publish)
                .await
                .context("cannot publish to JetStream")?;
            progress.awaiting.fetch_add(1, Ordering::Relaxed);
            if pending_tx.send((out.topic, out.offset, ack)).await.is_err() {
                bail!("JetStream acknowledgements stopped");
            }
        }
    };
    let published = publishing.await;
    // The reader may wait to hand over a message: it must see that nobody takes it any more.
    drop(out_rx);
    drop(pending_tx);
    let acked = acker.await.context("the acknowledging task failed")?;
    progress.awaiting.store(0, Ordering::Relaxed);
    reading.store(false, Ordering::Relaxed);
    let read = reader.await.context("the mbus reader panicked")?;
    published?;
    acked?;
    read?;
    if *stop.borrow() {
        log::info!("export: drained");
        return Ok(());
    }
    bail!("the mbus reader stopped")
}

/// The blocking side: reads the topics as a group member and sends each message on, and acks
/// in mbus what JetStream acknowledged. Returns once `reading` turns false and everything sent
/// was acknowledged, or on an error of the broker's.
fn read_mbus(
    export: &Export,
    out: mpsc::Sender<Outgoing>,
    acks: std_mpsc::Receiver<(String, u64)>,
    reading: &AtomicBool,
) -> anyhow::Result<()> {
    let mut options = ConsumerOptions::default();
    options.connect.auth_token = export.auth_token.clone();
    options.reconnect = Some(Reconnect::default());
    let mut consumer = Consumer::connect(export.mbus.as_str(), &options)
        .with_context(|| format!("cannot connect to the mbus broker at {}", export.mbus))?;
    let ack_wait = u64::try_from(export.ack_wait.as_millis()).unwrap_or(u64::MAX);
    let settings = GroupOptions {
        ack_wait,
        ..GroupOptions::default()
    };
    let mut joined = Vec::new();
    for topic in &export.topics {
        consumer.join(
            topic,
            &export.group,
            Start::Earliest,
            export.credit,
            settings,
        )?;
        joined.push(topic.clone());
    }
    let mut looked: Option<std::time::Instant> = None;
    let mut in_flight = 0u64;
    loop {
        if let Some((prefix, http)) = &export.prefix_topics {
            if looked.is_none_or(|at| at.elapsed() >= DISCOVER) {
                looked = Some(std::time::Instant::now());
                match crate::discover::topics(http) {
                    Ok(names) => {
                        for topic in crate::discover::new_matches(&names, prefix, &joined) {
                            log::info!("export: topic {topic} matches {prefix:?}: exported too");
                            consumer.join(
                                &topic,
                                &export.group,
                                Start::Earliest,
                                export.credit,
                                settings,
                            )?;
                            joined.push(topic);
                        }
                    }
                    Err(e) => log::warn!("export: cannot list the topics at {http}: {e:#}"),
                }
            }
        }
        // With every message of its credit in flight the group sends nothing more: the thread
        // then waits for acks, not for the broker.
        let full = u64::from(export.credit.max(1)) * joined.len().max(1) as u64;
        loop {
            let next = if in_flight >= full {
                acks.recv_timeout(Duration::from_millis(20))
                    .map_err(|e| match e {
                        std_mpsc::RecvTimeoutError::Timeout => std_mpsc::TryRecvError::Empty,
                        std_mpsc::RecvTimeoutError::Disconnected => {
                            std_mpsc::TryRecvError::Disconnected
                        }
                    })
            } else {
                acks.try_recv()
            };
            match next {
                Ok((topic, offset)) => {
                    consumer.ack(&topic, &export.group, offset)?;
                    in_flight -= 1;
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    consumer.flush_acks()?;
                    return Ok(());
                }
            }
        }
        if !reading.load(Ordering::Relaxed) {
            if in_flight == 0 {
                consumer.flush_acks()?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let event = match consumer.next_event_timeout(Duration::from_millis(2)) {
            Ok(event) => event,
            Err(ConsumerError::Timeout) => continue,
            Err(e) => return Err(e).context("lost the mbus broker"),
        };
        let Event::Message {
            topic,
            offset,
            time,
            headers: message_headers,
            data,
            group: Some(_),
            ..
        } = event
        else {
            continue;
        };
        let outgoing = Outgoing {
            topic: topic.to_owned(),
            offset,
            subject: subject::of_topic(&export.prefix, topic),
            id: headers::message_id(&export.source, topic, offset),
            headers: headers::to_nats(message_headers.iter(), &export.source, topic, offset, time),
            data: bytes::Bytes::copy_from_slice(data),
        };
        if out.blocking_send(outgoing).is_err() {
            return Ok(());
        }
        in_flight += 1;
    }
}
