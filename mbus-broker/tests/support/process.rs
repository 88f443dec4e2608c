//! The real `mbus-broker` binary as a child process on free loopback ports.

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A running `mbus-broker` process. Dropping it kills the process (SIGKILL) if it still runs.
pub struct BrokerProcess {
    child: Child,
    pub producers: SocketAddr,
    pub consumers: SocketAddr,
}

impl BrokerProcess {
    /// Starts the binary on two free ports, with `args` added to its command line, and waits
    /// until both ports accept connections.
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> BrokerProcess {
        let (pport, cport) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_mbus-broker"))
            .args(["--pport", &pport.to_string(), "--cport", &cport.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let producers: SocketAddr = ([127, 0, 0, 1], pport).into();
        let consumers: SocketAddr = ([127, 0, 0, 1], cport).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(producers).is_err() || TcpStream::connect(consumers).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not start listening"
            );
            thread::sleep(Duration::from_millis(10));
        }
        BrokerProcess {
            child,
            producers,
            consumers,
        }
    }

    /// Sends SIGTERM and returns the exit status, failing if the process outlives `limit`.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let signalled = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                signalled.elapsed() < limit,
                "the broker still runs {limit:?} after SIGTERM"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BrokerProcess {
    /// SIGKILL: a crash for the tests that want one, and the cleanup when an assertion fails.
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
