//! Where a topic's files live: the data directory's version marker, topic directories, segment
//! file names, and making directory entries durable.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::{IoContext, StoreError};
use super::format::{FORMAT_VERSION, IDX_EXT, LOG_EXT, TOPICS_DIR, VERSION_FILE};
use super::format::{parse_segment_name, segment_name};

/// Checks a topic name and returns its directory. The protocol's rules already keep names to
/// `[A-Za-z0-9._-]`, which cannot hold a path separator; `.` and `..` pass those rules but name
/// the directory itself and its parent, so they are refused here.
pub fn topic_dir(data_dir: &Path, topic: &str) -> Result<PathBuf, StoreError> {
    let invalid = |reason: String| StoreError::InvalidTopic {
        name: topic.to_owned(),
        reason,
    };
    mbus_proto::validate_topic(topic).map_err(|e| invalid(e.to_string()))?;
    if topic == "." || topic == ".." {
        return Err(invalid("it is a directory link, not a name".to_owned()));
    }
    Ok(data_dir.join(TOPICS_DIR).join(topic))
}

/// Makes sure `data_dir` holds data of this format, writing the marker into a new data
/// directory. A directory of format 1 is upgraded at start (`FileStorage::topics`), before this
/// is asked.
pub fn check_version(data_dir: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(VERSION_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            if text.trim() == FORMAT_VERSION.to_string() {
                Ok(())
            } else {
                Err(StoreError::UnsupportedVersion {
                    path,
                    found: text.trim().to_owned(),
                })
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(data_dir).at(data_dir)?;
            write_version(data_dir)
        }
        Err(e) => Err(StoreError::Io { path, source: e }),
    }
}

/// Writes this format's marker: to a temporary name, synced and renamed, so that a crash leaves
/// either the marker before or a whole new one, never an empty file that reads as an unknown
/// version.
pub fn write_version(data_dir: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(VERSION_FILE);
    let tmp = data_dir.join(format!("{VERSION_FILE}.tmp"));
    let mut file = File::create(&tmp).at(&tmp)?;
    file.write_all(format!("{FORMAT_VERSION}\n").as_bytes())
        .at(&tmp)?;
    file.sync_all().at(&tmp)?;
    fs::rename(&tmp, &path).at(&path)?;
    sync_dir(data_dir)
}

/// Makes `data_dir` ready to hold topics before anything is served: created if needed, its format
/// checked (or written; a directory of format 1 was upgraded first), its `topics/` directory present, and a file written and removed
/// there, so that a directory the broker cannot write fails at start rather than at the first
/// publish.
pub fn prepare(data_dir: &Path) -> Result<(), StoreError> {
    check_version(data_dir)?;
    let topics = data_dir.join(TOPICS_DIR);
    fs::create_dir_all(&topics).at(&topics)?;
    let probe = data_dir.join(".write-check");
    File::create(&probe).at(&probe)?;
    fs::remove_file(&probe).at(&probe)
}

/// Creates the topic directory if needed; returns whether it had to be created, in which case
/// the entries of it and of `topics/` become durable only once their parents are synced.
pub fn create_topic_dir(dir: &Path) -> Result<bool, StoreError> {
    if dir.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(dir).at(dir)?;
    Ok(true)
}

/// Makes the entries of a directory (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// The path of a segment's log file.
pub fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_name(base, LOG_EXT))
}

/// The path of a segment's index file.
pub fn idx_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_name(base, IDX_EXT))
}

/// The segment files found in a topic directory.
#[derive(Debug, Default)]
pub struct Listing {
    /// Base offsets of the `.log` files, ascending.
    pub logs: Vec<u64>,
    /// Base offsets of `.idx` files that have no `.log`: left by a crash while a segment was
    /// created or deleted, and useless without their log.
    pub orphan_indexes: Vec<u64>,
}

/// Lists the segment files of a topic directory; other names are logged and left alone.
pub fn list_segments(dir: &Path) -> Result<Listing, StoreError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if name == super::format::GROUPS_DIR || name == super::format::PRODUCERS_FILE {
            continue;
        }
        match name.to_str().and_then(parse_segment_name) {
            Some((base, LOG_EXT)) => logs.push(base),
            Some((base, _)) => indexes.push(base),
            None => log::warn!(
                "store: ignoring {} in {}",
                name.to_string_lossy(),
                dir.display()
            ),
        }
    }
    logs.sort_unstable();
    indexes.retain(|base| logs.binary_search(base).is_err());
    Ok(Listing {
        logs,
        orphan_indexes: indexes,
    })
}
