//! An append-only file with a bounded write buffer that reads see through, and positional reads.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::pool::PooledFile;

/// Something that gives access to an open file: the file itself, or a pool's handle that may
/// have to open it again first.
pub trait FileHandle {
    /// Runs `f` on the open file.
    fn with<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T>;
}

impl FileHandle for File {
    fn with<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        f(self)
    }
}

impl FileHandle for PooledFile {
    fn with<T>(&self, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        PooledFile::with(self, f)
    }
}

/// Reading a byte range at a position, from a file or from a file and its write buffer.
pub trait ReadAt {
    /// Fills `buf` from position `pos`; the range must lie inside what was written.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }
}

impl ReadAt for PooledFile {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.with(|f| FileExt::read_exact_at(f, buf, pos))
    }
}

/// A file the store only appends to. Appends collect in a buffer of at most `cap` bytes, written
/// with one `pwrite` when full or on [`AppendFile::flush`], so that small records cost no system
/// call each; reads serve the buffered tail from memory, so they never need a flush.
#[derive(Debug)]
pub struct AppendFile<F: FileHandle = PooledFile> {
    file: F,
    path: PathBuf,
    /// Bytes handed to the OS; the file's data ends here. Writes go at this position rather than
    /// at the file cursor, so that a write that failed half-way is simply written again.
    written: u64,
    pending: Vec<u8>,
    cap: usize,
}

impl<F: FileHandle> AppendFile<F> {
    /// Wraps `file`, whose first `len` bytes are data, buffering at most `cap` bytes.
    pub fn new(file: F, path: PathBuf, len: u64, cap: usize) -> Self {
        AppendFile {
            file,
            path,
            written: len,
            pending: Vec::new(),
            cap,
        }
    }

    /// The file's path, for errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data's length, buffered bytes included.
    pub fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// Whether `n` more bytes fit in the buffer.
    pub fn fits(&self, n: usize) -> bool {
        self.pending.len() + n <= self.cap
    }

    /// Appends `bytes` to the buffer; the caller checked [`AppendFile::fits`] or accepts one
    /// buffer-sized overshoot.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Writes `parts` straight to the file after the data, bypassing the buffer, which must be
    /// empty. On error the data's length is unchanged, and whatever was written past it is
    /// overwritten by the next write.
    pub fn write_direct(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        debug_assert!(
            self.pending.is_empty(),
            "direct write behind buffered bytes"
        );
        let mut at = self.written;
        for part in parts {
            self.file.with(|f| f.write_all_at(part, at))?;
            at += part.len() as u64;
        }
        self.written = at;
        Ok(())
    }

    /// Hands the buffered bytes to the OS. On error nothing is lost: the buffer is kept and the
    /// next flush writes it again at the same position.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let (pending, written) = (&self.pending, self.written);
            self.file.with(|f| f.write_all_at(pending, written))?;
            self.written += self.pending.len() as u64;
            self.pending.clear();
            // A buffer that once held a frame larger than `cap` gives the memory back.
            if self.pending.capacity() > self.cap {
                self.pending.shrink_to(self.cap);
            }
        }
        Ok(())
    }

    /// Gives the buffer's memory back once it is empty, so that a file nobody appends to holds
    /// none; the next append allocates it again.
    pub fn release(&mut self) {
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
    }

    /// Writes the buffer out, then makes the data and the file's length durable.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.with(|f| f.sync_data())
    }

    /// Forgets every byte from `len` on, buffered or written, and cuts the file there: what a
    /// failed commit wrote goes, what was committed before it stays.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        debug_assert!(len <= self.len(), "truncate past the data");
        self.pending.clear();
        self.written = len;
        self.file.with(|f| f.set_len(len))
    }

    /// Cuts the file to exactly its data, dropping bytes a failed write may have left behind it.
    pub fn trim(&mut self) -> io::Result<()> {
        self.flush()?;
        let written = self.written;
        self.file.with(|f| {
            if f.metadata()?.len() != written {
                f.set_len(written)?;
            }
            Ok(())
        })
    }
}

impl<F: FileHandle> ReadAt for AppendFile<F> {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if pos.saturating_add(buf.len() as u64) > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the data",
            ));
        }
        // The part before `written` is in the file, the rest in the buffer.
        let in_file = self.written.saturating_sub(pos).min(buf.len() as u64) as usize;
        let (head, tail) = buf.split_at_mut(in_file);
        if !head.is_empty() {
            self.file.with(|f| FileExt::read_exact_at(f, head, pos))?;
        }
        if !tail.is_empty() {
            let from = (pos + in_file as u64 - self.written) as usize;
            tail.copy_from_slice(&self.pending[from..from + tail.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn reads_span_the_file_and_the_buffer() {
        let dir = std::env::temp_dir().join(format!("mbus-store-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut f: AppendFile<File> = AppendFile::new(file, path.clone(), 0, 8);
        f.push(b"0123");
        f.flush().unwrap();
        f.push(b"4567");
        assert!(f.fits(4) && !f.fits(5));
        assert_eq!(f.len(), 8);
        for pos in 0..8u64 {
            for len in 0..=(8 - pos as usize) {
                let mut buf = vec![0; len];
                f.read_exact_at(&mut buf, pos).unwrap();
                assert_eq!(buf, b"01234567"[pos as usize..pos as usize + len]);
            }
        }
        assert!(f.read_exact_at(&mut [0; 2], 7).is_err());
        f.sync_data().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"01234567");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
