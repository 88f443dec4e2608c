//! `mbus-bridge`: moves messages between mbus brokers and a NATS JetStream cluster, exactly
//! once. `export` reads mbus topics through a consumer group and publishes them to a stream;
//! `import` reads a stream through a durable consumer and publishes it to mbus with the
//! idempotent producer. `jetstream-bench` measures the cluster's own publish rate, to compare.

mod bench;
mod discover;
mod export;
mod headers;
mod import;
mod nats;
mod retry;
mod stream;
mod subject;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::stream::StreamSpec;

/// Bridge mbus brokers and a NATS JetStream cluster, exactly once.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Publish mbus topics to a JetStream stream, read through an mbus consumer group.
    Export(ExportArgs),
    /// Publish a JetStream stream's messages to mbus topics.
    Import(ImportArgs),
    /// Publish numbered messages straight to a stream and say how fast JetStream took them.
    JetstreamBench(bench::BenchArgs),
}

/// Where the JetStream side is.
#[derive(Debug, Clone, Args)]
struct NatsArgs {
    /// NATS server URLs, comma-separated: any node of the cluster serves.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The stream.
    #[arg(long, default_value = "MBUS")]
    stream: String,
    /// Subjects are `<prefix>.<topic>`.
    #[arg(long, default_value = "mbus")]
    subject_prefix: String,
    /// Create the stream (subjects `<prefix>.>`) when it does not exist.
    #[arg(long)]
    create_stream: bool,
    /// With --create-stream: the stream's replicas (3 for a three-node cluster).
    #[arg(long, default_value_t = 1, requires = "create_stream")]
    replicas: usize,
    /// With --create-stream: how long JetStream drops a message id it already has.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, requires = "create_stream")]
    duplicate_window: Duration,
}

impl NatsArgs {
    fn spec(&self) -> Option<StreamSpec> {
        self.create_stream.then(|| StreamSpec {
            name: self.stream.clone(),
            subjects: vec![subject::all(&self.subject_prefix)],
            replicas: self.replicas,
            duplicate_window: self.duplicate_window,
        })
    }
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The source broker's consumer port, as host:port.
    #[arg(long, default_value = "127.0.0.1:9991")]
    mbus: String,
    /// A topic to export; repeat for more.
    #[arg(short, long = "topic", value_parser = parse_topic, required_unless_present = "topic_prefix")]
    topics: Vec<String>,
    /// Export every topic whose name starts with this too, as the source broker's monitoring
    /// port (--http) lists them, looked at again every 5 s.
    #[arg(long, requires = "http")]
    topic_prefix: Option<String>,
    /// The source broker's monitoring port (its --http), as host:port, for --topic-prefix.
    #[arg(long)]
    http: Option<String>,
    /// The mbus consumer group whose position is the export's.
    #[arg(long, default_value = "mbus-bridge")]
    group: String,
    /// The source broker's name in the message ids JetStream deduplicates by
    /// (`<source>:<topic>:<offset>`); by default its address.
    #[arg(long)]
    source: Option<String>,
    /// Messages read from mbus and not yet acknowledged by JetStream, at most.
    #[arg(long, default_value_t = 1000)]
    credit: u32,
    /// How long mbus waits for the export to ack a message before giving it out again (the
    /// broker caps it at its own --ack-wait).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    ack_wait: Duration,
    /// The source broker's token, when it requires one.
    #[arg(long, env = "MBUS_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    #[command(flatten)]
    nats: NatsArgs,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The destination broker's producer port, as host:port.
    #[arg(long, default_value = "127.0.0.1:9990")]
    mbus: String,
    /// The durable JetStream consumer whose position is the import's.
    #[arg(long, default_value = "mbus-bridge")]
    durable: String,
    /// The producer identity the destination broker knows the import by; by default
    /// `import-<durable>`. Keep it the same across restarts.
    #[arg(long)]
    producer_id: Option<String>,
    /// Messages JetStream hands out before the import acknowledges them, at most.
    #[arg(long, default_value_t = 4096)]
    max_pending: usize,
    /// The destination broker's token, when it requires one.
    #[arg(long, env = "MBUS_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    #[command(flatten)]
    nats: NatsArgs,
}

fn parse_topic(name: &str) -> Result<String, mbus_proto::TopicError> {
    mbus_proto::validate_topic(name).map(|()| name.to_owned())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Mode::Export(ExportArgs { nats, .. }) | Mode::Import(ImportArgs { nats, .. }) = &cli.mode
    {
        nats::servers(&nats.nats).context("invalid --nats")?;
    }
    let (stop_tx, stop) = watch::channel(false);
    // SIGTERM and SIGINT drain: nothing new is taken, what is in flight is finished.
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        log::info!("stopping: draining what is in flight");
        let _ = stop_tx.send(true);
    });
    match cli.mode {
        Mode::Export(args) => {
            let export = export::Export {
                source: args.source.unwrap_or_else(|| args.mbus.clone()),
                mbus: args.mbus,
                auth_token: args.auth_token,
                topics: args.topics,
                prefix_topics: args.topic_prefix.zip(args.http),
                group: args.group,
                credit: args.credit,
                ack_wait: args.ack_wait,
                nats: args.nats.nats.clone(),
                stream: args.nats.stream.clone(),
                create: args.nats.spec(),
                prefix: args.nats.subject_prefix.clone(),
            };
            log::info!(
                "export: topics {:?} of {} to stream {} at {}",
                export.topics,
                export.mbus,
                export.stream,
                export.nats
            );
            export::run(export, stop).await
        }
        Mode::Import(args) => {
            let import = import::Import {
                producer_id: args
                    .producer_id
                    .unwrap_or_else(|| format!("import-{}", args.durable)),
                nats: args.nats.nats.clone(),
                stream: args.nats.stream.clone(),
                create: args.nats.spec(),
                durable: args.durable,
                prefix: args.nats.subject_prefix.clone(),
                mbus: args.mbus,
                auth_token: args.auth_token,
                max_pending: args.max_pending,
            };
            mbus_proto::validate_producer_id(&import.producer_id)
                .map_err(|e| anyhow::anyhow!("invalid --producer-id: {e}"))?;
            log::info!(
                "import: stream {} at {} to {} as producer {}",
                import.stream,
                import.nats,
                import.mbus,
                import.producer_id
            );
            import::run(import, stop).await
        }
        Mode::JetstreamBench(args) => bench::run(args).await,
    }
}
