//! The first manual test of the bus, automated: a real broker, then
//! `mbus-producer --topic orders --message "look ma! a new order"` exits 0; the broker logged that
//! it created topic `orders`, and its core holds the message at offset 0.

use std::process::Command;
use std::sync::Mutex;

use mbus_broker::{Broker, BrokerConfig};

/// Keeps every log line the broker writes, so the test can look for one.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn the_seed_manual_test_passes() {
    log::set_logger(&LOGS).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let port = broker.producer_addr().port();

    let status = Command::new(env!("CARGO_BIN_EXE_mbus-producer"))
        .args(["--topic", "orders", "--message", "look ma! a new order"])
        .args(["--port", &port.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "mbus-producer exited with {status}");

    let server = broker.stop().unwrap();
    assert!(
        LOGS.0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l == "INFO creating topic orders"),
        "the broker logged the new topic: {:?}",
        LOGS.0.lock().unwrap()
    );
    assert_eq!(server.core().topic_range("orders"), Some(0..1));
    assert_eq!(
        server.core().message("orders", 0),
        Some(&b"look ma! a new order"[..])
    );
}
