//! The monitoring port on a running broker: exact figures after known traffic in `/metrics`
//! (which `promtool check metrics` accepts) and in the JSON views, `/healthz`, and hostile
//! HTTP clients beside healthy traffic.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mbus_broker::{Broker, BrokerConfig};
use mbus_proto::{Frame, Role, Start};
use support::Owned;
use support::net::Client;

fn broker() -> Broker {
    let mut config = BrokerConfig::ephemeral();
    config.http = Some("127.0.0.1:0".into());
    Broker::spawn(config).unwrap()
}

/// Sends `request` whole and returns the status code and body of the answer.
fn request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: mbus\r\n\r\n"))
}

/// The value of the series `name` (labels included, as the exposition writes them).
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .parse()
        .unwrap()
}

/// Fails unless `promtool check metrics` (Debian's prometheus package) accepts `metrics`.
fn promtool_accepts(metrics: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs: install Debian's prometheus package (.ci/run does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes `count` messages of `size` bytes to `topic` on one connection, all confirmed.
fn publish(broker: &Broker, topic: &str, count: u64, size: usize) {
    let mut p = Client::open(broker.producer_addr(), Role::Producer);
    let data = vec![b'm'; size];
    let mut batch = Vec::new();
    for _ in 0..count {
        Frame::publish(topic, &data).encode(&mut batch);
    }
    p.stream.write_all(&batch).unwrap();
    while p.recv() != Some(Owned::Confirm(count)) {}
}

fn read_all(c: &mut Client, count: u64) {
    let mut got = 0;
    while got < count {
        if let Some(Owned::Deliver { .. }) = c.recv() {
            got += 1;
        }
    }
}

#[test]
fn metrics_count_exactly_what_passed_and_promtool_accepts_them() {
    let broker = broker();
    let http = broker.http_addr().unwrap();
    let mut c = Client::open(broker.consumer_addr(), Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "m",
        start: Start::Earliest,
    });
    publish(&broker, "m", 1000, 100);
    read_all(&mut c, 1000);
    // A refused client shows among the errors.
    let mut bad = Client::open(broker.producer_addr(), Role::Producer);
    bad.send(Frame::publish("no spaces", b"x"));
    assert!(matches!(bad.recv(), Some(Owned::Error { .. })));

    let (status, metrics) = get(http, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&metrics, "mbus_messages_published_total"), 1000.0);
    assert_eq!(sample(&metrics, "mbus_published_bytes_total"), 100_000.0);
    assert_eq!(sample(&metrics, "mbus_messages_delivered_total"), 1000.0);
    assert_eq!(sample(&metrics, "mbus_topics"), 1.0);
    assert_eq!(sample(&metrics, "mbus_connections_opened_total"), 3.0);
    assert_eq!(
        sample(&metrics, "mbus_errors_total{code=\"InvalidTopic\"}"),
        1.0
    );
    assert_eq!(
        sample(&metrics, "mbus_topic_next_offset{topic=\"m\"}"),
        1000.0
    );
    assert_eq!(sample(&metrics, "mbus_topic_subscribers{topic=\"m\"}"), 1.0);
    assert!(sample(&metrics, "mbus_memory_held_bytes") >= 100_000.0);

    promtool_accepts(&metrics);

    // Prometheus asks for OpenMetrics, and gets it.
    let (status, openmetrics) = request(
        http,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(openmetrics.ends_with("# EOF\n"));
    assert_eq!(
        sample(&openmetrics, "mbus_messages_published_total"),
        1000.0
    );
}

#[test]
fn the_topic_view_shows_offsets_and_each_consumers_position() {
    let broker = broker();
    let http = broker.http_addr().unwrap();
    let now_ms = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.unwrap().as_millis() as u64
    };
    let before = now_ms();
    publish(&broker, "orders", 400, 10);
    let after = now_ms();
    let mut c = Client::open(broker.consumer_addr(), Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "orders",
        start: Start::Earliest,
    });
    read_all(&mut c, 400);
    let (status, body) = get(http, "/v1/topics/orders");
    assert_eq!(status, 200);
    let topic: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(topic["next_offset"], 400);
    assert_eq!(topic["messages"], 400);
    assert_eq!(topic["subscribers"][0]["position"], 400);
    assert_eq!(topic["subscribers"][0]["lag"], 0);
    let first = topic["first_time_ms"]
        .as_u64()
        .expect("a first message's time");
    let last = topic["last_time_ms"]
        .as_u64()
        .expect("a last message's time");
    assert!(before <= first && first <= last && last <= after, "{body}");

    let (_, list) = get(http, "/v1/topics");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["topics"][0]["name"], "orders");
    assert_eq!(get(http, "/v1/topics/nope").0, 404);

    let (_, conns) = get(http, "/v1/connections");
    let conns: serde_json::Value = serde_json::from_str(&conns).unwrap();
    let consumer = conns["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "consumer")
        .unwrap();
    assert_eq!(consumer["subscriptions"][0]["topic"], "orders");
    assert!(consumer["bytes_out"].as_u64().unwrap() > 400 * 10);
    assert!(consumer["bytes_in"].as_u64().unwrap() > 0);
}

#[test]
fn healthz_is_ok_while_serving() {
    let broker = broker();
    assert_eq!(
        get(broker.http_addr().unwrap(), "/healthz"),
        (200, "ok\n".into())
    );
}

#[test]
fn hostile_http_clients_get_errors_or_closes_and_clients_never_notice() {
    let broker = broker();
    let http = broker.http_addr().unwrap();
    let mut c = Client::open(broker.consumer_addr(), Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "healthy",
        start: Start::Earliest,
    });
    // A silent client and a trickling one, held open while the rest goes on.
    let silent = TcpStream::connect(http).unwrap();
    let mut trickle = TcpStream::connect(http).unwrap();
    trickle.write_all(b"GET /met").unwrap();
    let opened = Instant::now();

    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(request(http, &huge).0, 431);
    assert_eq!(request(http, "\x16\x03\x01garbage\r\n\r\n").0, 400);
    assert_eq!(
        request(http, "PUT /v1/topics/healthy HTTP/1.1\r\n\r\n").0,
        405
    );
    // The topic healthy traffic reads is not deleted from under its reader.
    assert_eq!(
        request(http, "DELETE /v1/topics/healthy HTTP/1.1\r\n\r\n").0,
        409
    );
    assert_eq!(get(http, "/nowhere").0, 404);
    // A crowd of 2,000 silent connections: past the limit each is told so and closed at once.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let crowd: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(http).unwrap())
        .collect();
    let mut refused = 0;
    for mut s in crowd.into_iter().rev().take(100) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        if s.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 503") {
            refused += 1;
        }
    }
    assert_eq!(refused, 100, "connections past the limit are refused");

    // Healthy traffic flowed throughout.
    publish(&broker, "healthy", 1000, 64);
    read_all(&mut c, 1000);

    // The slow clients are cut off at the request timeout.
    for mut s in [silent, trickle] {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(14),
        "{waited:?}"
    );
    assert_eq!(get(http, "/healthz").0, 200);
}

#[test]
fn healthz_says_503_while_shutting_down() {
    let mut config = BrokerConfig::ephemeral();
    config.http = Some("127.0.0.1:0".into());
    config.shutdown_grace = Duration::from_secs(3);
    let broker = Broker::spawn(config).unwrap();
    let http = broker.http_addr().unwrap();
    // A consumer that never reads what it is owed keeps the broker in its grace period.
    // More than socket buffers hold: 40 MB.
    publish(&broker, "owed", 200, 200_000);
    let mut c = Client::open(broker.consumer_addr(), Role::Consumer);
    c.send(Frame::Subscribe {
        topic: "owed",
        start: Start::Earliest,
    });
    std::thread::sleep(Duration::from_millis(200));
    broker.shutdown_handle().shutdown();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        match get(http, "/healthz") {
            (503, body) => seen = Some(body),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert_eq!(seen.as_deref(), Some("shutting down\n"));
    drop(c);
    broker.stop().unwrap();
}

/// A real Prometheus server (Debian's package) scrapes the broker once a second and answers a
/// query for the published-messages counter with what was published.
#[test]
fn prometheus_scrapes_the_broker_and_answers_a_query() {
    let broker = broker();
    let http = broker.http_addr().unwrap();
    publish(&broker, "scraped", 123, 10);
    let dir = std::env::temp_dir().join(format!("mbus-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mbus\n    \
             static_configs:\n      - targets: [\"{http}\"]\n"
        ),
    )
    .unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus runs: install Debian's prometheus package (.ci/run does)");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answer = String::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut stream) = TcpStream::connect(web) else {
            continue;
        };
        let query = "GET /api/v1/query?query=mbus_messages_published_total HTTP/1.1\r\n\
                     Host: prometheus\r\nConnection: close\r\n\r\n";
        answer.clear();
        if stream.write_all(query.as_bytes()).is_err()
            || stream.read_to_string(&mut answer).is_err()
        {
            continue;
        }
        if answer.contains("\"123\"") {
            break;
        }
    }
    prometheus.kill().unwrap();
    prometheus.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        answer.contains("mbus_messages_published_total") && answer.contains("\"123\""),
        "Prometheus answered {answer}"
    );
}

#[test]
fn delete_removes_a_topic_and_its_directory_with_the_token_and_only_forced_under_readers() {
    let dir = std::env::temp_dir().join(format!("mbus-http-delete-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = BrokerConfig::ephemeral();
    config.http = Some("127.0.0.1:0".into());
    config.data_dir = Some(dir.clone());
    config.auth_token = Some("s3cret".into());
    let broker = Broker::spawn(config).unwrap();
    let http = broker.http_addr().unwrap();
    let mut p = Client::open_with(broker.producer_addr(), Role::Producer, Some("s3cret"));
    for topic in ["gone", "read"] {
        p.send(Frame::publish(topic, b"x"));
    }
    while p.recv() != Some(Owned::Confirm(2)) {}
    let topic_dir = |name: &str| dir.join("topics").join(name);
    assert!(topic_dir("gone").is_dir());

    let delete = |path: &str, token: Option<&str>| {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        request(http, &format!("DELETE {path} HTTP/1.1\r\n{auth}\r\n"))
    };
    assert_eq!(delete("/v1/topics/gone", None).0, 401);
    assert_eq!(delete("/v1/topics/gone", Some("wrong")).0, 401);
    assert_eq!(delete("/v1/topics/gone", Some("s3cret")).0, 200);
    assert!(!topic_dir("gone").exists(), "its directory is gone");
    assert_eq!(get(http, "/v1/topics/gone").0, 404);
    assert_eq!(delete("/v1/topics/gone", Some("s3cret")).0, 404);

    // A topic with a reader is kept unless the deletion is forced, which closes the reader.
    let mut c = Client::open_with(broker.consumer_addr(), Role::Consumer, Some("s3cret"));
    c.send(Frame::Subscribe {
        topic: "read",
        start: Start::Earliest,
    });
    assert!(matches!(c.recv(), Some(Owned::Subscribed { .. })));
    assert!(matches!(c.recv(), Some(Owned::Deliver { .. })));
    let (status, body) = delete("/v1/topics/read", Some("s3cret"));
    assert_eq!(status, 409, "{body}");
    assert!(topic_dir("read").is_dir());
    assert_eq!(delete("/v1/topics/read?force=true", Some("s3cret")).0, 200);
    match c.recv() {
        Some(Owned::Error { reason, .. }) => assert!(reason.contains("deleted"), "{reason}"),
        other => panic!("the reader was told: {other:?}"),
    }
    assert!(!topic_dir("read").exists());

    // Publishing to a deleted name makes a new topic, from offset 0.
    p.send(Frame::publish("gone", b"again"));
    while p.recv() != Some(Owned::Confirm(3)) {}
    let (_, body) = get(http, "/v1/topics/gone");
    let topic: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (topic["first_offset"].clone(), topic["next_offset"].clone()),
        (0.into(), 1.into())
    );
    broker.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn per_topic_series_stop_at_their_cap_and_the_totals_count_every_topic() {
    let broker = broker();
    let mut p = Client::open(broker.producer_addr(), Role::Producer);
    let mut batch = Vec::new();
    for i in 0..1001 {
        Frame::publish(&format!("t{i:04}"), b"x").encode(&mut batch);
    }
    p.stream.write_all(&batch).unwrap();
    while p.recv() != Some(Owned::Confirm(1001)) {}
    let (_, metrics) = get(broker.http_addr().unwrap(), "/metrics");
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("mbus_topic_next_offset{"))
        .count();
    assert_eq!(series, 1000, "the first 1,000 topics by name get series");
    assert!(metrics.contains("mbus_topic_next_offset{topic=\"t0999\"} 1"));
    assert!(!metrics.contains("topic=\"t1000\""));
    assert_eq!(sample(&metrics, "mbus_topics"), 1001.0);
}

/// A consumer group's figures, on `/metrics` and `/v1/topics/NAME`: one member with credit 4 of
/// 10 messages acked the first two, so it was given two more: it holds four, and eight are not
/// done.
#[test]
fn a_groups_members_lag_and_messages_in_flight_are_shown() {
    use mbus_proto::{AckAction, AckRanges, GroupOptions};
    let broker = broker();
    let http = broker.http_addr().unwrap();
    publish(&broker, "jobs", 10, 10);
    let mut member = Client::open(broker.consumer_addr(), Role::Consumer);
    member.send(Frame::Join {
        topic: "jobs",
        group: "workers",
        start: Start::Earliest,
        credit: 4,
        options: GroupOptions::default(),
    });
    read_all(&mut member, 4);
    let mut ranges = Vec::new();
    for offset in [0, 1] {
        AckRanges::push(&mut ranges, offset);
    }
    member.send(Frame::Ack {
        topic: "jobs",
        group: "workers",
        action: AckAction::Ack,
        delay: 0,
        ranges: AckRanges::new(&ranges).unwrap(),
    });
    // The answer to GroupInfo comes after the ack was taken in.
    member.send(Frame::GroupInfo {
        topic: "jobs",
        group: "workers",
    });
    while !matches!(member.recv(), Some(Owned::Other(s)) if s.starts_with("GroupState")) {}

    let (_, metrics) = get(http, "/metrics");
    let series = |name: &str| {
        sample(
            &metrics,
            &format!("{name}{{topic=\"jobs\",group=\"workers\"}}"),
        )
    };
    assert_eq!(series("mbus_group_members"), 1.0);
    assert_eq!(series("mbus_group_lag"), 8.0);
    assert_eq!(series("mbus_group_in_flight"), 4.0);
    assert_eq!(series("mbus_group_waiting"), 0.0);
    assert_eq!(series("mbus_group_redeliveries_total"), 0.0);
    assert_eq!(series("mbus_group_dead_letters_total"), 0.0);
    promtool_accepts(&metrics);

    let (status, body) = get(http, "/v1/topics/jobs");
    assert_eq!(status, 200, "{body}");
    let topic: serde_json::Value = serde_json::from_str(&body).unwrap();
    let group = &topic["groups"][0];
    assert_eq!(group["name"], "workers", "{body}");
    assert_eq!(
        (
            &group["members"],
            &group["floor"],
            &group["lag"],
            &group["in_flight"]
        ),
        (&1.into(), &2.into(), &8.into(), &4.into()),
        "{body}"
    );
}

#[test]
fn a_resend_of_an_idempotent_producer_counts_as_deduplicated_not_published() {
    let broker = broker();
    let http = broker.http_addr().unwrap();
    for sequence in [0, 1] {
        let mut p = Client::open(broker.producer_addr(), Role::Producer);
        p.send(Frame::Identify {
            producer: "web-1",
            sequence,
        });
        assert_eq!(p.recv(), Some(Owned::Identified(1)));
        p.send(Frame::publish("d", b"once"));
        assert_eq!(p.recv(), Some(Owned::Confirm(1)));
    }
    let (_, metrics) = get(http, "/metrics");
    assert_eq!(sample(&metrics, "mbus_messages_published_total"), 1.0);
    assert_eq!(sample(&metrics, "mbus_publishes_deduplicated_total"), 1.0);
    promtool_accepts(&metrics);
}
