//! Checksummed records, the framing of the group and producer files (`STORAGE.md` sections 11
//! and 12): a body's length and crc32, both little-endian, then the body.

/// Bytes before a record's body: its length and its crc32, both little-endian.
pub const CHECKED_HEADER: usize = 8;

/// Appends a record of `body` to `out`.
pub fn record(out: &mut Vec<u8>, body: &[u8]) {
    let len = u32::try_from(body.len()).expect("a record under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// The whole records at the start of `bytes`, each body with the position after its record.
/// It stops at the first record that is cut short or fails its checksum: a crash tears only
/// the last.
pub fn records(mut bytes: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = bytes.get(..CHECKED_HEADER)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let body = bytes.get(CHECKED_HEADER..CHECKED_HEADER.checked_add(len)?)?;
        if crc32fast::hash(body) != crc {
            return None;
        }
        bytes = &bytes[CHECKED_HEADER + len..];
        at += CHECKED_HEADER + len;
        Some((body, at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_at_a_torn_or_damaged_record() {
        let mut bytes = Vec::new();
        record(&mut bytes, b"first");
        record(&mut bytes, b"second");
        let all: Vec<_> = records(&bytes).collect();
        assert_eq!(all, vec![(&b"first"[..], 13), (&b"second"[..], 27)]);
        for cut in 1..CHECKED_HEADER + 6 {
            let n = bytes.len() - cut;
            assert_eq!(records(&bytes[..n]).count(), 1, "{cut}");
        }
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(records(&bytes).count(), 1);
        assert_eq!(records(&[]).count(), 0);
    }
}
