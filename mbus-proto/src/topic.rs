//! Topic name rules, shared by the broker and every client so that both reject the same names.

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 255;

/// Why a topic name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is the empty string.
    #[error("topic name is empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("topic name is {0} bytes long, the limit is {MAX_TOPIC_LEN}")]
    TooLong(usize),
    /// The name holds a character outside `A-Z a-z 0-9 . _ -`.
    #[error("topic name holds {0:?} at byte {1}; allowed are A-Z a-z 0-9 . _ -")]
    BadChar(char, usize),
}

/// Checks a topic name: 1 to 255 bytes of ASCII letters, digits, `.`, `_` and `-`.
///
/// The set is narrow on purpose: a name is safe to print, to use as a file name and to put in a
/// shell command, whatever a client sent.
pub fn validate_topic(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(name.len()));
    }
    match name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some((at, c)) => Err(TopicError::BadChar(c, at)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "orders",
            "a",
            "eu-west.orders_v2",
            &"x".repeat(MAX_TOPIC_LEN),
        ] {
            assert_eq!(validate_topic(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_empty_long_and_odd_names() {
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert_eq!(
            validate_topic(&"x".repeat(MAX_TOPIC_LEN + 1)),
            Err(TopicError::TooLong(256))
        );
        assert_eq!(validate_topic("a b"), Err(TopicError::BadChar(' ', 1)));
        assert_eq!(validate_topic("a\nb"), Err(TopicError::BadChar('\n', 1)));
        assert_eq!(validate_topic("ü"), Err(TopicError::BadChar('ü', 0)));
        assert_eq!(validate_topic("../x"), Err(TopicError::BadChar('/', 2)));
    }
}
