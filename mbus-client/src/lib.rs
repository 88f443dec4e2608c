//! What the blocking mbus clients share: a [`Connection`] over `std::net::TcpStream` that drives
//! [`mbus_proto::client::ClientProtocol`], the [`ClientError`] it reports, and (with the `cli`
//! feature) the flags and `main` of the `mbus-producer` and `mbus-consumer` commands.
//!
//! The protocol itself (handshake, inbound buffer, answers to `Ping`, `Error` frames) lives in
//! `mbus-proto` without I/O; this crate only moves its bytes over a socket.
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod connection;
mod error;
mod options;
mod reconnect;

pub use connection::Connection;
pub use error::ClientError;
pub use options::ConnectOptions;
pub use reconnect::{Reconnect, is_lost};
