//! The broker embedded in a program or a test: started on a thread of its own, its addresses
//! read back, stopped on request or when the handle is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::config::BrokerConfig;
use crate::engine::Stats;
use crate::server::{Server, ServerError, ShutdownHandle};

/// A broker running on its own thread.
///
/// ```
/// use mbus_broker::{Broker, BrokerConfig};
///
/// let broker = Broker::spawn(BrokerConfig::ephemeral())?;
/// println!("producers connect to {}", broker.producer_addr());
/// assert_eq!(broker.stats().connections, 0);
/// broker.stop()?;
/// # Ok::<(), mbus_broker::server::ServerError>(())
/// ```
///
/// Dropping the handle stops the broker too, and waits for its thread.
#[derive(Debug)]
pub struct Broker {
    producer_addr: SocketAddr,
    consumer_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    shutdown: ShutdownHandle,
    stats: Arc<Mutex<Stats>>,
    thread: Option<JoinHandle<(Server, Result<(), ServerError>)>>,
}

impl Broker {
    /// Binds both ports (port 0 picks a free one), recovers the data directory if there is
    /// one, and runs the event loop on a new thread. Errors in binding and recovery are
    /// returned here, before the thread starts.
    pub fn spawn(config: BrokerConfig) -> Result<Broker, ServerError> {
        let mut server = Server::bind(config)?;
        let producer_addr = server.producer_addr();
        let consumer_addr = server.consumer_addr();
        let http_addr = server.http_addr();
        let shutdown = server.shutdown_handle();
        let stats = server.stats_handle();
        let thread = std::thread::Builder::new()
            .name("mbus-broker".into())
            .spawn(move || {
                let result = server.run();
                (server, result)
            })
            .map_err(ServerError::Poll)?;
        Ok(Broker {
            producer_addr,
            consumer_addr,
            http_addr,
            shutdown,
            stats,
            thread: Some(thread),
        })
    }

    /// The address producers connect to.
    pub fn producer_addr(&self) -> SocketAddr {
        self.producer_addr
    }

    /// The address consumers connect to.
    pub fn consumer_addr(&self) -> SocketAddr {
        self.consumer_addr
    }

    /// The address of the monitoring port, when the configuration has one (`http`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The broker's counters as of the end of its last loop turn.
    pub fn stats(&self) -> Stats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle that stops the broker from any thread, as [`Broker::stop`] does without
    /// waiting.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Stops the broker as SIGTERM stops the binary (producers get a final confirm, consumers
    /// are given the shutdown grace to take what they are owed), waits for its thread, and
    /// hands back the stopped server, whose core can then be inspected.
    pub fn stop(mut self) -> Result<Server, ServerError> {
        self.shutdown.shutdown();
        let thread = self
            .thread
            .take()
            .expect("only stop and drop take the thread");
        match thread.join() {
            Ok((server, result)) => result.map(|()| server),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shutdown.shutdown();
            if let Ok((_, Err(e))) = thread.join() {
                log::error!("the broker stopped with an error: {e}");
            }
        }
    }
}
