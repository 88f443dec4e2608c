//! For the parser tests of every target: server output fed in two pieces split anywhere must
//! give the same events as when it comes whole.

use super::{Event, Parser};

/// An event with its payload copied out of the buffer, so that events can be compared.
#[derive(Debug, PartialEq)]
pub enum Owned {
    Message(Vec<u8>),
    /// Any other event, by its debug name: `Pong`, `Published(4)`.
    Other(String),
}

impl From<Event<'_>> for Owned {
    fn from(event: Event<'_>) -> Owned {
        match event {
            Event::Message(p) => Owned::Message(p.to_vec()),
            other => Owned::Other(format!("{other:?}")),
        }
    }
}

/// The events of `bytes` when it arrives whole, after checking that every split into two
/// reads gives the same events and consumes every byte.
pub fn parse_split_anywhere(parse: Parser, bytes: &[u8]) -> Vec<Owned> {
    let whole = fed_in_two(parse, bytes, bytes.len());
    for cut in 0..bytes.len() {
        assert_eq!(fed_in_two(parse, bytes, cut), whole, "cut at {cut}");
    }
    whole
}

fn fed_in_two(parse: Parser, bytes: &[u8], cut: usize) -> Vec<Owned> {
    let mut events = Vec::new();
    let mut buf = bytes[..cut].to_vec();
    let mut pos = 0;
    for more in [&bytes[cut..], &[][..]] {
        while let Some((event, used)) = parse(&buf[pos..]).unwrap() {
            events.push(Owned::from(event));
            pos += used;
        }
        buf.extend_from_slice(more);
    }
    assert_eq!(pos, bytes.len(), "every byte is consumed (cut at {cut})");
    events
}
