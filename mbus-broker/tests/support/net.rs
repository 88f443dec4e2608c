//! A raw-bytes client for socket-level tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mbus_proto::{Frame, PROTOCOL_VERSION, Role, decode};

use super::Owned;

/// A client speaking raw frames over a blocking socket.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects without saying anything.
    pub fn raw(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client over a stream connected already.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and completes the handshake.
    pub fn open(addr: SocketAddr, role: Role) -> Client {
        Client::open_with(addr, role, None)
    }

    /// Connects and completes the handshake, presenting `token`.
    pub fn open_with(addr: SocketAddr, role: Role, token: Option<&str>) -> Client {
        let mut c = Client::raw(addr);
        c.send(Frame::Hello {
            version: PROTOCOL_VERSION,
            role,
            token,
        });
        match c.recv() {
            Some(Owned::Welcome { .. }) => c,
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Connects and completes the handshake, or returns None if the broker is not there or
    /// goes away meanwhile.
    pub fn try_open(addr: SocketAddr, role: Role) -> Option<Client> {
        let stream = TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .ok()?;
        let mut c = Client {
            stream,
            buf: Vec::new(),
        };
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            role,
            token: None,
        };
        c.stream.write_all(&hello.to_bytes()).ok()?;
        matches!(c.recv(), Some(Owned::Welcome { .. })).then_some(c)
    }

    pub fn send(&mut self, frame: Frame<'_>) {
        self.stream.write_all(&frame.to_bytes()).expect("send");
    }

    /// The next frame, or None once the broker closed the connection.
    pub fn recv(&mut self) -> Option<Owned> {
        self.try_recv().unwrap_or_else(|e| panic!("read: {e}"))
    }

    /// The next frame, None once the broker closed the connection, or the read error (such as
    /// the read timeout running out).
    pub fn try_recv(&mut self) -> std::io::Result<Option<Owned>> {
        loop {
            if let Some((frame, n)) = decode(&self.buf, u32::MAX).expect("broker frames decode") {
                let owned = Owned::from(frame);
                self.buf.drain(..n);
                return Ok(Some(owned));
            }
            let mut chunk = [0; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads frames until the broker closes; returns them all.
    pub fn recv_until_closed(&mut self) -> Vec<Owned> {
        std::iter::from_fn(|| self.recv()).collect()
    }
}
