//! The one way llama-orch reads a file a user pointed it at (a manifest, the config, a token
//! file): opened non-blocking, so a FIFO, a terminal or a device named `x.yaml` cannot stall
//! the reader (a blocking open of a FIFO waits for a writer forever); refused unless it is a
//! regular file, judged on the opened file itself (`fstat`), so nothing can be swapped in
//! between the check and the read; and read up to a cap, so a huge file is refused without
//! being loaded.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It could not be opened (missing, no permission, a symlink loop, …).
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    /// It is not a regular file.
    #[error("not a regular file (a {0})")]
    NotRegular(&'static str),
    /// It is larger than the cap.
    #[error("too large: it may be at most {0} bytes")]
    TooLarge(u64),
    /// Reading failed.
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// Text was expected.
    #[error("not UTF-8 text")]
    NotText,
}

impl ReadError {
    /// What to do about it, for messages.
    pub fn hint(&self) -> &'static str {
        match self {
            ReadError::Open(e) if e.raw_os_error() == Some(40) => {
                "the file is a symlink loop: point the link at a real file or remove it"
            }
            ReadError::Open(_) => "check that the file exists and is readable; symlinks must point at a file",
            ReadError::NotRegular(_) => "only regular files are read: remove it, or point the link at a regular file",
            ReadError::TooLarge(_) => "split it into smaller files",
            ReadError::Read(_) => "check the file and the disk it is on",
            ReadError::NotText => "save it as UTF-8",
        }
    }

    /// The file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Open(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// [`read_regular`], as UTF-8 text.
pub fn read_text(path: &Path, cap: u64) -> Result<String, ReadError> {
    String::from_utf8(read_regular(path, cap)?).map_err(|_| ReadError::NotText)
}

/// The contents of the regular file at `path` (symlinks followed), at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(ReadError::Open)?;
    let meta = file.metadata().map_err(ReadError::Read)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(&meta.file_type())));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge(cap));
    }
    let mut bytes = Vec::new();
    // The length can change under us: the cap holds whatever the file grows to.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(ReadError::Read)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// `O_NONBLOCK`: opening a FIFO returns at once, whether or not a writer exists.
const O_NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;

fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device, such as a terminal"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.yaml");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let started = Instant::now();
        let e = read_regular(&fifo, 1024).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular("FIFO")), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "it did not block");
    }

    #[test]
    fn devices_directories_and_big_files_are_refused_small_files_read() {
        assert!(matches!(
            read_regular(Path::new("/dev/null"), 1024),
            Err(ReadError::NotRegular(_))
        ));
        assert!(matches!(
            read_regular(Path::new("/"), 1024),
            Err(ReadError::NotRegular("directory"))
        ));
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let file = dir.join("a.yaml");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_regular(&file, 10).unwrap(), b"0123456789");
        assert!(matches!(read_regular(&file, 9), Err(ReadError::TooLarge(9))));
        let link = dir.join("link.yaml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            read_regular(&link, 10).unwrap(),
            b"0123456789",
            "a link to a file is read"
        );
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).unwrap();
        assert!(matches!(
            read_regular(&dir.join("zero.yaml"), 10),
            Err(ReadError::NotRegular(_))
        ));
        assert!(matches!(
            read_regular(&dir.join("missing"), 10),
            Err(ReadError::Open(_))
        ));
    }
}
