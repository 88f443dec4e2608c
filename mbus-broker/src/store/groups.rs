//! A topic's consumer groups on disk: `groups/<name>` in the topic's directory, a file of
//! checksummed records each holding the group's whole state, the last whole one being what
//! counts (`STORAGE.md`, "Consumer groups").

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use super::StoreError;
use super::checked::{CHECKED_HEADER, record, records};
use super::error::IoContext;
use super::format::GROUPS_DIR;
use super::layout;

/// A group file past this size is rewritten as its last record alone.
pub const REWRITE_BYTES: u64 = 1 << 20;
/// The suffix of a group file being rewritten; no group name holds it.
const REWRITE_SUFFIX: &str = "~";

/// The path of group `name`'s file in topic directory `dir`.
fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(GROUPS_DIR).join(name)
}

/// The body of the last whole record of a group file's bytes, if it has one.
pub fn last_record(bytes: &[u8]) -> Option<&[u8]> {
    records(bytes).last().map(|(body, _)| body)
}

/// Every group saved in topic directory `dir`, with the body of its last whole record.
/// Files left by a rewrite that did not finish are removed; a file without a whole record is
/// reported and skipped.
pub fn load(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let groups = dir.join(GROUPS_DIR);
    let entries = match fs::read_dir(&groups) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.at(&groups)?,
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at(&groups)?;
        let file = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            log::warn!("store: ignoring {} in {}", file.display(), groups.display());
            continue;
        };
        if name.ends_with(REWRITE_SUFFIX) {
            // The rename that ends a rewrite never happened: the old file still holds the state.
            fs::remove_file(&file).at(&file)?;
            continue;
        }
        if mbus_proto::validate_group(&name).is_err() {
            log::warn!("store: ignoring {} in {}", name, groups.display());
            continue;
        }
        let mut bytes = Vec::new();
        File::open(&file)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .at(&file)?;
        match last_record(&bytes) {
            Some(body) => out.push((name, body.to_vec())),
            None => log::error!(
                "store: group file {} holds no whole record; the group starts anew",
                file.display()
            ),
        }
    }
    out.sort();
    Ok(out)
}

/// Saves `body` as the state of group `name` in topic directory `dir`: appended to its file, or,
/// once the file is past [`REWRITE_BYTES`], written alone to a new file renamed over it. With
/// `sync`, the record survives power loss when this returns.
pub fn save(dir: &Path, name: &str, body: &[u8], sync: bool) -> Result<(), StoreError> {
    let file = path(dir, name);
    let mut bytes = Vec::with_capacity(CHECKED_HEADER + body.len());
    record(&mut bytes, body);
    let len = match fs::metadata(&file) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let groups = dir.join(GROUPS_DIR);
            if !groups.exists() {
                fs::create_dir_all(&groups).at(&groups)?;
                layout::sync_dir(dir)?;
            }
            0
        }
        Err(e) => return Err(e).at(&file),
    };
    if len > REWRITE_BYTES {
        let fresh = file.with_file_name(format!("{name}{REWRITE_SUFFIX}"));
        let mut f = File::create(&fresh).at(&fresh)?;
        f.write_all(&bytes).at(&fresh)?;
        if sync {
            f.sync_data().at(&fresh)?;
        }
        fs::rename(&fresh, &file).at(&file)?;
        if sync {
            layout::sync_dir(&dir.join(GROUPS_DIR))?;
        }
        return Ok(());
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .at(&file)?;
    f.write_all(&bytes).at(&file)?;
    if sync {
        f.sync_data().at(&file)?;
        if len == 0 {
            layout::sync_dir(&dir.join(GROUPS_DIR))?;
        }
    }
    Ok(())
}

/// Makes the saved state of group `name` survive power loss.
pub fn sync(dir: &Path, name: &str) -> Result<(), StoreError> {
    let file = path(dir, name);
    File::open(&file).and_then(|f| f.sync_data()).at(&file)?;
    layout::sync_dir(&dir.join(GROUPS_DIR))
}
