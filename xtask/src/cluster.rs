//! `cargo xtask cluster`: the topology that takes mbus beyond one machine, on loopback. Edge
//! broker A → `mbus-bridge export` → a three-node NATS JetStream cluster (an R3 stream) →
//! `mbus-bridge import` → edge broker B. Without flags it starts everything and waits for Enter;
//! `--check` sends messages from A to B unattended and verifies them; `--chaos` does so while
//! killing a NATS node, the bridges and broker A; `--bench` measures A to B.

use std::fmt::Write as _;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use xtask::broker::Broker;
use xtask::ports::{free_ports, wait_for_port};
use xtask::process::Proc;
use xtask::workspace::{self, Binaries, show};

const TOPICS: [&str; 2] = ["orders", "payments"];
const STREAM: &str = "MBUS";
const READY: Duration = Duration::from_secs(20);

#[derive(clap::Args)]
pub struct Args {
    /// Send messages from A to B unattended, check each arrived once and in order, stop
    /// everything and exit 0 only then
    #[arg(long)]
    check: bool,
    /// With --check: meanwhile kill and restart a NATS node and both bridges, then the brokers
    #[arg(long, requires = "check")]
    chaos: bool,
    /// Messages for --check, over both topics (default 10,000; 100,000 with --chaos)
    #[arg(long)]
    messages: Option<u64>,
    /// Measure A to B (optimized builds): throughput, latency, and JetStream's own rate
    #[arg(long, conflicts_with = "check")]
    bench: bool,
}

impl Args {
    /// `--check --chaos`, as `cargo xtask test` runs it.
    pub fn chaos_check() -> Args {
        Args {
            check: true,
            chaos: true,
            messages: None,
            bench: false,
        }
    }

    /// Whether `--bench` was asked, which `cluster_bench` runs.
    pub fn bench(&self) -> bool {
        self.bench
    }
}

/// Builds everything (optimized with `release`) and starts the whole topology, with its files
/// in a fresh `target/xtask/cluster`.
pub fn start(release: bool) -> anyhow::Result<Cluster> {
    xtask::tools::ensure_tool("nats-server", "nats-server")?;
    let bins = workspace::build(release)?;
    let bridge = workspace::cargo_build(release, &["mbus-bridge"])?
        .remove("mbus-bridge")
        .context("cargo built no mbus-bridge")?;
    let scratch = workspace::scratch_dir()?.join("cluster");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", show(&scratch)))?;
    Cluster::start(&bins, &bridge, &scratch)
}

/// The topology for a person to try (until Enter), or `--check`ed unattended.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut cluster = start(false)?;
    if !args.check {
        println!("{}", cluster.describe());
        println!("cluster: press Enter to stop everything");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        return cluster.stop();
    }
    let total = args
        .messages
        .unwrap_or(if args.chaos { 100_000 } else { 10_000 });
    if args.chaos {
        // The NATS node and the bridges first, then broker A, each over its own messages.
        check(&mut cluster, total, Chaos::ClusterAndBridges)?;
        check(&mut cluster, total, Chaos::SourceBroker)?;
    } else {
        check(&mut cluster, total, Chaos::None)?;
    }
    cluster.stop()
}

/// What is killed while messages flow.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Chaos {
    None,
    /// Two NATS nodes are killed and restarted, one at a time, and so are the bridges, apart
    /// and together.
    ClusterAndBridges,
    /// Broker A (durable) is killed with SIGKILL and restarted, twice, then broker B once.
    SourceBroker,
}

/// One NATS server of the cluster.
struct Node {
    name: String,
    port: u16,
    conf: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Node {
    fn start(&mut self) -> anyhow::Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", show(&self.log)))?;
        let mut proc = Proc::spawn(
            self.name.clone(),
            Command::new("nats-server")
                .arg("-c")
                .arg(&self.conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
        )?;
        wait_for_port(&mut proc, self.port, READY)
            .with_context(|| format!("see {}", show(&self.log)))?;
        self.proc = Some(proc);
        Ok(())
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        match self.proc.take() {
            Some(mut proc) => proc.kill(),
            None => Ok(()),
        }
    }
}

/// The whole topology, every process owned so that nothing outlives the task.
pub struct Cluster {
    bins: Binaries,
    bridge: PathBuf,
    scratch: PathBuf,
    nodes: Vec<Node>,
    a_ports: [u16; 2],
    b_ports: [u16; 2],
    /// A's monitoring port, where the export finds the topics its prefix takes.
    a_http: u16,
    a: Option<Broker>,
    b: Option<Broker>,
    export: Option<Proc>,
    import: Option<Proc>,
    /// Messages per topic that earlier rounds took to B: where a round's consumer starts.
    delivered: u64,
}

impl Cluster {
    fn start(bins: &Binaries, bridge: &Path, scratch: &Path) -> anyhow::Result<Cluster> {
        let ports: [u16; 11] = free_ports()?;
        let (client, routes) = (&ports[0..3], &ports[3..6]);
        let mut nodes = Vec::new();
        for i in 0..3 {
            let name = format!("n{}", i + 1);
            let others: Vec<String> = (0..3)
                .filter(|&j| j != i)
                .map(|j| format!("nats-route://127.0.0.1:{}", routes[j]))
                .collect();
            let store = scratch.join(&name);
            let conf = scratch.join(format!("{name}.conf"));
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{}\njetstream {{\n  store_dir: \"{}\"\n}}\n\
                 cluster {{\n  name: mbus-cluster\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                client[i],
                store.display(),
                routes[i],
                others.join(", ")
            );
            fs::write(&conf, text).with_context(|| format!("cannot write {}", show(&conf)))?;
            nodes.push(Node {
                log: scratch.join(format!("{name}.log")),
                name,
                port: client[i],
                conf,
                proc: None,
            });
        }
        let mut cluster = Cluster {
            bins: bins.clone(),
            bridge: bridge.to_owned(),
            scratch: scratch.to_owned(),
            nodes,
            a_ports: [ports[6], ports[7]],
            b_ports: [ports[8], ports[9]],
            a_http: ports[10],
            a: None,
            b: None,
            export: None,
            import: None,
            delivered: 0,
        };
        for node in &mut cluster.nodes {
            node.start()?;
        }
        cluster.start_a()?;
        cluster.start_b()?;
        cluster.start_export()?;
        cluster.start_import()?;
        Ok(cluster)
    }

    fn nats_urls(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect();
        urls.join(",")
    }

    fn start_a(&mut self) -> anyhow::Result<()> {
        let flags = [
            "--data-dir".to_owned(),
            self.scratch.join("a").display().to_string(),
            // The export holds messages while JetStream is away: long enough, and never
            // dead-lettered for it.
            "--ack-wait".to_owned(),
            "5m".to_owned(),
            "--max-deliver".to_owned(),
            "100000".to_owned(),
            // And may hold many at once, so that PubAcks come back at JetStream's pace.
            "--max-ack-pending".to_owned(),
            "10000".to_owned(),
            "--http".to_owned(),
            format!("127.0.0.1:{}", self.a_http),
        ];
        let log = self.scratch.join("a.log");
        self.a = Some(Broker::start_on(&self.bins, &log, self.a_ports, &flags)?);
        Ok(())
    }

    fn start_b(&mut self) -> anyhow::Result<()> {
        let flags = [
            "--data-dir".to_owned(),
            self.scratch.join("b").display().to_string(),
        ];
        let log = self.scratch.join("b.log");
        self.b = Some(Broker::start_on(&self.bins, &log, self.b_ports, &flags)?);
        Ok(())
    }

    fn bridge_command(&self, mode: &str, log: &str) -> anyhow::Result<Command> {
        let path = self.scratch.join(log);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", show(&path)))?;
        let mut cmd = Command::new(&self.bridge);
        cmd.arg(mode)
            .args(["--nats", &self.nats_urls(), "--stream", STREAM])
            .args(["--create-stream", "--replicas", "3"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        Ok(cmd)
    }

    fn start_export(&mut self) -> anyhow::Result<()> {
        let mut cmd = self.bridge_command("export", "export.log")?;
        // One topic by name, the other by a prefix, found through A's monitoring port.
        cmd.args(["--mbus", &format!("127.0.0.1:{}", self.a_ports[1])])
            .args(["--source", "a", "--topic", TOPICS[0], "--credit", "5000"])
            .args(["--topic-prefix", "pay"])
            .args(["--http", &format!("127.0.0.1:{}", self.a_http)]);
        self.export = Some(Proc::spawn("mbus-bridge export", &mut cmd)?);
        Ok(())
    }

    fn start_import(&mut self) -> anyhow::Result<()> {
        let mut cmd = self.bridge_command("import", "import.log")?;
        cmd.args(["--mbus", &format!("127.0.0.1:{}", self.b_ports[0])])
            .args(["--durable", "to-b"]);
        self.import = Some(Proc::spawn("mbus-bridge import", &mut cmd)?);
        Ok(())
    }

    /// `mbus-producer` at A for `topic`.
    pub fn producer(&self, topic: &str) -> Command {
        self.a.as_ref().expect("A runs").producer(topic)
    }

    /// `mbus-consumer` at B for `topic`, from `offset`.
    pub fn consumer_of(&self, topic: &str, offset: u64) -> Command {
        let mut cmd = self.b.as_ref().expect("B runs").consumer(topic);
        cmd.args(["--from", &offset.to_string()]);
        cmd
    }

    /// `mbus-consumer` at B for every topic, printing JSON lines.
    pub fn consumer(&self) -> Command {
        let mut cmd = self.b.as_ref().expect("B runs").consumer(TOPICS[0]);
        for topic in &TOPICS[1..] {
            cmd.args(["--topic", topic]);
        }
        cmd.arg("--json");
        cmd
    }

    pub fn nats(&self) -> String {
        self.nats_urls()
    }

    /// The `mbus-bridge` binary.
    pub fn bridge(&self) -> &Path {
        &self.bridge
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "cluster: NATS JetStream nodes at {}", self.nats_urls());
        let _ = writeln!(
            out,
            "cluster: broker A: producers 127.0.0.1:{}, consumers 127.0.0.1:{}",
            self.a_ports[0], self.a_ports[1]
        );
        let _ = writeln!(
            out,
            "cluster: broker B: producers 127.0.0.1:{}, consumers 127.0.0.1:{}",
            self.b_ports[0], self.b_ports[1]
        );
        let _ = writeln!(
            out,
            "cluster: publish at A:  {} --port {} --topic orders --message hi",
            self.bins.producer.display(),
            self.a_ports[0]
        );
        let _ = write!(
            out,
            "cluster: read it at B:  {} --port {} --topic orders --format '%t %o %h: %s\\n'\n\
             cluster: logs in {}",
            self.bins.consumer.display(),
            self.b_ports[1],
            show(&self.scratch)
        );
        out
    }

    /// Stops the bridges (drained with SIGTERM), the brokers and the NATS nodes.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        for bridge in [self.export.take(), self.import.take()]
            .into_iter()
            .flatten()
        {
            let mut bridge = bridge;
            bridge.terminate(Duration::from_secs(20))?;
        }
        for broker in [self.a.take(), self.b.take()].into_iter().flatten() {
            broker.stop()?;
        }
        for node in &mut self.nodes {
            if let Some(mut proc) = node.proc.take() {
                proc.interrupt(Duration::from_secs(20))?;
            }
        }
        println!("cluster: everything stopped");
        Ok(())
    }
}

/// Runs one check: `total` messages over the topics from A to B, with `chaos` meanwhile.
fn check(cluster: &mut Cluster, total: u64, chaos: Chaos) -> anyhow::Result<()> {
    let per_topic = total / TOPICS.len() as u64;
    let round = match chaos {
        Chaos::None => "check",
        Chaos::ClusterAndBridges => "chaos (NATS nodes, the bridges)",
        Chaos::SourceBroker => "chaos (brokers A and B)",
    };
    println!("cluster: {round}: {total} messages from A to B through the R3 stream");
    // B holds exactly what the rounds before sent it, so this round's messages start there.
    let mut consumer = Proc::spawn(
        "mbus-consumer at B",
        cluster
            .consumer()
            .args(["--from", &cluster.delivered.to_string()]),
    )?;
    let lines = consumer.stdout_lines()?;
    let rate = if chaos == Chaos::None {
        0
    } else {
        per_topic / 10
    };
    let mut producers = Vec::new();
    for topic in TOPICS {
        let mut cmd = cluster.producer(topic);
        cmd.args(["--count", &per_topic.to_string()])
            .args(["--message", &format!("{topic} {{{{count}}}}")]);
        if rate > 0 {
            cmd.args(["--rate", &rate.to_string()]);
        }
        producers.push(Proc::spawn(
            format!("mbus-producer at A ({topic})"),
            &mut cmd,
        )?);
    }
    let started = Instant::now();
    match chaos {
        Chaos::None => {}
        Chaos::ClusterAndBridges => {
            // Each bridge is killed where it has messages in flight on both of its sides,
            // several times, once both at once; a NATS node is down in between.
            // Two of the three nodes go down, one at a time, so that a bridge's own node is
            // likely among them.
            let mut events: Vec<(f64, Event)> = vec![
                (1.5, Event::NodeDown(1)),
                (3.5, Event::NodeUp(1)),
                (5.5, Event::NodeDown(0)),
                (7.2, Event::NodeUp(0)),
                (7.5, Event::Both),
            ];
            events.extend([2.5, 4.5, 6.5].map(|t| (t, Event::Export)));
            events.extend([3.0, 5.0, 6.0, 8.5].map(|t| (t, Event::Import)));
            events.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (t, event) in events {
                at(started, t);
                match event {
                    Event::NodeDown(i) => {
                        cluster.nodes[i].kill()?;
                        println!("cluster: killed NATS node {}", cluster.nodes[i].name);
                    }
                    Event::NodeUp(i) => {
                        cluster.nodes[i].start()?;
                        println!("cluster: NATS node {} is back", cluster.nodes[i].name);
                    }
                    Event::Export => {
                        kill(&mut cluster.export, "export")?;
                        thread::sleep(Duration::from_millis(300));
                        cluster.start_export()?;
                    }
                    Event::Import => {
                        kill(&mut cluster.import, "import")?;
                        thread::sleep(Duration::from_millis(300));
                        cluster.start_import()?;
                    }
                    Event::Both => {
                        kill(&mut cluster.export, "export")?;
                        kill(&mut cluster.import, "import")?;
                        thread::sleep(Duration::from_millis(300));
                        cluster.start_export()?;
                        cluster.start_import()?;
                    }
                }
            }
        }
        Chaos::SourceBroker => {
            for t in [2.0, 5.0] {
                at(started, t);
                cluster.a.take().expect("A runs").kill()?;
                println!("cluster: killed broker A (SIGKILL)");
                at(started, t + 0.5);
                cluster.start_a()?;
                println!("cluster: broker A is back");
            }
            // B too, once: the import's resends after it are stored once as well.
            at(started, 6.5);
            cluster.b.take().expect("B runs").kill()?;
            println!("cluster: killed broker B (SIGKILL)");
            at(started, 7.0);
            cluster.start_b()?;
            println!("cluster: broker B is back");
        }
    }
    for producer in &mut producers {
        producer.finish(Duration::from_secs(300))?;
    }
    let got = collect(&lines, total, Duration::from_secs(300))?;
    consumer.kill()?;
    verify(&got, per_topic)?;
    cluster.delivered += per_topic;
    println!(
        "cluster: {round}: B received all {total} messages exactly once, in order per topic, \
         with their headers and origin times, {:.1} s after the first was published",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What the first chaos round does at a moment.
#[derive(Debug, Clone, Copy)]
enum Event {
    NodeDown(usize),
    NodeUp(usize),
    Export,
    Import,
    Both,
}

/// Sleeps until `secs` after `started`.
fn at(started: Instant, secs: f64) {
    let when = started + Duration::from_secs_f64(secs);
    thread::sleep(when.saturating_duration_since(Instant::now()));
}

fn kill(bridge: &mut Option<Proc>, name: &str) -> anyhow::Result<()> {
    if let Some(mut proc) = bridge.take() {
        proc.kill()?;
        println!("cluster: killed the {name} bridge (SIGKILL)");
    }
    Ok(())
}

/// What B's consumer printed: `total` lines, and any more that come within a second after.
fn collect(lines: &Receiver<String>, total: u64, limit: Duration) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    loop {
        let wait = if (got.len() as u64) < total {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(1)
        };
        match lines.recv_timeout(wait) {
            Ok(line) => got.push(line),
            Err(RecvTimeoutError::Timeout) if (got.len() as u64) >= total => return Ok(got),
            Err(RecvTimeoutError::Timeout) => {
                bail!(
                    "B's consumer printed {} of {total} messages in {limit:?}",
                    got.len()
                )
            }
            Err(RecvTimeoutError::Disconnected) => bail!("B's consumer exited"),
        }
    }
}

/// The value of header `name` of a message `mbus-consumer --json` printed.
pub fn header(json: &serde_json::Value, name: &str) -> Option<String> {
    json["headers"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["name"] == name))
        .and_then(|h| h["value"].as_str())
        .map(str::to_owned)
}

/// Every topic's messages `1..=per_topic` exactly once and in order, each with the origin
/// headers the bridges give it: its offset at A (consecutive) and A's time.
fn verify(lines: &[String], per_topic: u64) -> anyhow::Result<()> {
    let mut next: Vec<u64> = vec![1; TOPICS.len()];
    let mut origin: Vec<Option<u64>> = vec![None; TOPICS.len()];
    for line in lines {
        let json: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        let topic = json["topic"].as_str().context("no topic")?;
        let t = TOPICS
            .iter()
            .position(|x| *x == topic)
            .with_context(|| format!("unknown topic {topic}"))?;
        let data = json["data"].as_str().context("no data")?;
        let want = format!("{topic} {}", next[t]);
        ensure!(data == want, "{topic}: got {data:?}, expected {want:?}");
        next[t] += 1;
        let header = |name: &str| header(&json, name);
        let from = header("mbus-origin").with_context(|| format!("{want}: no mbus-origin"))?;
        let offset: u64 = from
            .rsplit(':')
            .next()
            .and_then(|o| o.parse().ok())
            .with_context(|| format!("{want}: mbus-origin {from:?}"))?;
        ensure!(
            from == format!("a:{topic}:{offset}"),
            "{want}: mbus-origin {from:?}"
        );
        if let Some(before) = origin[t] {
            ensure!(
                offset == before + 1,
                "{want}: A's offset {offset} after {before}"
            );
        }
        origin[t] = Some(offset);
        let time: u64 = header("mbus-origin-time")
            .and_then(|t| t.parse().ok())
            .with_context(|| format!("{want}: no mbus-origin-time"))?;
        let stored = json["time"].as_u64().context("no time")?;
        ensure!(
            time <= stored,
            "{want}: stored at B ({stored}) before A stored it ({time})"
        );
    }
    for (t, topic) in TOPICS.iter().enumerate() {
        ensure!(
            next[t] == per_topic + 1,
            "{topic}: B received {} of {per_topic}",
            next[t] - 1
        );
    }
    Ok(())
}
