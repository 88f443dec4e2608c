//! The mbus wire protocol: versioned frame types and length-prefixed msgpack framing, with no I/O.
//!
//! Every frame on an mbus connection is a 4-byte big-endian length followed by that many bytes of
//! msgpack: one array whose first element is the frame kind. [`apiv2`] defines the frames of
//! protocol version 2, and [`batch`] the batches of messages they carry; [`frame`] splits a byte stream into frames and appends encoded frames to a
//! buffer. Nothing here reads or writes a socket, so the crate serves any client, blocking or not.
//!
//! ```
//! use mbus_proto::{Frame, decode, DEFAULT_MAX_FRAME};
//!
//! let mut buf = Vec::new();
//! Frame::publish("orders", b"look ma! a new order").encode(&mut buf);
//!
//! // A decoder sees a frame only once all of it has arrived.
//! assert_eq!(decode(&buf[..3], DEFAULT_MAX_FRAME).unwrap(), None);
//! let (frame, used) = decode(&buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
//! assert_eq!(used, buf.len());
//! assert_eq!(frame, Frame::publish("orders", b"look ma! a new order"));
//! ```
//!
//! The byte-level description for implementers in other languages is `PROTOCOL.md` at the root of
//! the repository.
#![warn(missing_docs)]

pub mod apiv2;
pub mod batch;
pub mod client;
pub mod error;
mod fast;
pub mod frame;
pub mod group;
mod header;
pub mod producer;
mod serde_impl;
pub mod topic;
pub mod transcript;

pub use apiv2::{ErrorCode, Frame, GroupStats, Message, PROTOCOL_VERSION, Role, Start};
pub use batch::{Batch, BatchBuilder, BatchError, Headers, MessageRef};
pub use error::DecodeError;
pub use fast::{delivery_head, delivery_len, encode_assign, encode_delivery};
pub use frame::{DEFAULT_MAX_FRAME, HEADER_LEN, check, decode, max_publish_data, publish_len};
pub use group::{AckAction, AckRanges, AckRangesError, GroupOptions, validate_group};
pub use producer::{MAX_PRODUCER_ID_LEN, validate_producer_id};
pub use topic::{MAX_TOPIC_LEN, TopicError, validate_topic};
