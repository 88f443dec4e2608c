//! Typed ids for connections and topics, and the connection table they index.

use std::ops::{Index, IndexMut};

use slab::Slab;

use super::conn::Conn;

/// Identifies a connection inside the core; the event loop maps it to its socket.
///
/// Ids are small and reused once a connection is closed, so that the event loop can keep its
/// sockets in a vector indexed by [`ConnId::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(usize);

impl ConnId {
    /// The id as a small index, for the event loop's own tables.
    pub fn index(self) -> usize {
        self.0
    }

    /// The id with index `index`, as the event loop recorded it.
    pub fn from_index(index: usize) -> Self {
        ConnId(index)
    }
}

/// Identifies a topic inside the core. A deleted topic keeps its slot, empty, so ids stay valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub(super) usize);

/// The open connections, by id.
#[derive(Debug, Default)]
pub(super) struct Conns(Slab<Conn>);

impl Conns {
    pub fn insert(&mut self, conn: Conn) -> ConnId {
        ConnId(self.0.insert(conn))
    }

    pub fn try_remove(&mut self, id: ConnId) -> Option<Conn> {
        self.0.try_remove(id.0)
    }

    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.0.get(id.0)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.0.get_mut(id.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.0.iter().map(|(i, c)| (ConnId(i), c))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut Conn)> {
        self.0.iter_mut().map(|(i, c)| (ConnId(i), c))
    }
}

impl Index<ConnId> for Conns {
    type Output = Conn;
    fn index(&self, id: ConnId) -> &Conn {
        &self.0[id.0]
    }
}

impl IndexMut<ConnId> for Conns {
    fn index_mut(&mut self, id: ConnId) -> &mut Conn {
        &mut self.0[id.0]
    }
}
