//! The mbus broker: topics kept as in-memory logs, fed by producers and dispatched to consumers.
//!
//! [`engine::Core`] holds all state and logic and knows nothing of sockets; [`server`] is the
//! single-threaded `mio` event loop that feeds it bytes and writes what it owes.

pub mod config;
mod embed;
pub mod engine;
pub mod server;
pub mod store;
#[cfg(feature = "cli")]
mod units;

pub use config::BrokerConfig;
pub use embed::Broker;
pub use server::Server;
