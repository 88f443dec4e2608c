//! Checks one consumer's `--json` output from the integration run: every message exactly once,
//! offsets counting up from 0 by one, and each producer's messages in the order it sent them.

mod delivery;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

pub use delivery::MessageId;
use delivery::parse;

/// What one consumer should have received.
pub struct Expected<'a> {
    pub topic: &'a str,
    pub producers: usize,
    pub per_producer: u64,
}

impl Expected<'_> {
    pub fn total(&self) -> u64 {
        self.producers as u64 * self.per_producer
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Malformed,
    Lost,
    Duplicate,
    Reordered,
}

/// The first thing wrong with a stream, with the line where it showed.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub detail: String,
    /// 1-based line number and text; none when the stream simply ended too early.
    pub line: Option<(usize, String)>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Malformed => "malformed",
            Kind::Lost => "lost",
            Kind::Duplicate => "duplicate",
            Kind::Reordered => "reordered",
        };
        write!(f, "{kind}: {}", self.detail)?;
        if let Some((n, text)) = &self.line {
            write!(f, " (line {n}: {text})")?;
        }
        Ok(())
    }
}

/// Checks `lines` against `expected` and reports the first problem.
pub fn check(lines: &[String], expected: &Expected) -> Result<(), Failure> {
    let fail = |kind, i: usize, detail: String| Failure {
        kind,
        detail,
        line: Some((i + 1, lines[i].clone())),
    };
    let mut items = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let d = parse(line).map_err(|why| fail(Kind::Malformed, i, why))?;
        if d.topic != expected.topic {
            let why = format!("topic `{}`, expected `{}`", d.topic, expected.topic);
            return Err(fail(Kind::Malformed, i, why));
        }
        let id = MessageId::parse(&d.data)
            .filter(|id| id.producer < expected.producers && id.seq < expected.per_producer)
            .ok_or_else(|| {
                let why = format!("`{}` is not a message this run published", d.data);
                fail(Kind::Malformed, i, why)
            })?;
        items.push((d.offset, id));
    }

    // Where each offset and message first shows, to tell one that comes late from one that
    // never comes.
    let mut first_offset = HashMap::new();
    let mut first_message = HashMap::new();
    for (i, &(offset, id)) in items.iter().enumerate() {
        first_offset.entry(offset).or_insert(i);
        first_message.entry(id).or_insert(i);
    }

    let mut next_offset = 0;
    let mut next_seq = vec![0; expected.producers];
    for (i, &(offset, id)) in items.iter().enumerate() {
        if let Some(&j) = first_message.get(&id).filter(|&&j| j != i) {
            let why = format!("{id} was already delivered on line {}", j + 1);
            return Err(fail(Kind::Duplicate, i, why));
        }
        if let Some(&j) = first_offset.get(&offset).filter(|&&j| j != i) {
            let why = format!("offset {offset} was already delivered on line {}", j + 1);
            return Err(fail(Kind::Duplicate, i, why));
        }
        if offset != next_offset {
            let (kind, why) = if first_offset.contains_key(&next_offset) {
                let why = format!("offset {offset} arrived before offset {next_offset}");
                (Kind::Reordered, why)
            } else {
                (Kind::Lost, format!("offset {next_offset} never arrived"))
            };
            return Err(fail(kind, i, why));
        }
        next_offset = offset + 1;
        let want = MessageId {
            producer: id.producer,
            seq: next_seq[id.producer],
        };
        if id != want {
            let (kind, why) = if first_message.contains_key(&want) {
                (Kind::Reordered, format!("{id} arrived before {want}"))
            } else {
                (Kind::Lost, format!("{want} never arrived"))
            };
            return Err(fail(kind, i, why));
        }
        next_seq[id.producer] = id.seq + 1;
    }

    if next_offset != expected.total() {
        return Err(Failure {
            kind: Kind::Lost,
            detail: format!(
                "got {} of {} messages; offset {next_offset} and later never arrived",
                items.len(),
                expected.total()
            ),
            line: None,
        });
    }
    Ok(())
}
