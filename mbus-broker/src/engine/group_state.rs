//! The bytes a durable group's state is saved as (`STORAGE.md`, "Consumer groups"): the body
//! of one record of a group file. The store frames and checksums records; this is their body.

use std::time::Duration;

use super::group::{Settings, Snapshot};

/// The version byte that opens every record body.
pub const STATE_VERSION: u8 = 1;

/// Why saved bytes are no group state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("group state of version {0}, this broker reads version 1")]
    Version(u8),
    #[error("group state is cut short or malformed")]
    Malformed,
}

/// Encodes a snapshot as a record body.
pub fn encode(s: &Snapshot) -> Vec<u8> {
    let dead_letter = s.settings.dead_letter.as_bytes();
    let mut out = Vec::with_capacity(66 + dead_letter.len() + 12 * s.outstanding.len());
    out.push(STATE_VERSION);
    for n in [s.floor, s.next] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    let ack_wait = u64::try_from(s.settings.ack_wait.as_millis()).unwrap_or(u64::MAX);
    out.extend_from_slice(&ack_wait.to_be_bytes());
    out.extend_from_slice(&s.settings.max_deliver.to_be_bytes());
    out.extend_from_slice(&s.settings.max_ack_pending.to_be_bytes());
    for n in [s.redelivered, s.dead_lettered, s.lost] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.push(u8::try_from(dead_letter.len()).expect("topic names fit a byte"));
    out.extend_from_slice(dead_letter);
    let count = u32::try_from(s.outstanding.len()).expect("the window fits a u32");
    out.extend_from_slice(&count.to_be_bytes());
    for &(offset, attempts) in &s.outstanding {
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&attempts.to_be_bytes());
    }
    out
}

/// Decodes a record body.
pub fn decode(mut bytes: &[u8]) -> Result<Snapshot, StateError> {
    let version = take::<1>(&mut bytes)?[0];
    if version != STATE_VERSION {
        return Err(StateError::Version(version));
    }
    let floor = u64_of(&mut bytes)?;
    let next = u64_of(&mut bytes)?;
    let ack_wait = Duration::from_millis(u64_of(&mut bytes)?);
    let max_deliver = u32_of(&mut bytes)?;
    let max_ack_pending = u32_of(&mut bytes)?;
    let redelivered = u64_of(&mut bytes)?;
    let dead_lettered = u64_of(&mut bytes)?;
    let lost = u64_of(&mut bytes)?;
    let len = usize::from(take::<1>(&mut bytes)?[0]);
    let name = bytes.get(..len).ok_or(StateError::Malformed)?;
    let dead_letter = std::str::from_utf8(name).map_err(|_| StateError::Malformed)?;
    mbus_proto::validate_topic(dead_letter).map_err(|_| StateError::Malformed)?;
    bytes = &bytes[len..];
    let count = u32_of(&mut bytes)? as usize;
    if bytes.len() != count * 12 || floor > next || max_deliver == 0 || max_ack_pending == 0 {
        return Err(StateError::Malformed);
    }
    let mut outstanding = Vec::with_capacity(count);
    for _ in 0..count {
        outstanding.push((u64_of(&mut bytes)?, u32_of(&mut bytes)?));
    }
    Ok(Snapshot {
        settings: Settings {
            ack_wait,
            max_deliver,
            max_ack_pending,
            dead_letter: dead_letter.into(),
        },
        floor,
        next,
        outstanding,
        redelivered,
        dead_lettered,
        lost,
    })
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], StateError> {
    let head = bytes.get(..N).ok_or(StateError::Malformed)?;
    let out = head.try_into().expect("N bytes");
    *bytes = &bytes[N..];
    Ok(out)
}

fn u64_of(bytes: &mut &[u8]) -> Result<u64, StateError> {
    take::<8>(bytes).map(u64::from_be_bytes)
}

fn u32_of(bytes: &mut &[u8]) -> Result<u32, StateError> {
    take::<4>(bytes).map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            settings: Settings {
                ack_wait: Duration::from_secs(30),
                max_deliver: 5,
                max_ack_pending: 1000,
                dead_letter: "jobs.dlq".into(),
            },
            floor: 40,
            next: 46,
            outstanding: vec![(40, 1), (43, 2)],
            redelivered: 1,
            dead_lettered: 0,
            lost: 0,
        }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        assert_eq!(decode(&encode(&s)), Ok(s));
    }

    #[test]
    fn refuses_what_is_cut_or_of_another_version() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), Err(StateError::Malformed), "{n}");
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(decode(&other), Err(StateError::Version(2)));
    }
}
