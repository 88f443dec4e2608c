//! A broker-wide bound on open segment files: a file is opened when it is used, and when the
//! bound is reached the least recently used one is closed, to be opened again when next used.
//!
//! Every topic keeps its segment files through [`PooledFile`] handles of one [`FilePool`], so the
//! number of topics is bounded by disk, not by file descriptors. A handle remembers its path and
//! whether it writes; closing it loses nothing, as every write goes at an explicit position and
//! buffered bytes live outside the file. The pool is shared behind a mutex because storage must
//! be `Send`; the broker uses it from its one thread, so the lock is never contended.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::engine::storage::is_out_of_descriptors;

/// The bound of a pool made for a single store opened on its own (tests and tools): two
/// segments' files and a reader.
pub const STANDALONE_OPEN_FILES: usize = 8;

/// The least a pool holds: the active segment's two files and a sealed segment's two being
/// read, so that one read or append never closes a file it needs itself.
pub const MIN_OPEN_FILES: usize = 4;

/// Open files shared by every handle made from it; cloning shares the same pool.
#[derive(Debug, Clone)]
pub struct FilePool(Arc<Mutex<Inner>>);

#[derive(Debug)]
struct Inner {
    cap: usize,
    next_key: u64,
    /// A counter that orders uses, for the LRU.
    clock: u64,
    open: HashMap<u64, Slot>,
    /// The keys of open files by their last use, oldest first.
    by_use: BTreeMap<u64, u64>,
    /// Files opened again after the pool had closed them.
    reopened: u64,
}

#[derive(Debug)]
struct Slot {
    file: File,
    used: u64,
}

/// How many files a pool holds open and how often it had to open one again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Files open now.
    pub open: usize,
    /// The most it keeps open.
    pub cap: usize,
    /// Opens of a file the pool had closed to make room.
    pub reopened: u64,
}

impl FilePool {
    /// A pool that keeps at most `cap` files open (and at least [`MIN_OPEN_FILES`]).
    pub fn new(cap: usize) -> Self {
        FilePool(Arc::new(Mutex::new(Inner {
            cap: cap.max(MIN_OPEN_FILES),
            next_key: 0,
            clock: 0,
            open: HashMap::new(),
            by_use: BTreeMap::new(),
            reopened: 0,
        })))
    }

    /// Figures for logs and tests.
    pub fn stats(&self) -> PoolStats {
        let inner = self.lock();
        PoolStats {
            open: inner.open.len(),
            cap: inner.cap,
            reopened: inner.reopened,
        }
    }

    /// A handle on the existing file at `path`, opened read-only or for reading and writing.
    /// The file is opened now, so that a missing or unreadable file is reported here, and stays
    /// open until the pool needs room.
    pub fn open(&self, path: PathBuf, write: bool) -> io::Result<PooledFile> {
        let handle = self.handle(path, write);
        handle.with(|_| Ok(()))?;
        Ok(handle)
    }

    /// A handle on `file`, just opened (or created) at `path` by the caller.
    pub fn adopt(&self, file: File, path: PathBuf, write: bool) -> PooledFile {
        let handle = self.handle(path, write);
        let mut inner = self.lock();
        inner.make_room();
        inner.insert(handle.key, file);
        handle
    }

    fn handle(&self, path: PathBuf, write: bool) -> PooledFile {
        let mut inner = self.lock();
        let key = inner.next_key;
        inner.next_key += 1;
        PooledFile {
            pool: self.clone(),
            key,
            path,
            write,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held left at worst a closed file behind: still usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn insert(&mut self, key: u64, file: File) {
        let used = self.tick();
        self.by_use.insert(used, key);
        self.open.insert(key, Slot { file, used });
    }

    /// Closes the least recently used file; false if none is open.
    fn close_oldest(&mut self) -> bool {
        let Some((_, key)) = self.by_use.pop_first() else {
            return false;
        };
        self.open.remove(&key);
        true
    }

    /// Closes files until one more fits.
    fn make_room(&mut self) {
        while self.open.len() >= self.cap && self.close_oldest() {}
    }

    fn remove(&mut self, key: u64) {
        if let Some(slot) = self.open.remove(&key) {
            self.by_use.remove(&slot.used);
        }
    }
}

/// One segment file of a [`FilePool`]: open while the pool has room for it, opened again by path
/// when it is used after the pool closed it. Dropping the handle closes the file.
#[derive(Debug)]
pub struct PooledFile {
    pool: FilePool,
    key: u64,
    path: PathBuf,
    write: bool,
}

impl PooledFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the open file, opening it first if the pool closed it. When the process is
    /// out of descriptors, the pool's other files are closed one by one until the open works.
    pub fn with<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let mut inner = self.pool.lock();
        if let Some(slot) = inner.open.get(&self.key) {
            let old = slot.used;
            let used = inner.tick();
            inner.by_use.remove(&old);
            inner.by_use.insert(used, self.key);
            let slot = inner.open.get_mut(&self.key).expect("looked up above");
            slot.used = used;
            return f(&slot.file);
        }
        inner.make_room();
        let file = loop {
            match OpenOptions::new()
                .read(true)
                .write(self.write)
                .open(&self.path)
            {
                Ok(file) => break file,
                Err(e) if is_out_of_descriptors(&e) && inner.close_oldest() => continue,
                Err(e) => return Err(e),
            }
        };
        inner.reopened += 1;
        inner.insert(self.key, file);
        let slot = inner.open.get(&self.key).expect("just inserted");
        f(&slot.file)
    }
}

impl Drop for PooledFile {
    fn drop(&mut self) {
        self.pool.lock().remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn the_least_recently_used_file_is_closed_and_reopened_on_use() {
        let dir = std::env::temp_dir().join(format!("mbus-store-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = FilePool::new(MIN_OPEN_FILES);
        let handles: Vec<PooledFile> = (0..10)
            .map(|i| {
                let path = dir.join(format!("f{i}"));
                std::fs::write(&path, [i as u8]).unwrap();
                pool.open(path, true).unwrap()
            })
            .collect();
        assert_eq!(pool.stats().open, MIN_OPEN_FILES);
        // Every file still reads and writes, however often it was closed in between.
        for round in 0..3u8 {
            for (i, h) in handles.iter().enumerate() {
                h.with(|f| f.write_all_at(&[round], 1 + round as u64))
                    .unwrap();
                let mut buf = [0; 1];
                h.with(|f| f.read_exact_at(&mut buf, 0)).unwrap();
                assert_eq!(buf[0], i as u8);
            }
            assert!(pool.stats().open <= MIN_OPEN_FILES);
        }
        let reopened = pool.stats().reopened;
        assert!(reopened >= 20, "files were reopened: {reopened}");
        // The most recently used file stays open: using it again opens nothing.
        handles[9].with(|_| Ok(())).unwrap();
        assert_eq!(pool.stats().reopened, reopened);
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(std::fs::read(h.path()).unwrap(), [i as u8, 0, 1, 2]);
        }
        drop(handles);
        assert_eq!(pool.stats().open, 0, "dropped handles close their files");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
