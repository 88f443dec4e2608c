//! `cargo xtask demo`: a broker, a consumer and a producer on this machine, showing orders as
//! they are published and received, then a late consumer replaying the topic, and one that
//! prints the last two with their offsets, times and headers and exits at the end.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use anyhow::bail;

use xtask::broker::Broker;
use xtask::process::Proc;
use xtask::workspace::{self, show};

const TOPIC: &str = "orders";
const ORDERS: [&str; 5] = [
    "look ma! a new order",
    "order #2: 3 coffees",
    "order #3: 1 croissant, no butter",
    "order #4: tea for two",
    "order #5: the usual",
];
/// Long enough to watch each order go through, short enough not to bore.
const PAUSE: Duration = Duration::from_millis(600);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run() -> anyhow::Result<()> {
    // Debug: it builds in seconds and five messages do not need speed.
    println!("demo: building mbus-broker, mbus-producer and mbus-consumer (debug build)");
    let bins = workspace::build(false)?;
    let log = workspace::scratch_dir()?.join("demo-broker.log");
    let broker = Broker::start(&bins, &log)?;
    let (paddr, caddr) = broker.addrs();
    println!("demo: broker listening on {paddr} (producers) and {caddr} (consumers)");
    println!("demo: broker log in {}", show(&log));

    // From the earliest offset, so the consumer gets every order whether or not it has
    // subscribed by the time the first one is published.
    let count = ORDERS.len().to_string();
    let args = ["--from", "earliest", "--count", &count];
    let mut consumer = Proc::spawn("consumer", broker.consumer(TOPIC).args(args))?;
    let received = consumer.stdout_lines()?;
    println!(
        "demo: consumer started: mbus-consumer --topic {TOPIC} {}",
        args.join(" ")
    );
    println!();
    for order in ORDERS {
        thread::sleep(PAUSE);
        let mut producer = Proc::spawn(
            "producer",
            broker
                .producer(TOPIC)
                .args(["--message", order, "--header", "source=demo"]),
        )?;
        producer.finish(CLIENT_TIMEOUT)?;
        println!("producer  -> {TOPIC}: {order}");
        let got = receive(&received, &mut consumer)?;
        println!("consumer  <- {TOPIC}: {got}");
        if got != order {
            bail!("the consumer received `{got}` where `{order}` was published");
        }
    }
    consumer.finish(CLIENT_TIMEOUT)?;

    thread::sleep(PAUSE);
    println!();
    println!("demo: a consumer started now with --from earliest replays the whole topic");
    let mut late = Proc::spawn("late consumer", broker.consumer(TOPIC).args(args))?;
    let replayed = late.stdout_lines()?;
    for order in ORDERS {
        let got = receive(&replayed, &mut late)?;
        println!("late      <- {TOPIC}: {got}");
        if got != order {
            bail!("the late consumer received `{got}` where `{order}` was expected");
        }
    }
    late.finish(CLIENT_TIMEOUT)?;

    thread::sleep(PAUSE);
    println!();
    let args = [
        "--from",
        "-2",
        "--exit-at-end",
        "--format",
        "%o %T %h %s\\n",
    ];
    println!(
        "demo: the last two orders, with offset, time and headers, then exit: {}",
        args.join(" ")
    );
    let mut last = Proc::spawn("last two", broker.consumer(TOPIC).args(args))?;
    let tail = last.stdout_lines()?;
    for (offset, order) in ORDERS.iter().enumerate().skip(ORDERS.len() - 2) {
        let got = receive(&tail, &mut last)?;
        println!("last      <- {TOPIC}: {got}");
        let mut fields = got.splitn(4, ' ');
        let shown = (fields.next(), fields.nth(1), fields.next());
        if shown
            != (
                Some(&*offset.to_string()),
                Some("source=demo"),
                Some(*order),
            )
        {
            bail!("`{got}` is not offset {offset}, its time, source=demo and `{order}`");
        }
    }
    // It exits by itself once it has printed the topic up to its end.
    last.finish(CLIENT_TIMEOUT)?;

    println!();
    broker.stop()?;
    println!("demo: broker stopped cleanly (SIGTERM, exit 0)");
    println!("demo: done. Your turn, in three terminals:");
    println!("  cargo run -p mbus-broker");
    println!("  cargo run -p mbus-consumer -- --topic {TOPIC}");
    println!("  cargo run -p mbus-producer -- --topic {TOPIC} --message 'hello'");
    Ok(())
}

/// The consumer's next line, with a bounded wait.
fn receive(lines: &Receiver<String>, consumer: &mut Proc) -> anyhow::Result<String> {
    match lines.recv_timeout(CLIENT_TIMEOUT) {
        Ok(line) => Ok(line),
        Err(RecvTimeoutError::Timeout) => bail!(
            "{} printed nothing within {} s",
            consumer.name(),
            CLIENT_TIMEOUT.as_secs()
        ),
        Err(RecvTimeoutError::Disconnected) => {
            // It closed stdout, so it has exited or is about to: report how.
            consumer.finish(CLIENT_TIMEOUT)?;
            bail!("{} exited before printing all orders", consumer.name())
        }
    }
}
