//! A blocking mbus producer: publishes messages over one TCP connection and tracks the broker's
//! confirms.
//!
//! Publishes go out back to back without a round trip each: [`Producer::publish`] appends the
//! frame to a write buffer and returns the message's sequence number, the buffer is written once it
//! passes 64 KiB, and the broker confirms cumulatively. [`Producer::wait_confirmed`] flushes and
//! blocks until the broker has confirmed everything, which is the moment a message is safe.
//!
//! With [`ProducerOptions::identity`] and [`ProducerOptions::reconnect`] set, the producer is
//! idempotent and survives the broker: a lost connection is opened again and whatever the broker
//! had not confirmed is resent, and the broker stores each publish once.
//!
//! ```no_run
//! use mbus_producer::{Producer, ProducerOptions};
//!
//! let mut producer = Producer::connect("127.0.0.1:9990", &ProducerOptions::default())?;
//! producer.publish("orders", b"look ma! a new order")?;
//! producer.finish()?;
//! # Ok::<(), mbus_producer::ProducerError>(())
//! ```
#![warn(missing_docs)]

mod error;
mod options;
mod producer;

pub use error::{ClientError, ProducerError};
pub use mbus_client::{ConnectOptions, Reconnect};
pub use options::{ProducerOptions, generated_identity};
pub use producer::Producer;
