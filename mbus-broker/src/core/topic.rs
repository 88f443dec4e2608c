//! The topic registry: names to topics, each a log and the connections subscribed to it.

use std::collections::HashMap;

use super::ConnId;
use super::log::{Log, Retention};

/// Index of a topic in the registry; topics are never removed, so ids stay valid.
pub type TopicId = usize;

/// One topic.
#[derive(Debug)]
pub struct Topic {
    /// The topic's name, as validated when it was created.
    pub name: Box<str>,
    /// Its messages.
    pub log: Log,
    /// Connections with a subscription to it, each once.
    pub subscribers: Vec<ConnId>,
    /// Appended to since the subscribers were last woken.
    pub dirty: bool,
}

/// All topics, created on demand.
#[derive(Debug)]
pub struct Topics {
    topics: Vec<Topic>,
    by_name: HashMap<Box<str>, TopicId>,
    retention: Retention,
}

impl Topics {
    pub fn new(retention: Retention) -> Self {
        Topics {
            topics: Vec::new(),
            by_name: HashMap::new(),
            retention,
        }
    }

    /// The topic called `name`, created (and logged) if it is new.
    pub fn get_or_create(&mut self, name: &str) -> TopicId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        log::info!("creating topic {name}");
        let id = self.topics.len();
        self.topics.push(Topic {
            name: name.into(),
            log: Log::new(self.retention),
            subscribers: Vec::new(),
            dirty: false,
        });
        self.by_name.insert(name.into(), id);
        id
    }

    pub fn find(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Topic> {
        self.topics.iter()
    }
}

impl std::ops::Index<TopicId> for Topics {
    type Output = Topic;
    fn index(&self, id: TopicId) -> &Topic {
        &self.topics[id]
    }
}

impl std::ops::IndexMut<TopicId> for Topics {
    fn index_mut(&mut self, id: TopicId) -> &mut Topic {
        &mut self.topics[id]
    }
}
