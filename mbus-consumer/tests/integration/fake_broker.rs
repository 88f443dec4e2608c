//! A fake broker for the tests that speaks bytes: what the consumer sends is compared with the
//! exact encoding of the frame a test expects, and frames go out in a single write each call.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mbus_proto::{DEFAULT_MAX_FRAME, Frame, PROTOCOL_VERSION, Role};

/// How long any wait in a test may last before the test fails instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Runs `script` on the first connection to a fresh port, in a thread.
pub fn spawn<T: Send + 'static>(
    script: impl FnOnce(Peer) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + LIMIT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("no client connected: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.set_write_timeout(Some(LIMIT)).unwrap();
        script(Peer { stream })
    });
    (addr, handle)
}

/// The broker's side of one connection.
pub struct Peer {
    pub stream: TcpStream,
}

impl Peer {
    /// Reads as many bytes as `frame` encodes to and fails the test unless they are its encoding.
    pub fn expect(&mut self, frame: Frame<'_>) {
        let want = frame.to_bytes();
        let mut got = vec![0; want.len()];
        self.stream.read_exact(&mut got).unwrap();
        assert_eq!(got, want, "expected {frame:?}");
    }

    /// Writes the frames in one go, so that the consumer may read them in one go.
    pub fn send(&mut self, frames: &[Frame<'_>]) {
        let mut bytes = Vec::new();
        for frame in frames {
            frame.encode(&mut bytes);
        }
        self.stream.write_all(&bytes).unwrap();
    }

    /// Takes the consumer's `Hello` with `token` and answers `Welcome`.
    pub fn welcome(&mut self, token: Option<&str>) {
        self.expect(Frame::Hello {
            version: PROTOCOL_VERSION,
            role: Role::Consumer,
            token,
        });
        self.send(&[Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: 60_000,
        }]);
    }

    /// Whether the consumer closed the connection, rather than sending more.
    pub fn closed(&mut self) -> bool {
        matches!(self.stream.read(&mut [0; 1]), Ok(0))
    }
}
