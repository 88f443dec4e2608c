//! The example sessions of PROTOCOL.md section 11, replayed byte for byte against the real
//! broker: what the client side of each transcript sends is sent, and what the broker side says
//! must arrive exactly, or the broker must close where the transcript says it does.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use mbus_proto::transcript::{Step, parse};
use support::process::BrokerProcess;

fn steps(name: &str) -> Vec<Step> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mbus-proto/transcripts")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Plays the client's part of transcript `name` on a new connection to `addr`. Consecutive
/// client frames go out in one write, as a client that pipelines sends them.
fn replay(addr: SocketAddr, name: &str) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let steps = steps(name);
    let mut i = 0;
    while i < steps.len() {
        if steps[i].from_client {
            let mut out = Vec::new();
            while let Some(step) = steps.get(i).filter(|s| s.from_client) {
                out.extend_from_slice(step.bytes.as_deref().expect("client steps have bytes"));
                i += 1;
            }
            stream.write_all(&out).unwrap();
            continue;
        }
        let step = &steps[i];
        match &step.bytes {
            Some(want) => {
                let mut got = vec![0; want.len()];
                stream
                    .read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("{name}: waiting for {}: {e}", step.comment));
                assert!(
                    step.matches(&got),
                    "{name}: {}: got {}, want {}",
                    step.comment,
                    hex(&got),
                    hex(want)
                );
            }
            None => {
                let mut rest = Vec::new();
                stream.read_to_end(&mut rest).unwrap();
                assert!(
                    rest.is_empty(),
                    "{name}: more after the last frame: {rest:02x?}"
                );
            }
        }
        i += 1;
    }
}

#[test]
fn the_protocol_documents_sessions_replay_against_the_broker() {
    // A short idle timeout, so that the broker's Ping in the consumer session comes soon.
    let broker = BrokerProcess::start(&["--idle-timeout", "0.5"]);
    // The consumer session reads what the producer session published.
    replay(broker.producers, "producer-session.txt");
    replay(broker.consumers, "consumer-session.txt");
    replay(broker.consumers, "group-session.txt");
    replay(broker.producers, "refused-version.txt");
    // An idempotent producer's session, its resend on a new connection, and the topic after.
    replay(broker.producers, "idempotent-session.txt");
    replay(broker.producers, "idempotent-resend.txt");
    replay(broker.consumers, "idempotent-check.txt");
}
