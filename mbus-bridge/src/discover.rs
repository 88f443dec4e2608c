//! Which topics an export with `--topic-prefix` takes: those the source broker's monitoring port
//! lists (`GET /v1/topics`) whose names start with the prefix, asked again every few seconds so
//! that a topic created later is exported too.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

/// Most bytes of a topic list read; a broker holds at most `--max-topics` of 255 bytes or less.
const MAX_RESPONSE: usize = 16 << 20;

/// The names of the topics the broker's monitoring port at `http` lists.
pub fn topics(http: &str) -> anyhow::Result<Vec<String>> {
    let addr = http
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {http}"))?
        .next()
        .with_context(|| format!("no address for {http}"))?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to the broker's monitoring port at {http}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /v1/topics HTTP/1.1\r\nHost: {http}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    let body = loop {
        let n = stream
            .read(&mut chunk)
            .context("cannot read the topic list")?;
        bytes.extend_from_slice(&chunk[..n]);
        ensure!(
            bytes.len() <= MAX_RESPONSE,
            "the topic list is over {MAX_RESPONSE} bytes"
        );
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&bytes).context("not an HTTP response")? {
            httparse::Status::Complete(head) => {
                ensure!(
                    response.code == Some(200),
                    "GET /v1/topics: {:?}",
                    response.code
                );
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .context("GET /v1/topics: no Content-Length")?;
                ensure!(
                    length <= MAX_RESPONSE,
                    "the topic list is over {MAX_RESPONSE} bytes"
                );
                while bytes.len() < head + length {
                    let n = stream.read(&mut chunk)?;
                    if n == 0 {
                        bail!("the topic list was cut short");
                    }
                    bytes.extend_from_slice(&chunk[..n]);
                }
                break &bytes[head..head + length];
            }
            httparse::Status::Partial if n == 0 => bail!("the broker closed before answering"),
            httparse::Status::Partial => {}
        }
    };
    let json: serde_json::Value =
        serde_json::from_slice(body).context("the topic list is no JSON")?;
    let names = json["topics"]
        .as_array()
        .context("the topic list has no `topics`")?
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    Ok(names)
}

/// The topics of `names` that start with `prefix` and are not in `joined`.
pub fn new_matches(names: &[String], prefix: &str, joined: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.starts_with(prefix) && !joined.contains(n))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_topics_under_the_prefix_are_taken() {
        let names = ["eu.orders", "eu.pay", "us.orders"].map(String::from);
        let joined = ["eu.orders".to_owned()];
        assert_eq!(new_matches(&names, "eu.", &joined), ["eu.pay"]);
        assert!(new_matches(&names, "asia.", &joined).is_empty());
    }
}
