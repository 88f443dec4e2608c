//! What an idempotent producer's `Identify` frame carries: the rules of its identity.

use crate::topic::{TopicError, validate_topic};

/// The longest producer identity, in bytes.
pub const MAX_PRODUCER_ID_LEN: usize = 64;

/// Checks a producer identity: 1 to 64 bytes of `A-Z a-z 0-9 . _ -`, the characters of topic
/// names.
pub fn validate_producer_id(id: &str) -> Result<(), TopicError> {
    validate_topic(id)?;
    if id.len() > MAX_PRODUCER_ID_LEN {
        return Err(TopicError::TooLong(id.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_follow_topic_rules_up_to_64_bytes() {
        assert_eq!(validate_producer_id("host-1.4242.9f3a"), Ok(()));
        assert_eq!(validate_producer_id(&"p".repeat(64)), Ok(()));
        assert_eq!(
            validate_producer_id(&"p".repeat(65)),
            Err(TopicError::TooLong(65))
        );
        assert_eq!(validate_producer_id(""), Err(TopicError::Empty));
        assert!(validate_producer_id("a b").is_err());
    }
}
