//! A topic's idempotent producers on disk: `producers` in the topic's directory, one
//! checksummed record per publish of an identified producer, written before the publish's
//! record can reach its log, and kept at start only where the log kept the publish
//! (`STORAGE.md`, "Idempotent producers").

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoreError;
use super::checked::{record, records};
use super::error::IoContext;
use super::format::PRODUCERS_FILE;
use super::layout;
use crate::engine::storage::ProducerEntry;

/// The producer file being rewritten.
const REWRITE_FILE: &str = "producers~";
/// A producer file past this size is rewritten with only the entries the topic remembers.
pub const REWRITE_BYTES: u64 = 1 << 20;
/// Bytes of an entry's body before the identity: sequence, end and time, u64 little-endian.
const FIXED: usize = 24;

/// The body of `entry`'s record.
pub fn encode(entry: &ProducerEntry, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(FIXED + entry.producer.len());
    body.extend_from_slice(&entry.sequence.to_le_bytes());
    body.extend_from_slice(&entry.end.to_le_bytes());
    body.extend_from_slice(&entry.time.to_le_bytes());
    body.extend_from_slice(entry.producer.as_bytes());
    record(out, &body);
}

/// The entry a record's body holds, if it is one.
fn decode(body: &[u8]) -> Option<ProducerEntry> {
    let (fixed, id) = body.split_at_checked(FIXED)?;
    let word = |i: usize| u64::from_le_bytes(fixed[i * 8..i * 8 + 8].try_into().expect("8"));
    let producer = std::str::from_utf8(id).ok()?;
    mbus_proto::validate_producer_id(producer).ok()?;
    Some(ProducerEntry {
        producer: producer.to_owned(),
        sequence: word(0),
        end: word(1),
        time: word(2),
    })
}

/// The entries at the start of a producer file's `bytes` whose publishes a topic ending at
/// offset `next` holds, and how many bytes they take. Entries are in the order of their ends,
/// so the first whose end is past `next` and everything after it are publishes the topic lost
/// (or never had: a record torn or damaged ends the file too).
pub fn kept(bytes: &[u8], next: u64) -> (Vec<ProducerEntry>, usize) {
    let mut entries = Vec::new();
    let mut len = 0;
    for (body, end) in records(bytes) {
        match decode(body) {
            Some(entry) if entry.end <= next => entries.push(entry),
            _ => break,
        }
        len = end;
    }
    (entries, len)
}

/// One topic's producer file, opened when its first entry is written.
#[derive(Debug)]
pub struct ProducerFile {
    dir: PathBuf,
    file: Option<File>,
    /// Bytes of entries written.
    len: u64,
    /// Its length at the last commit, where a failed commit goes back to.
    committed: u64,
    /// Written to since it was last synced.
    unsynced: bool,
    /// Created since the directory was last synced.
    created: bool,
}

impl ProducerFile {
    /// The producer file of topic directory `dir`, not read yet.
    pub fn new(dir: &Path) -> Self {
        ProducerFile {
            dir: dir.to_owned(),
            file: None,
            len: 0,
            committed: 0,
            unsynced: false,
            created: false,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(PRODUCERS_FILE)
    }

    /// Reads the entries saved whose publishes the topic, ending at offset `next`, still holds,
    /// and cuts the file after them, so that the offsets of what it lost, which other publishes
    /// will take, never vouch for a lost entry. A rewrite that did not finish is removed.
    pub fn load(&mut self, next: u64) -> Result<Vec<ProducerEntry>, StoreError> {
        let fresh = self.dir.join(REWRITE_FILE);
        match fs::remove_file(&fresh) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e).at(&fresh),
            _ => {}
        }
        let path = self.path();
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.at(&path)?,
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).at(&path)?;
        let (entries, len) = kept(&bytes, next);
        if len < bytes.len() {
            log::warn!(
                "store: {}: {} bytes after the last entry the topic holds are cut",
                path.display(),
                bytes.len() - len
            );
            file.set_len(len as u64).at(&path)?;
            file.sync_data().at(&path)?;
        }
        self.len = len as u64;
        self.committed = self.len;
        self.file = Some(file);
        Ok(entries)
    }

    /// Writes `entry` after the others, straight to the file.
    pub fn append(&mut self, entry: &ProducerEntry) -> Result<(), StoreError> {
        let path = self.path();
        if self.file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .at(&path)?;
            self.created = true;
            self.file = Some(file);
        }
        let mut bytes = Vec::new();
        encode(entry, &mut bytes);
        let file = self.file.as_ref().expect("opened above");
        file.write_all_at(&bytes, self.len).at(&path)?;
        self.len += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Bytes of entries written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Forgets the entries from `len` on: those of an append that failed, or of a failed
    /// commit.
    pub fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        let path = self.path();
        if let Some(file) = &self.file {
            file.set_len(len).at(&path)?;
        }
        self.len = len;
        Ok(())
    }

    /// Makes what was written committed, and with `sync` durable. Called before the log's own
    /// commit, so that no publish outlives its entry.
    pub fn commit(&mut self, sync: bool) -> Result<(), StoreError> {
        if sync {
            self.sync()?;
        }
        self.committed = self.len;
        Ok(())
    }

    /// After a failed commit: back to the length of the last good one.
    pub fn rollback(&mut self) -> Result<(), StoreError> {
        self.truncate(self.committed)
    }

    /// Makes the entries written survive power loss.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if !self.unsynced {
            return Ok(());
        }
        let path = self.path();
        if let Some(file) = &self.file {
            file.sync_data().at(&path)?;
        }
        if self.created {
            layout::sync_dir(&self.dir)?;
            self.created = false;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Whether the file is past [`REWRITE_BYTES`].
    pub fn oversized(&self) -> bool {
        self.len > REWRITE_BYTES
    }

    /// Replaces the file with one holding `live` alone, through a new file renamed over it.
    /// With `sync`, the new file is durable when this returns. On error the old one stands.
    pub fn rewrite(&mut self, live: &[ProducerEntry], sync: bool) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        for entry in live {
            encode(entry, &mut bytes);
        }
        let fresh = self.dir.join(REWRITE_FILE);
        let file = File::create(&fresh).at(&fresh)?;
        file.write_all_at(&bytes, 0).at(&fresh)?;
        if sync {
            file.sync_data().at(&fresh)?;
        }
        let path = self.path();
        fs::rename(&fresh, &path).at(&path)?;
        if sync {
            layout::sync_dir(&self.dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        self.file = Some(file);
        self.len = bytes.len() as u64;
        self.committed = self.len;
        self.unsynced = !sync;
        self.created = !sync;
        Ok(())
    }
}
