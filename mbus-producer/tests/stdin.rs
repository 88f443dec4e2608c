//! `mbus-producer` against a real broker: a line of stdin that arrives alone reaches a live
//! consumer at once, a line the broker would refuse stops the input only after everything
//! before it is stored and confirmed (or is skipped with `--skip-invalid`), and `--count`
//! generates load from a template.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mbus_broker::{Broker, BrokerConfig};
use mbus_proto::{DEFAULT_MAX_FRAME, Frame, PROTOCOL_VERSION, Role, Start, decode};

fn producer(broker: &Broker, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mbus-producer"));
    command
        .args(["--port", &broker.producer_addr().port().to_string()])
        .args(args)
        .env_remove("MBUS_AUTH_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A raw consumer of `topic` from its start, reading deliveries as they come.
struct Consumer {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Messages of a delivery already read, not yet returned.
    pending: std::collections::VecDeque<Vec<u8>>,
    /// `Deliver` frames read.
    deliveries: usize,
}

impl Consumer {
    fn subscribe(addr: SocketAddr, topic: &str) -> Consumer {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Consumer,
            token: None,
        }
        .to_bytes();
        Frame::Subscribe {
            topic,
            start: Start::Earliest,
        }
        .encode(&mut hello);
        stream.write_all(&hello).unwrap();
        let mut c = Consumer {
            stream,
            buf: Vec::new(),
            pending: Default::default(),
            deliveries: 0,
        };
        assert!(matches!(c.next(), Some(Ok(None))), "Welcome");
        assert!(matches!(c.next(), Some(Ok(None))), "Subscribed");
        c
    }

    /// The next message or frame: `Ok(Some(data))` for each message of a delivery, `Ok(None)`
    /// for any other frame, `Err` if nothing came within `wait`, `None` once the broker closed.
    fn next(&mut self) -> Option<Result<Option<Vec<u8>>, ()>> {
        self.next_within(Duration::from_secs(10))
    }

    fn next_within(&mut self, wait: Duration) -> Option<Result<Option<Vec<u8>>, ()>> {
        if let Some(data) = self.pending.pop_front() {
            return Some(Ok(Some(data)));
        }
        self.stream.set_read_timeout(Some(wait)).unwrap();
        loop {
            if let Some((frame, n)) = decode(&self.buf, DEFAULT_MAX_FRAME + 64).unwrap() {
                if let Frame::Deliver { batch, .. } = frame {
                    self.deliveries += 1;
                    self.pending.extend(batch.iter().map(|m| m.data.to_vec()));
                }
                self.buf.drain(..n);
                return Some(Ok(self.pending.pop_front()));
            }
            let mut chunk = [0; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Some(Err(())),
            }
        }
    }

    /// Every delivery until none comes for half a second.
    fn drain(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(Ok(frame)) = self.next_within(Duration::from_millis(500)) {
            out.extend(frame);
        }
        out
    }
}

#[test]
fn a_line_that_arrives_alone_reaches_a_live_consumer_at_once() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut consumer = Consumer::subscribe(broker.consumer_addr(), "live");
    let mut child = producer(&broker, &["--topic", "live"]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let line = format!("line {i}\n");
        let written = Instant::now();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let got = loop {
            match consumer.next() {
                Some(Ok(Some(data))) => break data,
                Some(Ok(None)) => continue,
                other => panic!("line {i}: {other:?}"),
            }
        };
        let took = written.elapsed();
        assert_eq!(got, line.trim_end().as_bytes());
        worst = worst.max(took);
    }
    eprintln!("lines written 300 ms apart reached the consumer within {worst:?} each");
    assert!(worst < Duration::from_millis(50), "a line took {worst:?}");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

fn lines_with_a_large_one(good_before: usize, good_after: usize, large: usize) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..good_before {
        input.extend_from_slice(format!("before {i}\n").as_bytes());
    }
    input.extend(std::iter::repeat_n(b'x', large));
    input.push(b'\n');
    for i in 0..good_after {
        input.extend_from_slice(format!("after {i}\n").as_bytes());
    }
    input
}

fn run(broker: &Broker, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = producer(broker, args).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: the producer may stop reading before all of it is in the pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// With `--linger`, lines that trickle in within it go out together: one batch, stored and
/// delivered as one frame.
#[test]
fn with_linger_a_trickle_of_lines_goes_out_as_one_batch() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut consumer = Consumer::subscribe(broker.consumer_addr(), "slow");
    let mut child = producer(&broker, &["-t", "slow", "--linger", "2s"])
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in ["a\n", "b\n", "c\n"] {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        match consumer.next() {
            Some(Ok(Some(data))) => got.push(data),
            Some(Ok(None)) => {}
            other => panic!("expected the lines, got {other:?} after {got:?}"),
        }
    }
    assert_eq!(got, [b"a", b"b", b"c"]);
    assert_eq!(consumer.deliveries, 1, "three lines, one delivery");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_line_too_large_stops_the_input_after_everything_before_it_is_confirmed() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut consumer = Consumer::subscribe(broker.consumer_addr(), "big");
    // Enough good lines that many are still buffered when the large one is read.
    let good = 30_000;
    let input = lines_with_a_large_one(good, 10, 2_000_000);
    let output = run(&broker, &["--topic", "big"], &input);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let largest = mbus_proto::max_publish_data("big", DEFAULT_MAX_FRAME);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: line {} cannot be published to `big`: a message of 2000000 bytes is larger \
             than the broker takes on this topic, {largest} bytes; the {good} messages before it \
             were published and confirmed",
            good + 1
        )
    );
    let stored = consumer.drain();
    assert_eq!(stored.len(), good, "exactly the lines before it are stored");
    assert_eq!(stored[good - 1], format!("before {}", good - 1).as_bytes());
}

#[test]
fn with_skip_invalid_a_line_too_large_is_reported_and_the_rest_published() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut consumer = Consumer::subscribe(broker.consumer_addr(), "skip");
    let largest = mbus_proto::max_publish_data("skip", DEFAULT_MAX_FRAME);
    // One byte over the largest message: the limit is the message's, not the frame's.
    let input = lines_with_a_large_one(3, 4, largest + 1);
    let output = run(&broker, &["--topic", "skip", "--skip-invalid"], &input);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "skipped: line 4 cannot be published to `skip`: a message of {} bytes is larger \
             than the broker takes on this topic, {largest} bytes",
            largest + 1
        )
    );
    let stored = consumer.drain();
    assert_eq!(stored.len(), 7);
    assert_eq!(stored[3], b"after 0");
    // A message of exactly the largest size is taken.
    let input = lines_with_a_large_one(0, 0, largest);
    assert!(run(&broker, &["--topic", "skip"], &input).status.success());
    assert_eq!(consumer.drain(), [vec![b'x'; largest]]);
}

#[test]
fn count_generates_numbered_messages_of_a_size_at_a_rate_and_says_how_fast() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut consumer = Consumer::subscribe(broker.consumer_addr(), "load");
    let args = [
        "-t",
        "load",
        "-n",
        "1000",
        "-m",
        "order {{count}}",
        "--size",
        "12",
    ];
    let output = run(&broker, &args, b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("published 1,000 messages (11.7 KiB) in ")
            && stderr.trim_end().ends_with("msgs/s, all confirmed"),
        "{stderr}"
    );
    let got = consumer.drain();
    assert_eq!(got.len(), 1000);
    assert_eq!(got[0], b"order 1.....");
    assert_eq!(got[999], b"order 1000..");

    // 20 messages at 100 a second take at least the 190 ms between the first and the last.
    let started = Instant::now();
    let output = run(&broker, &["-t", "load", "-n", "20", "--rate", "100"], b"");
    assert!(output.status.success());
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(consumer.drain().len(), 20);
}

#[test]
fn a_summary_comes_with_verbose_and_not_on_a_pipe_without() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let quiet = run(&broker, &["-t", "s"], b"a\nbb\nccc\n");
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let told = run(&broker, &["-t", "s", "-v"], b"a\nbb\nccc\n");
    let stderr = String::from_utf8_lossy(&told.stderr);
    assert!(
        stderr.starts_with("published 3 messages (6 B) in ")
            && stderr.trim_end().ends_with("msgs/s, all confirmed"),
        "{stderr}"
    );
    assert!(told.stdout.is_empty(), "nothing goes to stdout");
}

#[test]
fn completions_and_the_man_page_need_no_broker() {
    for (args, words) in [
        (&["--completions", "bash"][..], "--skip-invalid"),
        (&["--man"], ".TH mbus-producer 1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mbus-producer"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(words),
            "{args:?}"
        );
    }
}
