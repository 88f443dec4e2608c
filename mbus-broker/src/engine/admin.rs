//! What an operator may do to the broker's topics: delete one, refused while consumers read it
//! unless forced.

use mbus_proto::ErrorCode;

use super::Core;
use super::storage::StoreError;

/// Why a topic was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No topic has that name.
    #[error("no topic {0}")]
    NotFound(String),
    /// Consumers are subscribed and the deletion was not forced.
    #[error("topic {name} has {subscribers} subscribers; force the deletion to close them")]
    Subscribed {
        /// The topic.
        name: String,
        /// How many consumers read it.
        subscribers: usize,
    },
    /// The topic is deleted, but its files could not all be removed.
    #[error("topic {name} is deleted, but its files could not be removed: {source}")]
    Files {
        /// The topic.
        name: String,
        /// What the storage said.
        #[source]
        source: StoreError,
    },
}

impl Core {
    /// Deletes topic `name` with its messages and files. With subscribers it is refused unless
    /// `force`, which closes each of them with an `InvalidTopic` error saying the topic is
    /// gone. Producers that publish to the name afterwards create a new, empty topic.
    pub fn delete_topic(&mut self, name: &str, force: bool) -> Result<(), DeleteError> {
        let tid = self
            .topics
            .find(name)
            .ok_or_else(|| DeleteError::NotFound(name.to_owned()))?;
        let mut subscribers = self.topics[tid].subscribers.clone();
        // Group members read it too.
        for g in &self.topics[tid].groups {
            subscribers.extend(g.members.iter().map(|m| m.conn));
        }
        if !subscribers.is_empty() && !force {
            return Err(DeleteError::Subscribed {
                name: name.to_owned(),
                subscribers: subscribers.len(),
            });
        }
        let reason = format!("topic {name} was deleted");
        for cid in subscribers {
            if let Some(i) = self.conns[cid].sub_index(tid) {
                let conn = &mut self.conns[cid];
                conn.finish_partial(i, &self.topics[tid].log);
                conn.subs.remove(i);
                conn.next_sub = 0;
            }
            self.conns[cid].groups.retain(|m| m.topic != tid);
            self.conns[cid].next_group = 0;
            self.reject(cid, ErrorCode::InvalidTopic, &reason);
        }
        self.topics[tid].subscribers.clear();
        self.topics[tid].groups.clear();
        self.commit.groups.retain(|&t| t != tid);
        for (_, conn) in self.conns.iter_mut() {
            if conn.last_topic == Some(tid) {
                conn.last_topic = None;
            }
        }
        // Nothing of it is left to commit, sync or hold against the memory budget.
        self.commit.topics.retain(|&t| t != tid);
        self.commit.unsynced.retain(|&t| t != tid);
        let mark = super::budget::Mark::of(&self.topics[tid].log);
        while let Some(seg) = self.topics[tid].log.evict_oldest() {
            self.pool.give(seg);
        }
        self.topics[tid].producers = Default::default();
        let deleted = self.topics.delete(tid);
        self.account(tid, mark);
        deleted.map_err(|source| DeleteError::Files {
            name: name.to_owned(),
            source,
        })
    }
}
