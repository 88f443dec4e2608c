//! The topic registry: names to topics, each a log and the connections subscribed to it.

use std::collections::HashMap;

use super::memlog::{Log, Retention};
use super::storage::{Storage, StoreError, TopicStorage};
use super::{ConnId, TopicId};

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
    /// Its files on disk, with a data directory; the log is then a cache of the newest messages.
    pub store: Option<Box<dyn TopicStorage>>,
    /// On the group commit's list of topics to make durable.
    pub uncommitted: bool,
    /// The producers that published to it since the last commit, each once per run of
    /// publishes: told of a failed commit, while other producers are confirmed.
    pub publishers: Vec<ConnId>,
    /// On the batch sync's list of topics committed but not synced.
    pub unsynced: bool,
    /// Why the topic's files could not be opened at start, if they could not: it then has no
    /// storage, and whoever publishes or subscribes to it is told it is unavailable, while every
    /// other topic serves.
    pub unavailable: Option<String>,
    /// Ranges of damaged offsets already logged, so that each is logged once however many
    /// consumers meet it.
    pub damage_logged: Vec<std::ops::Range<u64>>,
    /// Why the topic's storage failed, if it did so that what it holds is unknown: a batch sync
    /// failed, or going back to the last commit after a failed commit did. It then takes no
    /// more messages and shows none beyond its last commit until the broker restarts and
    /// recovery reads the files again.
    pub failure: Option<String>,
    /// Deleted: its id stays valid, but it has no name, messages, subscribers or files, and
    /// no iteration shows it.
    pub deleted: bool,
    /// Its consumer groups; a group keeps its index for as long as the topic exists.
    pub groups: Vec<super::group::Group>,
    /// On the commit's list of topics whose groups changed.
    pub groups_uncommitted: bool,
    /// The last publish of each idempotent producer stored in the topic.
    pub producers: super::producers::Producers,
}

impl Topic {
    /// Marks the topic failed: its storage could not make messages durable.
    pub fn fail(&mut self, e: &StoreError) {
        log::error!(
            "topic {}: storage failed, no more messages are taken until restart: {e}",
            self.name
        );
        self.failure = Some(e.to_string());
    }

    /// Records that consumers are told `range` is missing; true if it was not logged before.
    pub fn note_damage(&mut self, range: std::ops::Range<u64>) -> bool {
        let known = self
            .damage_logged
            .iter()
            .any(|r| r.start <= range.start && range.end <= r.end);
        if !known {
            // A topic damaged in more places than this keeps logging, which is what it needs.
            if self.damage_logged.len() >= 64 {
                self.damage_logged.clear();
            }
            self.damage_logged.push(range);
        }
        !known
    }

    /// The oldest offset the topic still serves, from disk or from memory.
    pub fn first(&self) -> u64 {
        self.store.as_ref().map_or(self.log.first(), |s| s.first())
    }
}

/// All topics, created on demand.
#[derive(Debug)]
pub struct Topics {
    topics: Vec<Topic>,
    by_name: HashMap<Box<str>, TopicId>,
    retention: Retention,
    storage: Option<Box<dyn Storage>>,
    /// Topics registered as unavailable.
    unavailable: usize,
    /// Topics deleted since start.
    deleted: usize,
}

impl Topics {
    pub fn new(retention: Retention, storage: Option<Box<dyn Storage>>) -> Self {
        Topics {
            topics: Vec::new(),
            by_name: HashMap::new(),
            retention,
            storage,
            unavailable: 0,
            deleted: 0,
        }
    }

    /// The topic called `name`, created (and logged) if it is new. With a data directory, its
    /// files are opened and recovered, or, without `files`, left for its first publish
    /// ([`Topics::open_files`]), so that subscribing to a name nobody publishes to leaves
    /// nothing on disk.
    pub fn get_or_create(&mut self, name: &str, files: bool) -> Result<TopicId, StoreError> {
        if let Some(&id) = self.by_name.get(name) {
            return Ok(id);
        }
        let (log, store) = match &mut self.storage {
            None => {
                log::info!("creating topic {name}");
                (Log::new(self.retention), None)
            }
            // Every topic with files was opened at start: this one has none yet.
            Some(_) if !files => (Log::durable(self.retention, 0, 0), None),
            Some(storage) => {
                let store = storage.open(name)?;
                if store.next() == 0 {
                    log::info!("creating topic {name}");
                }
                (
                    Log::durable(self.retention, store.next(), store.last_time()),
                    Some(store),
                )
            }
        };
        let id = TopicId(self.topics.len());
        self.topics.push(Topic {
            name: name.into(),
            log,
            subscribers: Vec::new(),
            dirty: false,
            store,
            uncommitted: false,
            publishers: Vec::new(),
            unsynced: false,
            unavailable: None,
            damage_logged: Vec::new(),
            failure: None,
            deleted: false,
            groups: Vec::new(),
            groups_uncommitted: false,
            producers: Default::default(),
        });
        self.by_name.insert(name.into(), id);
        Ok(id)
    }

    /// Creates the files of durable topic `id`, which has none yet, for its first publish.
    pub fn open_files(&mut self, id: TopicId) -> Result<(), StoreError> {
        let storage = self
            .storage
            .as_mut()
            .expect("only durable topics have files");
        let topic = &mut self.topics[id.0];
        debug_assert!(topic.store.is_none() && topic.log.next() == 0);
        log::info!("creating topic {}", topic.name);
        topic.store = Some(storage.open(&topic.name)?);
        Ok(())
    }

    /// Registers `name` as a topic whose files could not be opened, for `reason`.
    pub fn add_unavailable(&mut self, name: &str, reason: String) -> TopicId {
        let id = TopicId(self.topics.len());
        self.topics.push(Topic {
            name: name.into(),
            log: Log::new(self.retention),
            subscribers: Vec::new(),
            dirty: false,
            store: None,
            uncommitted: false,
            publishers: Vec::new(),
            unsynced: false,
            unavailable: Some(reason),
            damage_logged: Vec::new(),
            failure: None,
            deleted: false,
            groups: Vec::new(),
            groups_uncommitted: false,
            producers: Default::default(),
        });
        self.by_name.insert(name.into(), id);
        self.unavailable += 1;
        id
    }

    /// How many topics could not be opened at start.
    pub fn unavailable(&self) -> usize {
        self.unavailable
    }

    /// The storage topics are kept in, if they are durable.
    pub fn storage(&mut self) -> Option<&mut Box<dyn Storage>> {
        self.storage.as_mut()
    }

    pub fn is_durable(&self) -> bool {
        self.storage.is_some()
    }

    pub fn find(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }

    /// Topics that exist: created and not deleted.
    pub fn len(&self) -> usize {
        self.topics.len() - self.deleted
    }

    pub fn iter(&self) -> impl Iterator<Item = &Topic> {
        self.topics.iter().filter(|t| !t.deleted)
    }

    /// Every topic that exists, with its id.
    pub fn iter_ids(&self) -> impl Iterator<Item = (TopicId, &Topic)> {
        self.topics
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.deleted)
            .map(|(i, t)| (TopicId(i), t))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Topic> {
        self.topics.iter_mut().filter(|t| !t.deleted)
    }

    /// Deletes topic `id`: its name is free again, its messages and files are gone. The caller
    /// has ended its subscriptions. The files go last, so that a failure to remove them leaves
    /// the topic deleted all the same, with the error to report.
    pub fn delete(&mut self, id: TopicId) -> Result<(), StoreError> {
        let topic = &mut self.topics[id.0];
        debug_assert!(!topic.deleted && topic.subscribers.is_empty());
        self.by_name.remove(&topic.name);
        topic.deleted = true;
        topic.log = Log::new(self.retention);
        // An unavailable topic's damaged files go too: deleting it is how an operator clears it.
        let was_unavailable = topic.unavailable.take().is_some();
        if was_unavailable {
            self.unavailable -= 1;
        }
        let had_files = topic.store.take().is_some() || was_unavailable;
        self.deleted += 1;
        log::info!("deleted topic {}", topic.name);
        match &mut self.storage {
            Some(storage) if had_files => storage.delete(&topic.name),
            _ => Ok(()),
        }
    }
}

impl std::ops::Index<TopicId> for Topics {
    type Output = Topic;
    fn index(&self, id: TopicId) -> &Topic {
        &self.topics[id.0]
    }
}

impl std::ops::IndexMut<TopicId> for Topics {
    fn index_mut(&mut self, id: TopicId) -> &mut Topic {
        &mut self.topics[id.0]
    }
}
