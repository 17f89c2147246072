//! The manifests directory as orchctl sees it: which files the daemon reads (the same rule as
//! the controller: `*.yaml`/`*.yml`, not hidden, not `~` backups, not recursive), what each
//! parses to, where an object is declared, and atomic writes and removals.
//!
//! Objects are returned exactly as `parse_file` made them (relative `file:` refs included), so
//! `short_hash` of one equals the generation the daemon computes for it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use llorch_manifests::parse::Located;
use llorch_manifests::{MAX_MANIFEST_BYTES, ManifestError, ObjectRef, files, parse_file};

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
pub fn list(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the folder {}", dir.display()));
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read the folder {}", dir.display()))?;
        let path = entry.path();
        if is_manifest_name(&entry.file_name().to_string_lossy()) && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The bytes of a manifest file: a regular file of at most `MAX_MANIFEST_BYTES` (a FIFO or a
/// device named `x.yaml` is refused at once instead of hanging orchctl).
pub fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    files::read_regular(path, MAX_MANIFEST_BYTES as u64).map_err(|e| match e {
        files::ReadError::Open(e) | files::ReadError::Read(e) => e,
        other => std::io::Error::other(format!("{other}; {}", other.hint())),
    })
}

impl ManifestDir {
    /// Reads and parses every manifest file of `dir`. Unreadable files become parse errors.
    pub fn read(dir: &Path) -> anyhow::Result<ManifestDir> {
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

/// Replaces `path` with `contents` atomically (the controller's
/// [`write_atomic`](llorch_controller::atomic_file::write_atomic): a hidden temporary file in the
/// same directory, so the daemon never reads a half-written manifest, synced, then renamed).
pub fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    llorch_controller::atomic_file::write_atomic(path, contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
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
