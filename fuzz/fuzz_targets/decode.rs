//! Fuzzes the frame decoder: any bytes, split anywhere, must decode or fail cleanly, and every
//! frame that decodes must encode to bytes that decode to the same frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mbus_proto::{DEFAULT_MAX_FRAME, decode};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, n))) = decode(rest, DEFAULT_MAX_FRAME) {
        assert!(n <= rest.len());
        let again = frame.to_bytes();
        let (round, m) = decode(&again, u32::MAX).unwrap().unwrap();
        assert_eq!(round, frame);
        assert_eq!(m, again.len());
        // Any shorter prefix of a whole frame is incomplete, never an error.
        assert_eq!(decode(&rest[..n - 1], DEFAULT_MAX_FRAME), Ok(None));
        rest = &rest[n..];
    }
});
