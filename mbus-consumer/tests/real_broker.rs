//! The consumer binary against a real broker: a message published by the producer library comes
//! out as a line on stdout, after the fact, and as it is published to a consumer already waiting.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mbus_broker::{Broker, BrokerConfig};
use mbus_producer::{Producer, ProducerOptions};

fn start() -> (u16, u16, Broker) {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let ports = (broker.producer_addr().port(), broker.consumer_addr().port());
    (ports.0, ports.1, broker)
}

fn publish(port: u16, topic: &str, lines: &[&str]) {
    let mut p = Producer::connect(("127.0.0.1", port), &ProducerOptions::default()).unwrap();
    for line in lines {
        p.publish(topic, line.as_bytes()).unwrap();
    }
    assert_eq!(p.wait_confirmed().unwrap(), lines.len() as u64);
}

fn consumer(port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mbus-consumer"));
    cmd.args(args).args(["--port", &port.to_string()]);
    cmd
}

#[test]
fn a_published_message_is_printed_by_a_later_consumer() {
    let (pport, cport, broker) = start();
    publish(pport, "t", &["hi"]);
    let out = consumer(cport, &["--topic", "t", "--count", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hi\n");
    broker.stop().unwrap();
}

#[test]
fn a_waiting_consumer_prints_messages_as_they_arrive_with_json_offsets() {
    let (pport, cport, broker) = start();
    // The consumer starts before the topic exists and waits for it.
    let mut child = consumer(cport, &["--topic", "live", "--count", "2", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    publish(pport, "live", &["one"]);
    let first = lines.next().unwrap().unwrap();
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["topic"], "live");
    assert_eq!(first["data"], "one");
    let offset = first["offset"].as_u64().unwrap();
    publish(pport, "live", &["two"]);
    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["data"], "two");
    assert_eq!(second["offset"].as_u64().unwrap(), offset + 1);
    assert!(child.wait().unwrap().success());
    broker.stop().unwrap();
}

/// Two free ports, for brokers that must come back where they were.
fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A broker on `ports`, with `data_dir` if given. Another test's broker may hold the ports for
/// a moment (ports the system hands out for port 0 can be the ones just freed here): binding
/// is tried again.
fn broker_on(data_dir: Option<&std::path::Path>, (pport, cport): (u16, u16)) -> Broker {
    let mut config = BrokerConfig::ephemeral();
    config.pport = pport;
    config.cport = cport;
    config.data_dir = data_dir.map(ToOwned::to_owned);
    let mut tries = 0;
    loop {
        match Broker::spawn(config.clone()) {
            Ok(broker) => return broker,
            Err(e) if tries < 100 => {
                tries += 1;
                eprintln!("binding {pport}/{cport} again: {e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot start a broker on {pport}/{cport}: {e}"),
        }
    }
}

fn durable_on(dir: &std::path::Path, ports: (u16, u16)) -> Broker {
    broker_on(Some(dir), ports)
}

#[test]
fn a_consumer_that_reconnects_resumes_after_the_last_message_it_handed_out() {
    use mbus_consumer::{Consumer, ConsumerOptions, Event, Reconnect, Start};
    let dir = std::env::temp_dir().join(format!("mbus-consumer-reconnect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ports = free_ports();
    let broker = durable_on(&dir, ports);
    let numbered =
        |range: std::ops::Range<u32>| -> Vec<String> { range.map(|i| format!("m{i}")).collect() };
    let first: Vec<String> = numbered(0..100);
    publish(
        ports.0,
        "r",
        &first.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let mut options = ConsumerOptions::default();
    options.reconnect = Some(Reconnect::default());
    options.read_timeout = Some(std::time::Duration::from_secs(20));
    let mut consumer = Consumer::connect(("127.0.0.1", ports.1), &options).unwrap();
    consumer.subscribe("r", Start::Earliest).unwrap();
    let mut got = Vec::new();
    let take = |consumer: &mut Consumer, until: usize, got: &mut Vec<String>| {
        while got.len() < until {
            if let Event::Message { offset, data, .. } = consumer.next_event().unwrap() {
                assert_eq!(offset as usize, got.len(), "each offset once, in order");
                got.push(String::from_utf8(data.to_vec()).unwrap());
            }
        }
    };
    take(&mut consumer, 100, &mut got);

    // The broker stops and comes back on the same ports with its data; meanwhile the consumer
    // is waiting for more.
    broker.stop().unwrap();
    let broker = durable_on(&dir, ports);
    let second = numbered(100..200);
    publish(
        ports.0,
        "r",
        &second.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    take(&mut consumer, 200, &mut got);
    assert_eq!(got, numbered(0..200));
    broker.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_consumer_command_prints_every_line_once_across_a_broker_restart() {
    let dir = std::env::temp_dir().join(format!("mbus-consumer-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ports = free_ports();
    let broker = durable_on(&dir, ports);
    let lines: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    publish(ports.0, "r", &refs[..100]);
    let mut child = consumer(ports.1, &["-t", "r", "-c", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed: Vec<String> = (0..100).map(|_| out.next().unwrap().unwrap()).collect();

    broker.stop().unwrap();
    let broker = durable_on(&dir, ports);
    publish(ports.0, "r", &refs[100..]);
    printed.extend(out.map(Result::unwrap));
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(printed, lines, "every line once, in order");
    assert!(
        stderr.contains("connecting again"),
        "each attempt is logged: {stderr}"
    );
    broker.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_consumer_sums_up_with_verbose_on_stderr_and_keeps_stdout_for_data() {
    let (pport, cport, broker) = start();
    publish(pport, "v", &["one", "two"]);
    let out = consumer(cport, &["-t", "v", "-c", "2", "-v"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "one\ntwo\n");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("received 2 messages (6 B) in "),
        "{stderr}"
    );
    let quiet = consumer(cport, &["-t", "v", "-c", "2"]).output().unwrap();
    assert!(quiet.stderr.is_empty());
    broker.stop().unwrap();
}

#[test]
fn completions_and_the_man_page_need_no_broker() {
    for (args, words) in [
        (&["--completions", "fish"][..], "reconnect-attempts"),
        (&["--man"], ".TH mbus-consumer 1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mbus-consumer"))
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

/// What README.md says a restart of a broker without a data directory costs a reconnecting
/// consumer: the new broker starts its topics at offset 0 and the consumer asks for the offset
/// it left at. If the new topic holds fewer messages than that when the consumer comes back, it
/// reads the topic again from its start; if it already holds more, the consumer cannot tell,
/// and misses the new broker's messages before its offset.
#[test]
fn a_reconnecting_consumer_and_a_restarted_memory_broker() {
    use mbus_consumer::{Consumer, ConsumerOptions, Event, Reconnect, Start};
    let ports = free_ports();
    let broker = broker_on(None, ports);
    publish(ports.0, "m", &["a0", "a1", "a2", "a3", "a4"]);
    let mut options = ConsumerOptions::default();
    options.reconnect = Some(Reconnect::default());
    options.read_timeout = Some(std::time::Duration::from_secs(20));
    let mut consumer = Consumer::connect(("127.0.0.1", ports.1), &options).unwrap();
    consumer.subscribe("m", Start::Earliest).unwrap();
    let next = |consumer: &mut Consumer| loop {
        if let Event::Message { offset, data, .. } = consumer.next_event().unwrap() {
            return (offset, String::from_utf8(data.to_vec()).unwrap());
        }
    };
    for i in 0..5 {
        assert_eq!(next(&mut consumer), (i, format!("a{i}")));
    }
    // The consumer reads only inside its calls: it finds the new broker once it holds eight.
    broker.stop().unwrap();
    let broker = broker_on(None, ports);
    publish(
        ports.0,
        "m",
        &["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"],
    );
    // It resumes at offset 5: b0 to b4 are lost to it, b5 on arrive.
    for i in 5..8 {
        assert_eq!(next(&mut consumer), (i, format!("b{i}")));
    }
    // Now the consumer comes back to an empty topic, below its offset 8: it reads from 0.
    broker.stop().unwrap();
    let broker = broker_on(None, ports);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Once the consumer has subscribed again (which creates the topic), c0 to c2 come.
            while broker.stats().topics == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            publish(ports.0, "m", &["c0", "c1", "c2"]);
        });
        for i in 0..3 {
            assert_eq!(next(&mut consumer), (i, format!("c{i}")));
        }
    });
    broker.stop().unwrap();
}

/// Copies `from` into `to`, and dates every file two hours back.
fn copy_dated(from: &std::path::Path, to: &std::path::Path, when: std::time::SystemTime) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dated(&entry.path(), &target, when);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let file = std::fs::File::options().write(true).open(&target).unwrap();
            file.set_modified(when).unwrap();
        }
    }
}

#[test]
fn the_last_n_and_the_last_ten_minutes_are_printed_and_the_consumer_exits_at_the_end() {
    // Forty messages stored two hours ago (the upgraded format 1 fixture, whose records take
    // their files' times), then three now.
    let dir = std::env::temp_dir().join(format!("mbus-consumer-from-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mbus-broker/tests/fixtures/v1-data-dir"
    );
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    copy_dated(std::path::Path::new(fixture), &dir, two_hours_ago);
    let mut config = BrokerConfig::ephemeral();
    config.data_dir = Some(dir.clone());
    let broker = Broker::spawn(config).unwrap();
    let pport = broker.producer_addr().port();
    let cport = broker.consumer_addr().port();
    let mut p = Producer::connect(("127.0.0.1", pport), &ProducerOptions::default()).unwrap();
    p.publish("orders", b"new 40").unwrap();
    p.publish_with("orders", b"new 41", &[("trace-id", b"7f3a")])
        .unwrap();
    p.publish("orders", b"new 42").unwrap();
    assert_eq!(p.wait_confirmed().unwrap(), 3);

    let run = |args: &[&str]| {
        let out = consumer(cport, args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let last = run(&[
        "--topic",
        "orders",
        "--from",
        "-10",
        "--exit-at-end",
        "--format",
        "%o\\n",
    ]);
    let offsets: Vec<u64> = last.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(offsets, (33..43).collect::<Vec<_>>());

    let recent = run(&[
        "--topic",
        "orders",
        "--from",
        "10m",
        "--exit-at-end",
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = recent
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let data: Vec<&str> = lines.iter().map(|l| l["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["new 40", "new 41", "new 42"]);
    assert_eq!(lines[0]["offset"], 40);
    assert_eq!(lines[1]["headers"][0]["name"], "trace-id");
    assert_eq!(lines[1]["headers"][0]["value"], "7f3a");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let time = lines[2]["time"].as_u64().unwrap();
    assert!(now - 60_000 < time && time <= now, "{time} vs {now}");

    // A topic with nothing to print, or one read from its end, exits at once.
    assert_eq!(run(&["--topic", "idle", "--exit-at-end"]), "");
    assert_eq!(
        run(&["--topic", "orders", "--from", "latest", "--exit-at-end"]),
        ""
    );
    broker.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
