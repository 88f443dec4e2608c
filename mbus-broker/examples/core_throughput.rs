//! Drives the core alone, without sockets, with one producer and one consumer on one topic: a
//! profiling aid for the hot path (`valgrind --tool=callgrind`), not a benchmark of the broker.
//!
//! `N=100000 cargo run --release -p mbus-broker --example core_throughput`

use mbus_broker::BrokerConfig;
use mbus_broker::engine::Core;
use mbus_proto::{Frame, Role, Start, decode};
use std::time::Instant;
fn main() {
    // Retention well under what a pass publishes, so that later passes reuse segment memory
    // and measure the hot path rather than the kernel handing out fresh pages.
    let mut config = BrokerConfig::default();
    config.retention_bytes = 64 << 20;
    let mut core = Core::new(config.core(), Instant::now());
    let peer = "127.0.0.1:1".parse().unwrap();
    let p = core.open(Role::Producer, peer);
    core.receive(
        p,
        Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Producer,
            token: None,
        },
    );
    let c = core.open(Role::Consumer, peer);
    core.receive(
        c,
        Frame::Hello {
            version: mbus_proto::PROTOCOL_VERSION,
            role: Role::Consumer,
            token: None,
        },
    );
    core.receive(
        c,
        Frame::Subscribe {
            topic: "bench",
            start: Start::Earliest,
        },
    );
    let data = [7u8; 128];
    let mut input = Vec::new();
    for _ in 0..1000 {
        Frame::publish("bench", &data).encode(&mut input);
    }
    let n: usize = std::env::var("N")
        .map(|v| v.parse().unwrap())
        .unwrap_or(2_000_000);
    let mut ready = Vec::new();
    let mut sink = Vec::with_capacity(1 << 24);
    for pass in 1..=4 {
        let t = Instant::now();
        for _ in 0..n / 1000 {
            let mut rest = &input[..];
            while let Some((f, k)) = decode(rest, 1 << 20).unwrap() {
                core.receive(p, f);
                rest = &rest[k..];
            }
            core.take_ready(&mut ready);
            for id in ready.drain(..) {
                sink.clear();
                while core.write(id, &mut sink).unwrap() != mbus_broker::engine::Progress::Drained {
                }
            }
        }
        let e = t.elapsed();
        println!(
            "pass {pass}: {:.1} ns/msg, {:.2} M msg/s",
            e.as_nanos() as f64 / n as f64,
            n as f64 / e.as_secs_f64() / 1e6
        );
    }
}
