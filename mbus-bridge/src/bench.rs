//! `mbus-bridge jetstream-bench`: JetStream's own publish rate on a cluster, the figure the
//! bridge's throughput is compared with: numbered messages published to a stream of their own,
//! up to `--window` awaiting their PubAck at once, timed from the first publish to the last ack.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;

use crate::stream::{StreamSpec, ensure};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// NATS server URLs, comma-separated.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The stream published to, created (subjects `<stream>.>`) if missing and deleted after.
    #[arg(long, default_value = "MBUSBENCH")]
    stream: String,
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Publishes awaiting their PubAck at once.
    #[arg(long, default_value_t = 1000)]
    window: usize,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let js = crate::nats::jetstream(&args.nats).await?;
    let spec = StreamSpec {
        name: args.stream.clone(),
        subjects: vec![format!("{}.>", args.stream)],
        replicas: args.replicas,
        duplicate_window: Duration::from_secs(120),
    };
    ensure(&js, &args.stream, Some(&spec)).await?;
    let subject = format!("{}.bench", args.stream);
    let payload = bytes::Bytes::from(vec![b'x'; args.size]);
    let mut pending = VecDeque::with_capacity(args.window);
    let started = Instant::now();
    for _ in 0..args.count {
        if pending.len() >= args.window.max(1) {
            let ack: jetstream::context::PublishAckFuture =
                pending.pop_front().expect("a full window");
            ack.await.context("a publish was not acknowledged")?;
        }
        let ack = js
            .publish(subject.clone(), payload.clone())
            .await
            .context("cannot publish")?;
        pending.push_back(ack);
    }
    for ack in pending {
        ack.await.context("a publish was not acknowledged")?;
    }
    let elapsed = started.elapsed();
    println!(
        "jetstream-bench: {} messages of {} B to an R{} stream in {:.2} s: {:.0} msgs/s",
        args.count,
        args.size,
        args.replicas,
        elapsed.as_secs_f64(),
        args.count as f64 / elapsed.as_secs_f64()
    );
    js.delete_stream(&args.stream)
        .await
        .context("cannot delete the bench stream")?;
    Ok(())
}
