//! One line of `mbus-consumer --json` output, and the `p<producer>-<seq>` messages the
//! integration run publishes.

use serde_json::Value;

/// A delivered message as the consumer printed it.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub offset: u64,
    pub data: String,
}

/// Which producer published a message, and its place in that producer's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    pub producer: usize,
    pub seq: u64,
}

impl MessageId {
    /// The message text producer `producer` publishes as its `seq`-th line.
    pub fn data(self) -> String {
        format!("p{}-{}", self.producer, self.seq)
    }

    /// Reads `p<producer>-<seq>` back; anything else is `None`.
    pub fn parse(data: &str) -> Option<MessageId> {
        let (producer, seq) = data.strip_prefix('p')?.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(producer) || !digits(seq) {
            return None;
        }
        Some(MessageId {
            producer: producer.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}-{}", self.producer, self.seq)
    }
}

/// Parses `{"topic":"t","offset":0,"data":"hi"}`. A message that is not UTF-8 comes as
/// `data_base64`, which no integration message should, so it is an error here.
pub fn parse(line: &str) -> Result<Delivery, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| value.get(name).ok_or_else(|| format!("no `{name}` field"));
    let topic = field("topic")?
        .as_str()
        .ok_or("`topic` is not a string")?
        .to_owned();
    let offset = field("offset")?
        .as_u64()
        .ok_or("`offset` is not an unsigned integer")?;
    if value.get("data_base64").is_some() {
        return Err("data is not UTF-8 (`data_base64`)".to_owned());
    }
    let data = field("data")?
        .as_str()
        .ok_or("`data` is not a string")?
        .to_owned();
    Ok(Delivery {
        topic,
        offset,
        data,
    })
}
