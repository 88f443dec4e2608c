//! Typed errors of the frame decoder.

use crate::apiv2::ErrorCode;

/// Why a byte stream could not be decoded into a frame.
///
/// Every variant is fatal for the connection that sent the bytes: the stream can no longer be
/// split into frames reliably, so a peer answers with an `Error` frame carrying [`Self::code`]
/// and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix announces a body larger than the receiver accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The length the prefix announced.
        len: u32,
        /// The largest body the receiver accepts.
        max: u32,
    },
    /// The body is not a msgpack array of the shape its kind requires.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The body is a well-formed array whose kind this version does not define.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A `Hello` asked for a protocol version this implementation does not speak.
    #[error("unsupported protocol version {0} (this side speaks version {v} only)", v = crate::PROTOCOL_VERSION)]
    UnsupportedVersion(u8),
}

impl DecodeError {
    /// The error code a peer sends back in an `Error` frame for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::Malformed(_) => ErrorCode::Malformed,
            DecodeError::UnknownKind(_) => ErrorCode::UnknownKind,
            DecodeError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
        }
    }
}
