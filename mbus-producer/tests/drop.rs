//! A producer dropped with messages still buffered writes them before it goes, so that they are
//! not lost without a word; `finish` is what says they were stored.

use std::time::{Duration, Instant};

use mbus_broker::{Broker, BrokerConfig};
use mbus_producer::{Producer, ProducerOptions};

#[test]
fn a_dropped_producer_writes_what_it_still_buffers() {
    let broker = Broker::spawn(BrokerConfig::ephemeral()).unwrap();
    let mut producer =
        Producer::connect(broker.producer_addr(), &ProducerOptions::default()).unwrap();
    for i in 0..3u8 {
        producer.publish("kept", &[i]).unwrap();
    }
    // Three small messages stay in the buffer: nothing has been written yet.
    assert_eq!(broker.stats().messages, 0);
    drop(producer);
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.stats().messages < 3 {
        assert!(
            Instant::now() < deadline,
            "the broker got {:?}",
            broker.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let server = broker.stop().unwrap();
    assert_eq!(server.core().topic_range("kept"), Some(0..3));
    assert_eq!(server.core().message("kept", 2), Some(&[2u8][..]));
}
