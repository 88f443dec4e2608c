//! Example sessions as text a test can replay: the files in `transcripts/` beside `PROTOCOL.md`'s
//! examples, read here into the frames each side sends, so that a client's author can check a
//! client against them as the broker's tests check the broker.
//!
//! A transcript is a sequence of steps. Each step is a comment line naming who sends what,
//! `# <sender> -> <receiver>: <what>`, followed by one line of the frame's bytes in hex, length
//! prefix included. The sender is `broker`, or a client (`producer`, `consumer`, `client`). A
//! last comment `# broker closes the connection`, with no bytes after it, says the broker then
//! closes. In a frame the broker sends, `??` stands for a byte whose value the session does not
//! fix (the time the broker stamped on a message): a replay takes any byte there.

/// One frame of a transcript, or the broker closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The comment that names the step, without its leading `# `.
    pub comment: String,
    /// Whether the client sends it (otherwise the broker does).
    pub from_client: bool,
    /// The frame's bytes, length prefix included; `None` for the broker closing. A byte the
    /// session does not fix is 0 here, and listed in `any`.
    pub bytes: Option<Vec<u8>>,
    /// The positions in `bytes` of the bytes written `??`, which may hold anything.
    pub any: Vec<usize>,
}

impl Step {
    /// Whether `got` is this step's frame, its `??` bytes being anything.
    pub fn matches(&self, got: &[u8]) -> bool {
        let Some(want) = &self.bytes else {
            return false;
        };
        want.len() == got.len()
            && want
                .iter()
                .zip(got)
                .enumerate()
                .all(|(i, (w, g))| w == g || self.any.contains(&i))
    }
}

/// Why a transcript could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transcript line {line}: {reason}")]
pub struct TranscriptError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The steps of a transcript's text.
pub fn parse(text: &str) -> Result<Vec<Step>, TranscriptError> {
    let mut steps: Vec<Step> = Vec::new();
    let mut awaiting_bytes = false;
    for (i, line) in text.lines().enumerate() {
        let err = |reason: &str| TranscriptError {
            line: i + 1,
            reason: reason.to_owned(),
        };
        if let Some(comment) = line.strip_prefix("# ") {
            if awaiting_bytes {
                return Err(err("a step without bytes"));
            }
            let closes = comment == "broker closes the connection";
            let (who, _) = comment
                .split_once(" -> ")
                .filter(|_| !closes)
                .unwrap_or(("broker", ""));
            if !closes && !comment.contains(" -> ") {
                return Err(err("a comment that names no sender"));
            }
            steps.push(Step {
                comment: comment.to_owned(),
                from_client: who != "broker",
                bytes: None,
                any: Vec::new(),
            });
            awaiting_bytes = !closes;
        } else if awaiting_bytes {
            let step = steps.last_mut().expect("a step was pushed");
            let mut bytes = Vec::new();
            for (i, b) in line.split_whitespace().enumerate() {
                if b == "??" && !step.from_client {
                    step.any.push(i);
                    bytes.push(0);
                } else {
                    bytes.push(
                        u8::from_str_radix(b, 16).map_err(|_| err("bytes that are not hex"))?,
                    );
                }
            }
            step.bytes = Some(bytes);
            awaiting_bytes = false;
        } else if !line.trim().is_empty() {
            return Err(err("bytes without a comment naming them"));
        }
    }
    if awaiting_bytes {
        return Err(TranscriptError {
            line: text.lines().count(),
            reason: "a step without bytes".to_owned(),
        });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_name_their_sender_and_carry_their_bytes() {
        let text = "# producer -> broker: Ping\n00 00 00 02 91 0b\n\
                    # broker -> producer: Pong\n00 00 00 02 91 0c\n\
                    # broker closes the connection\n";
        let steps = parse(text).unwrap();
        assert_eq!(steps.len(), 3);
        assert!(steps[0].from_client && !steps[1].from_client && !steps[2].from_client);
        assert_eq!(
            steps[1].bytes.as_deref(),
            Some(&[0, 0, 0, 2, 0x91, 0x0c][..])
        );
        assert_eq!(steps[2].bytes, None);
        let any = parse("# broker -> consumer: Ping\n00 00 00 02 91 ??\n").unwrap();
        assert_eq!(any[0].any, [5]);
        assert!(
            any[0].matches(&[0, 0, 0, 2, 0x91, 0x0b]) && any[0].matches(&[0, 0, 0, 2, 0x91, 0])
        );
        assert!(!any[0].matches(&[0, 0, 0, 3, 0x91, 0x0b]));
        for bad in [
            "# consumer -> broker: Ping\n00 00 00 02 91 ??\n",
            "00 01\n",
            "# producer -> broker: Ping\n",
            "# producer -> broker: Ping\nzz\n",
            "# nobody\n00\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
