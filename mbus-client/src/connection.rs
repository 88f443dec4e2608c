//! One client connection over a blocking `TcpStream`: connecting, the handshake, and moving the
//! protocol's bytes with timeouts in the std style.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbus_proto::Role;
use mbus_proto::client::{ClientProtocol, Incoming};

use crate::{ClientError, ConnectOptions};

/// A connection to one of the broker's ports, welcomed.
pub struct Connection {
    stream: TcpStream,
    protocol: ClientProtocol,
    /// The socket's timeouts as last set, so that a call that wants the same sets nothing:
    /// the producer writes and reads in a loop with the same limits.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Connection {
    /// Connects to the first address of `addr` that accepts, with Nagle off (frames are
    /// buffered already, and a lone Pong must not wait for an ACK), says `Hello` as `role`, and
    /// waits for the broker's `Welcome`, all within the options' connect timeout.
    pub fn open(
        addr: impl ToSocketAddrs,
        role: Role,
        options: &ConnectOptions,
    ) -> Result<Connection, ClientError> {
        let timeout = options.connect_timeout;
        let deadline = Instant::now().checked_add(timeout);
        let mut last = None;
        let mut stream = None;
        for addr in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            last.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
            })
        })?;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            stream,
            protocol: ClientProtocol::new(role, options.auth_token.as_deref()),
            read_timeout: None,
            write_timeout: None,
        };
        while !conn.protocol.outbound().is_empty() {
            if conn.write_some(Some(timeout))? == 0 {
                return Err(ClientError::Timeout);
            }
        }
        loop {
            // Before its Welcome the protocol hands out nothing: any other frame is an error,
            // and the call that takes the Welcome ends there.
            conn.protocol.poll()?;
            if conn.protocol.is_open() {
                break;
            }
            if !conn.read_until(deadline)? {
                return Err(ClientError::Timeout);
            }
        }
        Ok(conn)
    }

    /// The protocol state: what to send, what arrived.
    pub fn protocol(&mut self) -> &mut ClientProtocol {
        &mut self.protocol
    }

    /// The connection's protocol state, to read what it handed out.
    pub fn protocol_ref(&self) -> &ClientProtocol {
        &self.protocol
    }

    /// The largest frame body the broker accepts, from its `Welcome`.
    pub fn max_frame(&self) -> u32 {
        self.protocol.max_frame()
    }

    /// The next frame for the application among those that arrived, without reading.
    pub fn poll(&mut self) -> Result<Option<Incoming>, ClientError> {
        Ok(self.protocol.poll()?)
    }

    /// Reads once, blocking until `deadline` at the latest (for ever without one); `false` when
    /// nothing arrived by then.
    pub fn read_until(&mut self, deadline: Option<Instant>) -> Result<bool, ClientError> {
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(false),
            },
        };
        if self.read_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        self.read_once()
    }

    /// Reads once if anything has arrived, without waiting; `false` when nothing had.
    pub fn try_read(&mut self) -> Result<bool, ClientError> {
        self.stream.set_nonblocking(true)?;
        let read = self.read_once();
        self.stream.set_nonblocking(false)?;
        read
    }

    fn read_once(&mut self) -> Result<bool, ClientError> {
        loop {
            match self.stream.read(self.protocol.read_space()) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => {
                    self.protocol.filled(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_retry(&e) => return Ok(false),
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    /// Writes what the protocol has queued, as far as the socket takes it within `limit` (for
    /// ever without one); returns how many bytes went.
    pub fn write_some(&mut self, limit: Option<Duration>) -> Result<usize, ClientError> {
        self.set_write_timeout(limit)?;
        loop {
            match self.stream.write(self.protocol.outbound()) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => {
                    self.protocol.sent(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_retry(&e) => return Ok(0),
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    fn set_write_timeout(&mut self, limit: Option<Duration>) -> Result<(), ClientError> {
        if self.write_timeout != limit {
            self.stream.set_write_timeout(limit)?;
            self.write_timeout = limit;
        }
        Ok(())
    }

    /// Writes everything the protocol has queued, blocking as long as it takes.
    pub fn write_all(&mut self) -> Result<(), ClientError> {
        while !self.protocol.outbound().is_empty() {
            self.write_some(None)?;
        }
        Ok(())
    }
}

/// Whether the error means the socket had nothing to give or take within its timeout.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A socket error as the client reports it: a dropped connection is [`ClientError::Closed`].
fn io_error(e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => ClientError::Closed,
        _ => ClientError::Io(e),
    }
}

// By hand: the buffers are noise in a log.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("max_frame", &self.protocol.max_frame())
            .finish_non_exhaustive()
    }
}
