//! The manifests directory as a writer sees it — `orchctl apply`/`diff`/`delete` on this
//! machine, and the daemon's write API (`POST /v2/manifests`) for remote clients: which files
//! the daemon reads (the manifest store's rule: `*.yaml`/`*.yml`, not hidden, not `~` backups,
//! not recursive), what each parses to, where an object is declared. [`apply`] plans and writes
//! objects (one file per object, atomically); [`delete`] removes them.
//!
//! Objects are returned exactly as `parse_file` made them (relative `file:` refs included), so
//! `short_hash` of one equals the generation the daemon computes for it. Everything here is
//! blocking file I/O: the daemon calls it on a blocking thread.

pub mod admit;
pub mod apply;
pub mod delete;
pub mod writes;

use std::path::{Path, PathBuf};

use llorch_manifests::parse::Located;
use llorch_manifests::{MAX_MANIFEST_BYTES, ManifestError, ObjectRef, files, parse_file};

/// Why the manifests directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The folder cannot be listed.
    #[error("cannot read the folder {}: {source}", dir.display())]
    List {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The folder cannot be created.
    #[error("cannot create the manifests directory {}: {source}", dir.display())]
    Create {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A manifest file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A manifest file cannot be removed.
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An object cannot be rendered as YAML.
    #[error("{0}")]
    Render(String),
}

/// One manifest file and what it parsed to.
#[derive(Clone, Debug)]
pub struct DirFile {
    /// Its path (inside the manifests directory).
    pub path: PathBuf,
    /// Its objects, or why it does not parse.
    pub parsed: Result<Vec<Located>, Vec<ManifestError>>,
}

impl DirFile {
    /// The objects it holds; none when it does not parse.
    pub fn objects(&self) -> &[Located] {
        self.parsed.as_deref().unwrap_or(&[])
    }
}

/// The manifests directory, read once.
#[derive(Clone, Debug)]
pub struct ManifestDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its manifest files, sorted by path.
    pub files: Vec<DirFile>,
}

/// True for file names the daemon reads.
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with('~') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// `<kind>-<name>.yaml`: the file `apply` writes an object to.
pub fn file_name_for(object: &ObjectRef) -> String {
    format!("{}-{}.yaml", object.kind.lower(), object.name)
}

/// The manifest files of `dir` (not recursive), sorted. A missing directory has none.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, DirError> {
    let failed = |source| DirError::List {
        dir: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(failed)?;
        let path = entry.path();
        if is_manifest_name(&entry.file_name().to_string_lossy()) && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The bytes of a manifest file: a regular file of at most `MAX_MANIFEST_BYTES` (a FIFO or a
/// device named `x.yaml` is refused at once instead of hanging the reader).
pub fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    files::read_regular(path, MAX_MANIFEST_BYTES as u64).map_err(|e| match e {
        files::ReadError::Open(e) | files::ReadError::Read(e) => e,
        other => std::io::Error::other(format!("{other}; {}", other.hint())),
    })
}

impl ManifestDir {
    /// Reads and parses every manifest file of `dir`. Unreadable files become parse errors.
    pub fn read(dir: &Path) -> Result<ManifestDir, DirError> {
        let files = list(dir)?
            .into_iter()
            .map(|path| {
                let name = path.display().to_string();
                let parsed = match read_capped(&path) {
                    Ok(bytes) => parse_file(&name, &bytes),
                    Err(e) => Err(vec![ManifestError::file(
                        &name,
                        format!("cannot read: {e}"),
                        "check that the file exists and is readable",
                    )]),
                };
                DirFile { path, parsed }
            })
            .collect();
        Ok(ManifestDir {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// Every object of every file that parses, in file then document order.
    pub fn objects(&self) -> impl Iterator<Item = &Located> {
        self.files.iter().flat_map(DirFile::objects)
    }

    /// Every place `object` is declared (normally one).
    pub fn find(&self, object: &ObjectRef) -> Vec<(&DirFile, &Located)> {
        self.files
            .iter()
            .flat_map(|f| f.objects().iter().map(move |l| (f, l)))
            .filter(|(_, l)| &l.object.object_ref() == object)
            .collect()
    }

    /// The file `path`, if it is one of the manifest files.
    pub fn file(&self, path: &Path) -> Option<&DirFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Files that do not parse.
    pub fn broken(&self) -> impl Iterator<Item = &DirFile> {
        self.files.iter().filter(|f| f.parsed.is_err())
    }

    /// Where `apply` writes `object`.
    pub fn target_path(&self, object: &ObjectRef) -> PathBuf {
        self.dir.join(file_name_for(object))
    }
}

/// Replaces `path` with `contents` atomically ([`write_atomic`](crate::atomic_file::write_atomic):
/// a hidden temporary file in the same directory, so the daemon never reads a half-written
/// manifest, synced, then renamed).
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), DirError> {
    crate::atomic_file::write_atomic(path, contents.as_bytes()).map_err(|source| DirError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_visible_yaml_files_count_as_manifests() {
        assert!(is_manifest_name("pool-chat.yaml"));
        assert!(is_manifest_name("x.yml"));
        assert!(!is_manifest_name(".orchctl-123.tmp"));
        assert!(!is_manifest_name(".hidden.yaml"));
        assert!(!is_manifest_name("pool.yaml~"));
        assert!(!is_manifest_name("notes.txt"));
    }

    #[test]
    fn a_missing_directory_reads_as_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ManifestDir::read(&tmp.path().join("absent")).unwrap();
        assert!(dir.files.is_empty());
    }
}
