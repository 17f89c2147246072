//! Segment files under `<state>/artifacts/segments/`: the artifacts' bytes, appended. Each
//! segment (`<seq>.jsonl`, `seq` counting up) holds artifacts one per line, each line the
//! compact JSON the store names by its sha256 (compact JSON has no raw newline). Only the
//! newest segment is appended to; it is sealed once it is full (see [`SEGMENT_BYTES`]), and a fresh
//! one is started at every open, so a crash can leave unindexed lines (or half a line) only at
//! the end of the newest segment. A segment is removed whole once none of its artifacts is kept.
//!
//! An append is one `write` for a whole group of artifacts: no file is created, renamed or
//! unlinked per artifact (on the machines this was measured on, creating, syncing and renaming
//! a file per job record was a third of the daemon's CPU on the relay). Appends reach the disk
//! at [`Segments::sync`], which the store's callers choose when to call, and always before a
//! segment is sealed: only the newest segment can hold bytes not yet on the disk.
//!
//! Blocking file I/O throughout, like the rest of the store.

use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// A segment is sealed (the next append starts a new one) once it holds this many bytes, or
/// an eighth of the store's `maxBytes` when that is less (at least 64 KiB).
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// Where an artifact's bytes are: its segment and the offset of its line (its length is the
/// index entry's size; the newline after it is not part of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The segment's sequence number.
    pub seg: u32,
    /// The line's first byte.
    pub off: u64,
}

/// The segment directory and the segment being appended to.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    seal_at: u64,
    current: Mutex<Current>,
}

/// The segment appends go to.
#[derive(Debug)]
struct Current {
    seq: u32,
    file: fs::File,
    len: u64,
    /// Appended to since the last sync.
    dirty: bool,
}

/// A line read back from a segment.
pub struct Line {
    /// Where it is.
    pub at: Location,
    /// Its bytes, without the newline.
    pub bytes: Vec<u8>,
}

impl Segments {
    /// Starts a fresh segment after every segment in `dir` (created if missing), sealing at
    /// `seal_at` bytes. Segments already there are only read and removed from now on.
    pub fn start(dir: &Path, seal_at: u64) -> std::io::Result<Segments> {
        fs::create_dir_all(dir)?;
        let seq = list(dir)?.last().map_or(0, |last| last + 1);
        let current = create(dir, seq)?;
        Ok(Segments {
            dir: dir.to_path_buf(),
            seal_at,
            current: Mutex::new(current),
        })
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The segment being appended to.
    pub fn current_seq(&self) -> u32 {
        self.current().seq
    }

    /// The path of segment `seq`.
    pub fn path(&self, seq: u32) -> PathBuf {
        path_of(&self.dir, seq)
    }

    /// Appends `records` (each a line's bytes, without its newline) in one write, not yet
    /// synced; where each one went, in order. A segment that holds [`SEGMENT_BYTES`] is synced
    /// and sealed first.
    pub fn append(&self, records: &[&[u8]]) -> std::io::Result<Vec<Location>> {
        let mut current = self.current();
        if current.len >= self.seal_at {
            sync(&mut current)?;
            *current = create(&self.dir, current.seq + 1)?;
        }
        let mut text = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
        let mut at = Vec::with_capacity(records.len());
        for record in records {
            at.push(Location {
                seg: current.seq,
                off: current.len + text.len() as u64,
            });
            text.extend_from_slice(record);
            text.push(b'\n');
        }
        current.dirty = true;
        if let Err(e) = current.file.write_all(&text) {
            // Whatever part went out is past the indexed end: a later open skips it if it does
            // not hash. Appends go on from the file's real end.
            current.len = current.file.metadata().map_or(current.len, |m| m.len());
            return Err(e);
        }
        current.len += text.len() as u64;
        Ok(at)
    }

    /// Makes every append so far durable (`fdatasync` of the newest segment; nothing when
    /// nothing was appended since the last sync).
    pub fn sync(&self) -> std::io::Result<()> {
        sync(&mut self.current())
    }

    /// The `len` bytes at `at`.
    pub fn read(&self, at: Location, len: u64) -> std::io::Result<Vec<u8>> {
        let file = fs::File::open(self.path(at.seg))?;
        let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
        file.read_exact_at(&mut bytes, at.off)?;
        Ok(bytes)
    }

    /// Removes segment `seq` unless it is the one being appended to; a segment already gone
    /// is not an error.
    pub fn remove(&self, seq: u32) -> std::io::Result<()> {
        if seq == self.current_seq() {
            return Ok(());
        }
        match fs::remove_file(self.path(seq)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn sync(current: &mut Current) -> std::io::Result<()> {
    if current.dirty {
        current.file.sync_data()?;
        current.dirty = false;
    }
    Ok(())
}

/// Syncs segment `seq` in `dir` to the disk (best effort: a failure leaves it to the kernel).
pub fn sync_segment(dir: &Path, seq: u32) {
    if let Ok(file) = fs::File::open(path_of(dir, seq)) {
        let _ = file.sync_data();
    }
}

/// The sequence numbers of the segments in `dir`, ascending (strangers skipped, and so is
/// anything but a regular file: a FIFO of a segment's name would block the open).
pub fn list(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut seqs: Vec<u32> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name();
            let digits = name.to_str()?.strip_suffix(".jsonl")?;
            (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The whole lines of segment `seq` in `dir` from offset `from` on; a torn last line (no
/// newline) is left out.
pub fn scan(dir: &Path, seq: u32, from: u64) -> std::io::Result<Vec<Line>> {
    use std::io::Seek;
    let mut file = fs::File::open(path_of(dir, seq))?;
    file.seek(std::io::SeekFrom::Start(from))?;
    let mut reader = std::io::BufReader::new(file);
    let mut lines = Vec::new();
    let mut off = from;
    loop {
        let mut bytes = Vec::new();
        let n = reader.read_until(b'\n', &mut bytes)?;
        if n == 0 || bytes.last() != Some(&b'\n') {
            return Ok(lines);
        }
        bytes.pop();
        lines.push(Line {
            at: Location { seg: seq, off },
            bytes,
        });
        off += n as u64;
    }
}

/// The path of segment `seq` in `dir`.
pub fn path_of(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("{seq:08}.jsonl"))
}

/// Creates a new, empty segment numbered `seq` or, when something already has that name (a
/// stranger that is no regular file), the next free number; makes its name durable.
fn create(dir: &Path, seq: u32) -> std::io::Result<Current> {
    let mut seq = seq;
    let file = loop {
        match fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path_of(dir, seq))
        {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && seq < u32::MAX => seq += 1,
            other => break other?,
        }
    };
    super::index_file::sync_dir(dir);
    Ok(Current {
        seq,
        file,
        len: 0,
        dirty: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn appends_land_where_they_say_and_a_full_segment_is_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Segments::start(dir.path(), 10).unwrap();
        let at = segments.append(&[b"{\"a\":1}", b"{}"]).unwrap();
        assert_eq!(at, vec![Location { seg: 0, off: 0 }, Location { seg: 0, off: 8 }]);
        assert_eq!(segments.read(at[1], 2).unwrap(), b"{}", "readable before a sync");
        segments.sync().unwrap();
        let next = segments.append(&[b"[1]"]).unwrap();
        assert_eq!(next, vec![Location { seg: 1, off: 0 }], "11 bytes held: sealed");
        assert_eq!(list(dir.path()).unwrap(), vec![0, 1]);
        segments.remove(1).unwrap();
        assert!(segments.path(1).exists(), "the current segment is never removed");
        segments.remove(0).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![1]);
        drop(segments);
        let again = Segments::start(dir.path(), 10).unwrap();
        assert_eq!(again.current_seq(), 2, "every open starts a fresh segment");
    }

    #[test]
    fn a_scan_returns_whole_lines_and_skips_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00000003.jsonl"), b"one\ntwo\nthr").unwrap();
        fs::write(dir.path().join("3.jsonl"), b"").unwrap();
        fs::create_dir(dir.path().join("00000004.jsonl")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("00000005.jsonl")).unwrap();
        assert_eq!(
            list(dir.path()).unwrap(),
            vec![3],
            "only regular files named <8 digits>.jsonl are segments"
        );
        let segments = Segments::start(dir.path(), 10).unwrap();
        assert_eq!(segments.current_seq(), 6, "names taken by strangers are skipped");
        let lines = scan(dir.path(), 3, 4).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].at.off, lines[0].bytes.as_slice()), (4, &b"two"[..]));
    }
}
