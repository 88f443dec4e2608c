//! The JetStream stream the bridge uses: found, or created when asked, with its replicas and a
//! duplicate window, which is what makes a resend after a restart land once.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};

/// How the stream is made when `--create-stream` asks for it.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    pub replicas: usize,
    /// How long JetStream remembers a message id to drop its duplicates.
    pub duplicate_window: Duration,
}

/// The stream `name`, created from `spec` if it does not exist and one is given.
pub async fn ensure(
    js: &jetstream::Context,
    name: &str,
    spec: Option<&StreamSpec>,
) -> anyhow::Result<stream::Stream> {
    let Some(spec) = spec else {
        return js
            .get_stream(name)
            .await
            .with_context(|| format!("cannot find stream {name} (--create-stream makes it)"));
    };
    let config = stream::Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        num_replicas: spec.replicas,
        duplicate_window: spec.duplicate_window,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.with_context(|| {
        format!(
            "cannot create stream {name} with {} replicas",
            spec.replicas
        )
    })
}
