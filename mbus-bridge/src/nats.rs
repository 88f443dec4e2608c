//! Connecting to the NATS cluster: a comma-separated list of server URLs, any of which serves;
//! the client then learns the cluster's other nodes and fails over between them by itself.

use std::time::Duration;

use anyhow::Context;
use async_nats::{ServerAddr, jetstream};

/// How long a JetStream reply (a PubAck, an API answer) is waited for: long enough for a new
/// stream leader to be elected, short enough that a reply lost with a node does not stall a
/// session for long.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The servers `urls` (comma-separated) names; checked at start, since no retry mends a typo.
pub fn servers(urls: &str) -> anyhow::Result<Vec<ServerAddr>> {
    urls.split(',')
        .map(|url| url.trim().parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid NATS server URL in {urls:?}"))
}

/// JetStream through a client connected to one of `urls` (comma-separated), its replies
/// waited for [`REPLY_TIMEOUT`].
pub async fn jetstream(urls: &str) -> anyhow::Result<jetstream::Context> {
    let client = async_nats::connect(servers(urls)?)
        .await
        .with_context(|| format!("cannot connect to NATS at {urls}"))?;
    let mut js = jetstream::new(client);
    js.set_timeout(REPLY_TIMEOUT);
    Ok(js)
}
