//! Connecting to the NATS cluster: a comma-separated list of server URLs, any of which serves;
//! the client then learns the cluster's other nodes and fails over between them by itself.

use anyhow::Context;
use async_nats::ServerAddr;

/// A client connected to one of `urls` (comma-separated).
pub async fn connect(urls: &str) -> anyhow::Result<async_nats::Client> {
    let servers = urls
        .split(',')
        .map(|url| url.trim().parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid NATS server URL in {urls:?}"))?;
    async_nats::connect(servers)
        .await
        .with_context(|| format!("cannot connect to NATS at {urls}"))
}
