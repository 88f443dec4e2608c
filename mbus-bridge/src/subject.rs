//! Where an mbus topic goes in NATS: the subject `<prefix>.<topic>`, and back. Topic names
//! (`A-Z a-z 0-9 . _ -`) are valid subjects as they are; a `.` in a topic makes more subject
//! tokens, which a wildcard `<prefix>.>` still matches.

/// The subject that carries `topic`.
pub fn of_topic(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{topic}")
}

/// The topic a subject under `prefix` carries, if it is one: what follows `<prefix>.`, when
/// that is a valid topic name.
pub fn topic_of<'a>(prefix: &str, subject: &'a str) -> Option<&'a str> {
    let topic = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    mbus_proto::validate_topic(topic).ok().map(|()| topic)
}

/// The wildcard that matches every topic's subject under `prefix`.
pub fn all(prefix: &str) -> String {
    format!("{prefix}.>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_subjects_and_back() {
        for topic in ["orders", "eu.orders_v2", "a-b"] {
            let subject = of_topic("mbus", topic);
            assert_eq!(topic_of("mbus", &subject), Some(topic));
        }
        assert_eq!(of_topic("mbus", "eu.orders"), "mbus.eu.orders");
        assert_eq!(topic_of("mbus", "other.orders"), None);
        assert_eq!(topic_of("mbus", "mbusorders"), None);
        assert_eq!(topic_of("mbus", "mbus."), None);
        assert_eq!(topic_of("mbus", "mbus.a b"), None);
        assert_eq!(all("mbus"), "mbus.>");
    }
}
