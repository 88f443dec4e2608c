//! Checking one record in place: its length, its crc and the topic and offset its frame claims,
//! reading in bounded chunks so that a damaged length never makes the store allocate it.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;

use super::file::ReadAt;
use super::format::{Identity, RECORD_HEADER, parse_header};

/// Bytes read at a time while checking a record's crc, and the size of a scan's read-ahead.
const CHUNK: usize = 64 << 10;

/// Which offsets the record being checked must hold.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Its first offset is this one: the record after another.
    Offset(u64),
    /// It holds this offset, first or not: where a read starts.
    Holds(u64),
    /// Its first offset is in this range: used when looking for the next good record after
    /// damage.
    Within(u64, u64),
}

/// A record that checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Good {
    /// The first offset its frame holds.
    pub offset: u64,
    /// How many offsets it holds, from `offset` on.
    pub count: u64,
    /// The time its frame holds.
    pub time: u64,
    /// Its length in the file, crc included.
    pub len: u64,
}

/// Checks the record at `pos` of data that ends at `end`. Returns `None` when it is not a whole,
/// intact record of the expected offset: too short, a length running past `end`, a crc that does
/// not match, or a frame of another topic or offset.
pub fn check_at(
    file: &impl ReadAt,
    pos: u64,
    end: u64,
    id: &Identity,
    expect: Expect,
) -> io::Result<Option<Good>> {
    if end.saturating_sub(pos) < RECORD_HEADER as u64 {
        return Ok(None);
    }
    let mut header = [0; RECORD_HEADER];
    file.read_exact_at(&mut header, pos)?;
    let (crc, len) = parse_header(&header);
    let rec_len = RECORD_HEADER as u64 + u64::from(len);
    if len == 0 || rec_len > end - pos {
        return Ok(None);
    }
    let mut chunk = vec![0; (len as usize).min(CHUNK)];
    let mut at = pos + RECORD_HEADER as u64;
    file.read_exact_at(&mut chunk, at)?;
    // The identity is checked first: it is cheap and rejects most garbage before the crc is.
    let Some((offset, count)) = id.claim(&chunk) else {
        return Ok(None);
    };
    let expected = match expect {
        Expect::Offset(o) => offset == o,
        Expect::Holds(o) => offset <= o && o - offset < count,
        Expect::Within(lo, hi) => (lo..hi).contains(&offset),
    };
    if !expected {
        return Ok(None);
    }
    let Some(time) = id.time_of(&chunk) else {
        return Ok(None);
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[4..]);
    let body_end = pos + rec_len;
    loop {
        hasher.update(&chunk);
        at += chunk.len() as u64;
        if at == body_end {
            break;
        }
        let n = (body_end - at).min(CHUNK as u64) as usize;
        chunk.truncate(n);
        file.read_exact_at(&mut chunk, at)?;
    }
    Ok((hasher.finalize() == crc).then_some(Good {
        offset,
        count,
        time,
        len: rec_len,
    }))
}

/// A read-ahead cache over a file that a scan walks forward through, so that checking many small
/// records costs one system call per block instead of two per record.
#[derive(Debug)]
pub struct Window<'a> {
    file: &'a File,
    end: u64,
    start: Cell<u64>,
    buf: RefCell<Vec<u8>>,
}

impl<'a> Window<'a> {
    /// A window over the first `end` bytes of `file`.
    pub fn new(file: &'a File, end: u64) -> Self {
        Window {
            file,
            end,
            start: Cell::new(0),
            buf: RefCell::new(Vec::new()),
        }
    }
}

impl ReadAt for Window<'_> {
    fn read_exact_at(&self, out: &mut [u8], pos: u64) -> io::Result<()> {
        let mut buf = self.buf.borrow_mut();
        let start = self.start.get();
        let len = out.len() as u64;
        if pos >= start && pos + len <= start + buf.len() as u64 {
            let from = (pos - start) as usize;
            out.copy_from_slice(&buf[from..from + out.len()]);
            return Ok(());
        }
        let ahead = (4 * CHUNK as u64).min(self.end.saturating_sub(pos));
        if len > ahead {
            return ReadAt::read_exact_at(self.file, out, pos);
        }
        buf.resize(ahead as usize, 0);
        ReadAt::read_exact_at(self.file, &mut buf, pos)?;
        self.start.set(pos);
        out.copy_from_slice(&buf[..out.len()]);
        Ok(())
    }
}
