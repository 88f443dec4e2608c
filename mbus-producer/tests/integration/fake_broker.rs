//! A fake broker for the tests: a listener on 127.0.0.1:0 that runs a script on one connection,
//! decoding what the producer sends.

use std::collections::VecDeque;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mbus_proto::{Frame, PROTOCOL_VERSION, Role};

/// How long any wait in a test may last before the test fails instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Accepts one connection and runs `script` on it in a thread; the script's result comes back
/// through the handle.
pub fn spawn<T: Send + 'static>(
    script: impl FnOnce(Peer) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || script(Peer::new(accept(&listener))));
    (addr, handle)
}

/// Runs `script` in a thread on a listener it accepts connections from, one after another.
pub fn serve<T: Send + 'static>(
    script: impl FnOnce(&dyn Fn() -> Peer) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || script(&|| Peer::new(accept(&listener))));
    (addr, handle)
}

fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no client connected: {e}"),
        }
    }
}

/// The broker's side of one connection.
pub struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    body: Vec<u8>,
    /// Messages of the last `Publish` not yet taken, with its topic.
    pending: VecDeque<(String, Vec<u8>, OwnedHeaders)>,
    /// `Publish` frames received, whatever their size.
    pub publish_frames: u64,
}

impl Peer {
    fn new(stream: TcpStream) -> Peer {
        stream.set_nonblocking(false).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.set_write_timeout(Some(LIMIT)).unwrap();
        Peer {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            body: Vec::new(),
            pending: VecDeque::new(),
            publish_frames: 0,
        }
    }

    /// The next frame from the producer, or `None` once it has closed the connection.
    pub fn recv(&mut self) -> Option<Frame<'_>> {
        let mut prefix = [0; 4];
        match self.reader.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
            Err(e) => panic!("fake broker cannot read: {e}"),
        }
        self.body.resize(u32::from_be_bytes(prefix) as usize, 0);
        self.reader.read_exact(&mut self.body).unwrap();
        Some(Frame::parse(&self.body).unwrap())
    }

    /// Whether the producer sends nothing for `wait`.
    pub fn silent_for(&mut self, wait: Duration) -> bool {
        use std::io::BufRead;
        self.writer.set_read_timeout(Some(wait)).unwrap();
        let quiet = matches!(
            self.reader.fill_buf(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
        );
        self.writer.set_read_timeout(Some(LIMIT)).unwrap();
        quiet
    }

    pub fn send(&mut self, frame: Frame<'_>) {
        self.writer.write_all(&frame.to_bytes()).unwrap();
    }

    /// Takes the producer's `Hello`, answers `Welcome` and returns the token it carried.
    pub fn welcome(&mut self, max_frame: u32) -> Option<String> {
        let token = match self.recv() {
            Some(Frame::Hello {
                version: PROTOCOL_VERSION,
                role: Role::Producer,
                token,
            }) => token.map(str::to_owned),
            other => panic!("expected a producer Hello, got {other:?}"),
        };
        self.send(Frame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame,
            idle_timeout: 60_000,
        });
        token
    }

    /// Takes the `Identify` of an idempotent producer and answers it as a broker that knows
    /// nothing of the identity would; returns the identity.
    pub fn identify(&mut self) -> String {
        self.identify_after(0).0
    }

    /// Takes the `Identify` of an idempotent producer and answers it as a broker whose topics
    /// remember publish `last` of it as the highest; returns the identity and the number the
    /// producer asked for.
    pub fn identify_after(&mut self, last: u64) -> (String, u64) {
        let (producer, sequence) = match self.recv() {
            Some(Frame::Identify { producer, sequence }) => (producer.to_owned(), sequence),
            other => panic!("expected an Identify, got {other:?}"),
        };
        let first = if sequence == 0 { last + 1 } else { sequence };
        self.send(Frame::Identified {
            producer: &producer,
            sequence: first,
        });
        (producer, sequence)
    }

    /// Takes the next message published, without headers, and returns its topic and data.
    pub fn publish(&mut self) -> (String, Vec<u8>) {
        let (topic, data, headers) = self.publish_with_headers();
        assert!(headers.is_empty(), "headers {headers:?}");
        (topic, data)
    }

    /// Takes the next message published, from the last `Publish` or the next one to arrive,
    /// and returns its topic, data and headers.
    pub fn publish_with_headers(&mut self) -> (String, Vec<u8>, OwnedHeaders) {
        if let Some(message) = self.pending.pop_front() {
            return message;
        }
        let messages: Vec<_> = match self.recv() {
            Some(Frame::Publish { topic, batch }) => batch
                .iter()
                .map(|m| {
                    let headers = m
                        .headers
                        .iter()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect();
                    (topic.to_owned(), m.data.to_owned(), headers)
                })
                .collect(),
            other => panic!("expected a Publish, got {other:?}"),
        };
        self.publish_frames += 1;
        self.pending.extend(messages);
        self.pending.pop_front().expect("a batch has a message")
    }

    /// Whether messages of a `Publish` already received are still to be taken.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// A message's headers, owned: names and values in order.
pub type OwnedHeaders = Vec<(String, Vec<u8>)>;
