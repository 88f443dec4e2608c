//! A message's headers across the bridge: mbus headers become NATS headers of the same name
//! (a value that is not printable text goes base64-encoded under `Mbus-B64-<name>`), and the
//! message's origin rides along as `Mbus-Source`, `Mbus-Topic`, `Mbus-Offset` and `Mbus-Time`.
//! Coming back, the origin becomes the mbus headers `mbus-origin` and `mbus-origin-time`, and
//! every other header is restored as it was.

use async_nats::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The NATS header of a base64-encoded mbus header value.
const B64: &str = "Mbus-B64-";
pub const SOURCE: &str = "Mbus-Source";
pub const TOPIC: &str = "Mbus-Topic";
pub const OFFSET: &str = "Mbus-Offset";
pub const TIME: &str = "Mbus-Time";
/// The mbus headers an imported message gains: where it was published and when.
pub const ORIGIN: &str = "mbus-origin";
pub const ORIGIN_TIME: &str = "mbus-origin-time";

/// The message's id in JetStream, which its duplicate window deduplicates by: the same for
/// every resend of one message of one topic of one source broker.
pub fn message_id(source: &str, topic: &str, offset: u64) -> String {
    format!("{source}:{topic}:{offset}")
}

/// Whether `value` can be a NATS header value as it is.
fn printable(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?;
    (!text.chars().any(|c| c.is_control())).then_some(text)
}

/// The NATS headers of an mbus message of `topic` at `offset`, stored at `time`.
pub fn to_nats<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    source: &str,
    topic: &str,
    offset: u64,
    time: u64,
) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        match printable(value) {
            Some(text) => map.append(name, text),
            None => map.append(
                format!("{B64}{name}").as_str(),
                STANDARD.encode(value).as_str(),
            ),
        }
    }
    map.insert(SOURCE, source);
    map.insert(TOPIC, topic);
    map.insert(OFFSET, offset.to_string().as_str());
    map.insert(TIME, time.to_string().as_str());
    map
}

/// The mbus headers of a message that came with NATS headers `map`: the original headers in
/// their order, then where it came from.
pub fn from_nats(map: Option<&HeaderMap>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(map) = map else {
        return out;
    };
    let get = |name: &str| map.get(name).map(|v| v.as_str().to_owned());
    for (name, values) in map.iter() {
        let name: &str = name.as_ref();
        if name.starts_with("Nats-") || [SOURCE, TOPIC, OFFSET, TIME].contains(&name) {
            continue;
        }
        for value in values {
            match name.strip_prefix(B64) {
                Some(original) => match STANDARD.decode(value.as_str()) {
                    Ok(bytes) => out.push((original.to_owned(), bytes)),
                    Err(_) => out.push((name.to_owned(), value.as_str().as_bytes().to_vec())),
                },
                None => out.push((name.to_owned(), value.as_str().as_bytes().to_vec())),
            }
        }
    }
    if let (Some(source), Some(topic), Some(offset)) = (get(SOURCE), get(TOPIC), get(OFFSET)) {
        out.push((
            ORIGIN.to_owned(),
            message_id(&source, &topic, offset.parse().unwrap_or(0)).into_bytes(),
        ));
    }
    if let Some(time) = get(TIME) {
        out.push((ORIGIN_TIME.to_owned(), time.into_bytes()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cross_and_come_back_with_their_origin() {
        let original: Vec<(&str, &[u8])> = vec![
            ("trace-id", b"7f3a"),
            ("raw", &[0, 159, 146, 150]),
            ("trace-id", b"second"),
        ];
        let map = to_nats(
            original.iter().copied(),
            "a",
            "orders",
            42,
            1_796_205_600_000,
        );
        assert_eq!(map.get("Nats-Msg-Id"), None, "the id is set apart");
        assert_eq!(map.get(OFFSET).unwrap().as_str(), "42");
        let back = from_nats(Some(&map));
        let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"raw") && names.contains(&ORIGIN),
            "{names:?}"
        );
        let values = |name: &str| -> Vec<Vec<u8>> {
            back.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(
            values("trace-id"),
            vec![b"7f3a".to_vec(), b"second".to_vec()]
        );
        assert_eq!(values("raw"), vec![vec![0, 159, 146, 150]]);
        assert_eq!(values(ORIGIN), vec![b"a:orders:42".to_vec()]);
        assert_eq!(values(ORIGIN_TIME), vec![b"1796205600000".to_vec()]);
        assert!(from_nats(None).is_empty());
    }
}
