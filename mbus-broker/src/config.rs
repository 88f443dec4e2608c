//! The broker's configuration, one struct that is also its command line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::CoreConfig;
use crate::engine::memlog::Retention;
use crate::store::{FileStorage, Fsync, MIN_OPEN_FILES, StoreConfig};

/// The most segment files a broker keeps open unless told otherwise.
pub const DEFAULT_MAX_OPEN_FILES: usize = 4096;

/// Everything a broker can be told at start. Each field is a command-line flag of `mbus-broker`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[non_exhaustive]
pub struct BrokerConfig {
    /// Address to listen on for producers.
    #[cfg_attr(feature = "cli", arg(long, default_value = "127.0.0.1"))]
    pub phost: String,
    /// Port to listen on for producers (0 picks a free one).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 9990))]
    pub pport: u16,
    /// Address to listen on for consumers.
    #[cfg_attr(feature = "cli", arg(long, default_value = "127.0.0.1"))]
    pub chost: String,
    /// Port to listen on for consumers (0 picks a free one).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 9991))]
    pub cport: u16,
    /// Largest frame body accepted from a client (at least 4096 bytes; units such as `1MiB`
    /// are read).
    #[cfg_attr(feature = "cli", arg(long, default_value = "1MiB", value_parser = parse_size_u32))]
    pub max_frame: u32,
    /// Most bytes each topic keeps in memory; the oldest messages go first.
    #[cfg_attr(feature = "cli", arg(long, default_value = "256MiB", value_parser = parse_size))]
    pub retention_bytes: usize,
    /// Most memory all topics' messages may hold together (e.g. `256MiB`, `4GB`); past it the
    /// oldest messages in memory go first, whatever their topic. By default half of the
    /// machine's memory.
    #[cfg_attr(feature = "cli", arg(long, value_parser = parse_size))]
    pub max_memory: Option<usize>,
    /// Most messages each topic keeps.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10_000_000))]
    pub retention_messages: u64,
    /// Size of the memory segments a topic's log is kept in; retention frees whole segments.
    #[cfg_attr(feature = "cli", arg(long, default_value = "1MiB", value_parser = parse_size))]
    pub segment_bytes: usize,
    /// Most replies (confirms, errors, pongs) a connection may leave unread before it is closed.
    #[cfg_attr(feature = "cli", arg(long, default_value = "256KiB", value_parser = parse_size))]
    pub max_outbound: usize,
    /// Most bytes of incomplete frames the broker holds for all connections together; a
    /// connection whose frame would take it past this is refused with an error frame.
    #[cfg_attr(feature = "cli", arg(long, default_value = "256MiB", value_parser = parse_size))]
    pub max_pending_input: usize,
    /// Most client connections at once; further ones are refused with an error frame.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10_000))]
    pub max_connections: usize,
    /// Most topics the broker holds; a publish or subscription that would create another is
    /// refused with an error frame.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10_000))]
    pub max_topics: usize,
    /// Most topics one consumer connection may subscribe to.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1_000))]
    pub max_subscriptions: usize,
    /// How long a new connection has to send its Hello (`10s`, `500ms`; a plain number is
    /// seconds).
    #[cfg_attr(feature = "cli", arg(long, default_value = "10s", value_parser = parse_duration))]
    pub handshake_timeout: Duration,
    /// Silence after which a peer is pinged, and again after which it is dropped.
    #[cfg_attr(feature = "cli", arg(long, default_value = "60s", value_parser = parse_duration))]
    pub idle_timeout: Duration,
    /// How long a consumer-group member may hold a message unacknowledged before it is
    /// given to another member: the default of every new group, and the most a Join may ask.
    #[cfg_attr(feature = "cli", arg(long, default_value = "30s", value_parser = parse_duration))]
    pub ack_wait: Duration,
    /// Deliveries of a message to a group's members before it goes to the group's
    /// dead-letter topic: the default, and the most a Join may ask.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..)))]
    pub max_deliver: u32,
    /// Messages a consumer group may hold unacknowledged at once: the default, and the most a
    /// Join may ask. A group tracks at most 16 times as many offsets past its ack floor.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000)))]
    pub max_ack_pending: u32,
    /// Idempotent producer identities each topic remembers, so that their resends are stored
    /// once; when a new one comes to a full topic, the one whose last publish there is the
    /// oldest is forgotten.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000)))]
    pub max_producers: u32,
    /// How long after its last publish to a topic an idempotent producer's identity is
    /// remembered there.
    #[cfg_attr(feature = "cli", arg(long, default_value = "24h", value_parser = parse_duration))]
    pub producer_ttl: Duration,
    /// Token that clients must present in their Hello; none means no authentication.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "MBUS_AUTH_TOKEN", hide_env_values = true)
    )]
    pub auth_token: Option<String>,
    /// Keep topics on disk in this directory, so that what was confirmed survives a crash;
    /// without it topics live in memory only.
    #[cfg_attr(feature = "cli", arg(long))]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: when messages are made durable. `always` syncs before every confirm,
    /// `batch` confirms once written and syncs every 200 ms, `never` leaves syncing to the OS.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_enum, default_value = "always", requires = "data_dir")
    )]
    pub fsync: Fsync,
    /// With --data-dir: delete a topic's segment files whose newest message is older than this
    /// (`7d`, `12h`). --retention-bytes bounds each topic on disk too.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_parser = parse_duration, requires = "data_dir")
    )]
    pub retention_age: Option<Duration>,
    /// With --data-dir: most bytes of each topic's newest messages kept in memory; older ones
    /// are read from disk.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "64MiB", value_parser = parse_size, requires = "data_dir")
    )]
    pub cache_bytes: usize,
    /// With --data-dir: most segment files open at once, for all topics together; the least
    /// recently used is closed and opened again when next needed. By default a quarter of the
    /// file descriptor limit, at most 4,096: the rest is left to connections.
    #[cfg_attr(feature = "cli", arg(long, requires = "data_dir"))]
    pub max_open_files: Option<usize>,
    /// Serve monitoring over HTTP on this address (`/metrics`, `/healthz`, `/v1/topics`,
    /// `/v1/connections`); given alone, 127.0.0.1:9992; without a port, port 9992. Off by
    /// default.
    #[cfg_attr(
        feature = "cli",
        arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:9992")
    )]
    pub http: Option<String>,
    /// How long a shutdown (SIGINT, SIGTERM, or `Broker::stop`) gives consumers to take what
    /// they are owed.
    #[cfg_attr(feature = "cli", arg(long, default_value = "3s", value_parser = parse_duration))]
    pub shutdown_grace: Duration,
}

#[cfg(feature = "cli")]
use crate::units::{parse_duration, parse_size, parse_size_u32};

impl Default for BrokerConfig {
    /// The defaults of the command line, which a test holds equal.
    fn default() -> Self {
        BrokerConfig {
            phost: "127.0.0.1".into(),
            pport: 9990,
            chost: "127.0.0.1".into(),
            cport: 9991,
            max_frame: mbus_proto::DEFAULT_MAX_FRAME,
            retention_bytes: 256 << 20,
            max_memory: None,
            retention_messages: 10_000_000,
            segment_bytes: 1 << 20,
            max_outbound: 256 << 10,
            max_pending_input: 256 << 20,
            max_connections: 10_000,
            max_topics: 10_000,
            max_subscriptions: 1_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            max_ack_pending: 1000,
            max_producers: 1000,
            producer_ttl: Duration::from_secs(24 * 3600),
            auth_token: None,
            data_dir: None,
            fsync: Fsync::Always,
            retention_age: None,
            cache_bytes: 64 << 20,
            max_open_files: None,
            http: None,
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

impl BrokerConfig {
    /// A configuration for tests and embedding: loopback, free ports, default limits.
    pub fn ephemeral() -> Self {
        BrokerConfig {
            pport: 0,
            cport: 0,
            ..BrokerConfig::default()
        }
    }

    /// The monitoring address, if there is one: `http` with port 9992 when it names none.
    pub fn http_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        let http = self.http.as_deref()?;
        Some(match http.parse::<SocketAddr>() {
            Ok(addr) => Ok(addr),
            Err(_) => match http.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() && !host.contains(':') => {
                    resolve(host, port.parse().expect("checked"))
                }
                _ => resolve(
                    http.trim_matches(['[', ']']),
                    crate::server::http::DEFAULT_PORT,
                ),
            },
        })
    }

    /// The producer listening address.
    pub fn producer_addr(&self) -> std::io::Result<SocketAddr> {
        resolve(&self.phost, self.pport)
    }

    /// The consumer listening address.
    pub fn consumer_addr(&self) -> std::io::Result<SocketAddr> {
        resolve(&self.chost, self.cport)
    }

    /// The part of the configuration the core acts on.
    pub fn core(&self) -> CoreConfig {
        CoreConfig {
            max_frame: self.max_frame,
            // With a data directory the memory log is a cache in front of the files.
            retention: Retention {
                max_bytes: match self.data_dir {
                    Some(_) => self.cache_bytes,
                    None => self.retention_bytes,
                },
                max_messages: self.retention_messages,
                segment_bytes: self.segment_bytes,
            },
            max_control_bytes: self.max_outbound,
            write_budget: 1 << 20,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            auth_token: self.auth_token.clone(),
            max_topics: self.max_topics,
            groups: crate::engine::groups::GroupLimits {
                ack_wait: self.ack_wait,
                max_deliver: self.max_deliver,
                max_ack_pending: self.max_ack_pending,
            },
            max_subscriptions: self.max_subscriptions,
            max_memory: self.memory_budget(),
            producers: crate::engine::producers::ProducerLimits {
                max_per_topic: self.max_producers as usize,
                ttl: self.producer_ttl,
            },
        }
    }

    /// The most bytes all topics' logs may hold: `max_memory`, or by default half of the
    /// machine's physical memory (1 GiB where that cannot be known).
    pub fn memory_budget(&self) -> usize {
        match self.max_memory {
            Some(bytes) => bytes,
            None => physical_memory().map_or(1 << 30, |bytes| bytes / 2),
        }
    }

    /// Where topics are kept on disk, with a data directory.
    pub fn storage(&self) -> Option<FileStorage> {
        self.data_dir.clone().map(|data_dir| {
            let store = StoreConfig {
                retention_bytes: self.retention_bytes as u64,
                retention_age: self.retention_age,
                ..StoreConfig::default()
            };
            FileStorage::new(data_dir, self.fsync, store, self.open_files())
        })
    }

    /// The most segment files kept open: `max_open_files`, or by default a quarter of the
    /// process's file descriptor limit as it is now, between [`MIN_OPEN_FILES`] and
    /// [`DEFAULT_MAX_OPEN_FILES`].
    pub fn open_files(&self) -> usize {
        self.max_open_files.unwrap_or_else(|| {
            let limit = rlimit::Resource::NOFILE
                .get()
                .map_or(1024, |(soft, _)| soft);
            usize::try_from(limit / 4)
                .unwrap_or(usize::MAX)
                .clamp(MIN_OPEN_FILES, DEFAULT_MAX_OPEN_FILES)
        })
    }
}

/// The machine's physical memory in bytes, as the system reports it.
fn physical_memory() -> Option<usize> {
    // SAFETY: sysconf has no preconditions; it returns -1 for what it does not know.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let pages = usize::try_from(pages).ok()?;
    let page = usize::try_from(page).ok()?;
    pages.checked_mul(page)
}

fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host} resolves to no address"),
        )
    })
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        config: BrokerConfig,
    }

    #[test]
    fn the_defaults_are_those_of_the_command_line() {
        let parsed = <Defaults as clap::Parser>::parse_from(["mbus-broker"]).config;
        assert_eq!(parsed, BrokerConfig::default());
    }
}
