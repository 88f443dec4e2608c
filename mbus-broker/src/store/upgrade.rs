//! Upgrading a data directory of format 1 to format 2, once, when the broker starts on it.
//!
//! Format 1 records hold version 1 `Deliver` frames (`[8, topic, offset, data]`, no time, no
//! headers) and its indexes hold positions only. Every segment is rewritten into a new tree beside
//! the old one, each record as the format 2 record of the same offset and payload, stamped with
//! its segment file's modification time (when its newest record was written; times never go
//! back from one segment to the next). Only then are the trees swapped and the marker set to 2,
//! so that a crash at any point leaves a directory this code finishes upgrading at the next
//! start, with nothing lost: the old tree is deleted last. `STORAGE.md`, section 10, lists the
//! steps.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::time::UNIX_EPOCH;

use mbus_proto::{Batch, encode_delivery};

use super::error::{IoContext, StoreError};
use super::format::{CRC_LEN, RECORD_HEADER, TOPICS_DIR, VERSION_FILE, frame_crc, parse_header};
use super::layout::{self, idx_path, list_segments, log_path};
use super::pool::{FilePool, STANDALONE_OPEN_FILES};
use super::segment::Active;

/// The tree the upgrade writes before it takes the place of `topics/`.
const NEW_TREE: &str = "topics.v2";
/// The name `topics/` of format 1 has once the new tree took its place, until it is deleted.
const OLD_TREE: &str = "topics.v1";

/// What an upgrade did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// Topics rewritten.
    pub topics: usize,
    /// Records rewritten.
    pub records: u64,
    /// Offsets whose format 1 record was damaged or missing: kept in format 2 as corrupt, as
    /// format 1 kept them.
    pub corrupt: u64,
}

/// Upgrades `data_dir` if its marker says format 1, or finishes an upgrade a crash interrupted;
/// returns what was upgraded, `None` when there was nothing to do.
pub fn upgrade(data_dir: &Path) -> Result<Option<Upgraded>, StoreError> {
    let marker = data_dir.join(VERSION_FILE);
    let version = match fs::read_to_string(&marker) {
        Ok(text) => text.trim().to_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&marker),
    };
    let topics = data_dir.join(TOPICS_DIR);
    let new = data_dir.join(NEW_TREE);
    let old = data_dir.join(OLD_TREE);
    if version != "1" {
        // A crash after the marker said 2 left the old tree behind.
        if version == "2" && old.exists() {
            remove_tree(&old)?;
        }
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let mut report = Upgraded::default();
    if !old.exists() {
        // Not swapped yet: whatever a crash left of the new tree is written again.
        if new.exists() {
            fs::remove_dir_all(&new).at(&new)?;
        }
        log::warn!(
            "store: {} holds format 1; upgrading it to format 2",
            data_dir.display()
        );
        fs::create_dir_all(&new).at(&new)?;
        if topics.is_dir() {
            for entry in fs::read_dir(&topics).at(&topics)? {
                let entry = entry.at(&topics)?;
                let name = entry.file_name();
                let to = new.join(&name);
                let is_dir = entry.file_type().at(&entry.path())?.is_dir();
                let Some(topic) = name
                    .to_str()
                    .filter(|t| is_dir && mbus_proto::validate_topic(t).is_ok())
                else {
                    // Not a topic: carried over as it is, for whoever put it there.
                    log::warn!(
                        "store: upgrade carries {} over unchanged: it is not a topic",
                        entry.path().display()
                    );
                    copy_as_is(&entry.path(), &to)?;
                    continue;
                };
                fs::create_dir(&to).at(&to)?;
                upgrade_topic(&entry.path(), &to, topic, &mut report).map_err(|e| {
                    log::error!(
                        "store: topic {topic} cannot be upgraded, so the data directory stays \
                         format 1, unchanged; repair or move away {}: {e}",
                        entry.path().display()
                    );
                    e
                })?;
                layout::sync_dir(&to)?;
                report.topics += 1;
            }
        }
        layout::sync_dir(&new)?;
        if topics.exists() {
            fs::rename(&topics, &old).at(&topics)?;
        } else {
            fs::create_dir(&old).at(&old)?;
        }
        layout::sync_dir(data_dir)?;
    }
    if new.exists() {
        fs::rename(&new, &topics).at(&new)?;
        layout::sync_dir(data_dir)?;
    }
    layout::write_version(data_dir)?;
    remove_tree(&old)?;
    log::warn!(
        "store: upgraded {} to format 2: {} topics, {} records, {} corrupt offsets kept as \
         corrupt, in {:?}",
        data_dir.display(),
        report.topics,
        report.records,
        report.corrupt,
        started.elapsed()
    );
    Ok(Some(report))
}

/// Copies a file, a link or a whole directory from `from` to `to` as it is.
fn copy_as_is(from: &Path, to: &Path) -> Result<(), StoreError> {
    let kind = fs::symlink_metadata(from).at(from)?.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(from).at(from)?;
        std::os::unix::fs::symlink(target, to).at(to)
    } else if kind.is_dir() {
        fs::create_dir(to).at(to)?;
        for entry in fs::read_dir(from).at(from)? {
            let entry = entry.at(from)?;
            copy_as_is(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map(drop).at(from)
    }
}

fn remove_tree(dir: &Path) -> Result<(), StoreError> {
    fs::remove_dir_all(dir).at(dir)?;
    layout::sync_dir(dir.parent().expect("a tree inside the data directory"))
}

/// Rewrites every segment of one topic from `from` into `to`.
fn upgrade_topic(
    from: &Path,
    to: &Path,
    topic: &str,
    report: &mut Upgraded,
) -> Result<(), StoreError> {
    let listing = list_segments(from)?;
    let mut last_time = 0;
    for (i, &base) in listing.logs.iter().enumerate() {
        let end = listing.logs.get(i + 1).copied();
        last_time = upgrade_segment(from, to, topic, base, end, last_time, report)?;
    }
    Ok(())
}

/// Rewrites the segment of `base` (whose offsets end at `end`, the next segment's base, unless
/// it is the last); returns the time its records got.
fn upgrade_segment(
    from: &Path,
    to: &Path,
    topic: &str,
    base: u64,
    end: Option<u64>,
    last_time: u64,
    report: &mut Upgraded,
) -> Result<u64, StoreError> {
    let log_p = log_path(from, base);
    let mut log = Vec::new();
    File::open(&log_p)
        .and_then(|mut f| f.read_to_end(&mut log))
        .at(&log_p)?;
    let time = fs::metadata(&log_p)
        .and_then(|m| m.modified())
        .at(&log_p)?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .max(last_time);
    let idx_p = idx_path(from, base);
    let positions: Vec<u64> = match fs::read(&idx_p) {
        Ok(bytes) => bytes
            .chunks_exact(8)
            .map(|e| u64::from_le_bytes(e.try_into().expect("8 bytes")))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).at(&idx_p),
    };
    let files = FilePool::new(STANDALONE_OPEN_FILES);
    let mut segment = Active::create(&files, to, base, 1 << 20)?;
    let mut frame = Vec::new();
    let mut offset = base;
    // Where the walk by record lengths goes on past what the index lists.
    let mut walk = 0;
    loop {
        if end.is_some_and(|e| offset >= e) {
            break;
        }
        let listed = positions.get((offset - base) as usize).copied();
        let pos = listed.unwrap_or(walk);
        let Some((data, len)) = v1_record(&log, pos, topic, offset) else {
            if listed.is_none() && end.is_none() {
                break; // The end of the last segment.
            }
            // Format 1 kept this offset as corrupt; format 2 keeps it so too: its entry points
            // where no record of its offset is.
            // A sealed segment whose records ran out keeps its missing offsets the same way.
            report.corrupt += 1;
            segment.append_missing(time)?;
            offset += 1;
            continue;
        };
        walk = pos + len;
        frame.clear();
        encode_delivery(&mut frame, topic, offset, time, &Batch::one(data));
        segment.append(&frame, time, 1)?;
        report.records += 1;
        offset += 1;
    }
    // Written whole, cut to its length and synced, as a segment is sealed.
    segment.seal()?;
    Ok(time)
}

/// The payload and record length of the intact format 1 record of `offset` of `topic` at `pos`
/// of `log`: crc, length, then the body `94 08 <topic str> <offset uint> <data bin>` as format 1
/// wrote it.
fn v1_record<'a>(log: &'a [u8], pos: u64, topic: &str, offset: u64) -> Option<(&'a [u8], u64)> {
    let pos = usize::try_from(pos).ok()?;
    let header: &[u8; RECORD_HEADER] = log.get(pos..pos + RECORD_HEADER)?.try_into().ok()?;
    let (crc, len) = parse_header(header);
    let frame = log.get(pos + CRC_LEN..pos + RECORD_HEADER + len as usize)?;
    if len == 0 || frame_crc(frame) != crc {
        return None;
    }
    let body = &frame[mbus_proto::HEADER_LEN..];
    let (&[0x94, 0x08], rest) = body.split_first_chunk::<2>()? else {
        return None;
    };
    let (name, rest) = split_str(rest)?;
    let (claimed, rest) = super::format::read_uint(rest)?;
    if name != topic.as_bytes() || claimed != offset {
        return None;
    }
    let (data, _) = split_bin(rest)?;
    Some((data, (RECORD_HEADER + len as usize) as u64))
}

fn split_str(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (n, rest) = match *b.first()? {
        m @ 0xa0..=0xbf => (usize::from(m & 0x1f), &b[1..]),
        0xd9 => (usize::from(*b.get(1)?), &b[2..]),
        _ => return None,
    };
    rest.split_at_checked(n)
}

fn split_bin(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (n, rest) = match *b.first()? {
        0xc4 => (usize::from(*b.get(1)?), &b[2..]),
        0xc5 => (
            usize::from(u16::from_be_bytes(*b.get(1..)?.first_chunk()?)),
            &b[3..],
        ),
        0xc6 => (
            u32::from_be_bytes(*b.get(1..)?.first_chunk()?) as usize,
            &b[5..],
        ),
        _ => return None,
    };
    rest.split_at_checked(n)
}
