//! Reading what the core sends a consumer-group member, as a member reads it.

use mbus_broker::engine::{ConnId, Core, Progress};
use mbus_proto::{Frame, decode};

use super::{Owned, frames};

/// What a member was sent, read as a member reads it.
#[derive(Debug, Default)]
pub struct Got {
    /// Each message given: offset, attempt, payload.
    pub messages: Vec<(u64, u32, Vec<u8>)>,
    /// Every other frame.
    pub other: Vec<Owned>,
    /// Headers of each message given, in the same order.
    pub headers: Vec<Vec<(String, Vec<u8>)>>,
}

impl Got {
    pub fn offsets(&self) -> Vec<u64> {
        self.messages.iter().map(|m| m.0).collect()
    }
}

/// Everything connection `id` is owed, as a member: each `Assign` names the offsets of the
/// `Deliver` after it that are the member's; the rest of the run is dropped.
pub fn take(core: &mut Core, id: ConnId) -> Got {
    let mut ready = Vec::new();
    core.take_ready(&mut ready);
    let mut sink = Vec::new();
    while core.write(id, &mut sink).unwrap() != Progress::Drained {}
    parse(&sink)
}

pub fn parse(mut bytes: &[u8]) -> Got {
    let mut got = Got::default();
    let mut assigned: Option<(u32, std::ops::Range<u64>)> = None;
    while let Some((frame, n)) = decode(bytes, u32::MAX).unwrap() {
        match frame {
            Frame::Assign {
                attempt,
                first,
                count,
                ..
            } => {
                assert!(assigned.is_none(), "two Assigns in a row");
                assigned = Some((attempt, first..first + u64::from(count)));
            }
            Frame::Deliver { offset, batch, .. } if assigned.is_some() => {
                let (attempt, range) = assigned.take().unwrap();
                let run = offset..offset + batch.len() as u64;
                assert!(
                    run.start <= range.start && range.end <= run.end,
                    "assigned {range:?} outside the run {run:?}"
                );
                for (m, o) in batch.iter().zip(offset..) {
                    if range.contains(&o) {
                        got.messages.push((o, attempt, m.data.to_vec()));
                        got.headers.push(
                            m.headers
                                .iter()
                                .map(|(k, v)| (k.to_owned(), v.to_vec()))
                                .collect(),
                        );
                    }
                }
            }
            other => {
                assert!(
                    assigned.is_none(),
                    "{other:?} between an Assign and its Deliver"
                );
                got.other.extend(frames(&bytes[..n]));
            }
        }
        bytes = &bytes[n..];
    }
    assert!(bytes.is_empty());
    got
}
