//! A blocking mbus consumer: subscribes to topics over one TCP connection and hands out what the
//! broker delivers.
//!
//! [`Consumer::next_event`] reads the socket in large chunks and lends each message out of its
//! read buffer, so receiving costs no allocation and no copy. The broker's Pings are answered
//! inside the consumer and never surface.
//!
//! ```no_run
//! use mbus_consumer::{Consumer, ConsumerOptions, Event};
//! use mbus_proto::Start;
//!
//! let mut consumer = Consumer::connect("127.0.0.1:9991", &ConsumerOptions::default())?;
//! consumer.subscribe("orders", Start::Earliest)?;
//! loop {
//!     if let Event::Message { offset, data, .. } = consumer.next_event()? {
//!         println!("{offset}: {}", String::from_utf8_lossy(data));
//!     }
//! }
//! # Ok::<(), mbus_consumer::ConsumerError>(())
//! ```
#![warn(missing_docs)]

mod consumer;
mod event;
mod options;

pub use consumer::Consumer;
pub use event::Event;
pub use mbus_client::ClientError as ConsumerError;
pub use mbus_client::ConnectOptions;
pub use mbus_client::Reconnect;
pub use mbus_proto::{Headers, Start};
pub use options::ConsumerOptions;
