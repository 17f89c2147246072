//! Desired state: the manifests directory, re-read in full on every reconcile pass.
//!
//! Each file is all-or-nothing. A file that fails to read or parse keeps contributing the
//! objects it held when it was last valid ("last good"), so an editor's half-written save,
//! a typo or a `git pull` conflict never tears down what is running; the error is reported
//! on those objects and in the snapshot. A file that disappears takes its objects with it.
//!
//! Reading is blocking I/O: the controller runs [`ManifestStore::scan`] on a blocking thread.
//! Only regular files are read (`llorch_manifests::files`), and a scan that runs past
//! [`SCAN_BUDGET`] (slow storage) leaves the files it did not reach on their last good copies.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use llorch_manifests::parse::Located;
use llorch_manifests::{
    AnyObject, Kind, MAX_MANIFEST_BYTES, ManifestError, ObjectRef, files, hash, parse_file, validate,
};

/// How long one scan may read files; the rest wait for the next pass.
pub const SCAN_BUDGET: Duration = Duration::from_secs(5);

/// One object of the desired state.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The object as last accepted.
    pub object: AnyObject,
    /// The file that declares it.
    pub file: PathBuf,
    /// Its document index there.
    pub document: usize,
    /// `short_hash` of the object.
    pub generation: String,
    /// Problems: a newer, broken version of its file, duplicates, dangling references.
    pub errors: Vec<ManifestError>,
    /// False when a cross-reference is broken: the controller must not act on it.
    pub actionable: bool,
}

/// The desired state after one scan.
#[derive(Clone, Debug, Default)]
pub struct DesiredState {
    /// Every object, by reference.
    pub objects: BTreeMap<ObjectRef, Entry>,
    /// Errors not tied to any known object.
    pub file_errors: Vec<ManifestError>,
    /// Files (or the directory) that could not be read or parsed and have no last good copy:
    /// they may declare objects we cannot see, so containers that look orphaned must be kept.
    pub unknown_sources: Vec<String>,
}

impl DesiredState {
    /// The entry for `kind`/`name`.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Entry> {
        self.objects.get(&ObjectRef::new(kind, name))
    }

    /// All entries of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Entry> {
        self.objects.values().filter(move |e| e.object.kind() == kind)
    }
}

#[derive(Clone, Debug)]
struct Cached {
    bytes_hash: String,
    objects: Vec<Located>,
    errors: Vec<ManifestError>,
}

/// Reads the manifests directory, remembering each file's last good contents.
#[derive(Debug)]
pub struct ManifestStore {
    dir: PathBuf,
    last_good: HashMap<PathBuf, Vec<Located>>,
    cache: HashMap<PathBuf, Cached>,
    /// Which file each object was accepted from last time: on a duplicate, that one stays.
    accepted_from: HashMap<ObjectRef, String>,
}

impl ManifestStore {
    /// A store over `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            last_good: HashMap::new(),
            cache: HashMap::new(),
            accepted_from: HashMap::new(),
        }
    }

    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads every manifest file and returns the desired state (blocking I/O).
    pub fn scan(&mut self) -> DesiredState {
        self.scan_within(SCAN_BUDGET)
    }

    /// [`scan`](Self::scan), reading files for at most `budget`.
    pub fn scan_within(&mut self, budget: Duration) -> DesiredState {
        let started = Instant::now();
        let mut file_errors = Vec::new();
        let mut unknown = Vec::new();
        let files = match list_manifest_files(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                // An unreadable directory must not look like "everything deleted".
                file_errors.push(e);
                let mut state = self.assemble(file_errors);
                state.unknown_sources.push(self.dir.display().to_string());
                return state;
            }
        };
        self.last_good.retain(|path, _| files.contains(path));
        self.cache.retain(|path, _| files.contains(path));
        for path in &files {
            let name = path.display().to_string();
            let read = if started.elapsed() > budget {
                Err(ManifestError::file(
                    &name,
                    format!("not read this pass: the scan ran past its {budget:?} budget"),
                    "the manifests directory is on slow storage; its objects keep their last good state",
                ))
            } else {
                read_capped(path)
            };
            let parsed = match read {
                Ok(bytes) => {
                    let bytes_hash = hash::short_hash_bytes(&bytes);
                    match self.cache.get(path) {
                        Some(c) if c.bytes_hash == bytes_hash => Ok(c.clone()),
                        _ => {
                            let cached = match parse_file(&name, &bytes) {
                                Ok(objects) => Cached {
                                    bytes_hash,
                                    objects,
                                    errors: Vec::new(),
                                },
                                Err(errors) => Cached {
                                    bytes_hash,
                                    objects: Vec::new(),
                                    errors,
                                },
                            };
                            self.cache.insert(path.clone(), cached.clone());
                            Ok(cached)
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match parsed {
                Ok(c) if c.errors.is_empty() => {
                    self.last_good.insert(path.clone(), c.objects);
                }
                Ok(c) => file_errors.extend(c.errors),
                Err(e) => file_errors.push(e),
            }
            let failed = self.cache.get(path).is_none_or(|c| !c.errors.is_empty());
            if failed && !self.last_good.contains_key(path) {
                unknown.push(name);
            }
        }
        let mut state = self.assemble(file_errors);
        state.unknown_sources = unknown;
        state
    }

    fn assemble(&mut self, file_errors: Vec<ManifestError>) -> DesiredState {
        let mut all: Vec<Located> = self.last_good.values().flatten().cloned().collect();
        // File order decides between duplicates, except that a definition already in force
        // wins over a newcomer elsewhere: adding a clashing file must not replace what runs.
        let newcomer = |l: &Located| {
            self.accepted_from
                .get(&l.object.object_ref())
                .is_some_and(|f| *f != l.file)
        };
        all.sort_by(|a, b| (newcomer(a), &a.file, a.document).cmp(&(newcomer(b), &b.file, b.document)));
        let set_errors = validate::check_set(&all);
        let mut state = DesiredState::default();
        for loc in all {
            let r = loc.object.object_ref();
            if state.objects.contains_key(&r) {
                continue; // a duplicate: reported by check_set on this later definition
            }
            state.objects.insert(
                r,
                Entry {
                    generation: hash::short_hash(&loc.object),
                    object: loc.object,
                    file: PathBuf::from(&loc.file),
                    document: loc.document,
                    errors: Vec::new(),
                    actionable: true,
                },
            );
        }
        for err in set_errors.into_iter().chain(file_errors) {
            let target = match (err.kind, &err.name) {
                (Some(k), Some(n)) => state.objects.get_mut(&ObjectRef::new(k, n.clone())),
                _ => None,
            };
            match target {
                Some(entry) => {
                    // A reference error makes the object unsafe to act on; a duplicate in another
                    // file or a broken newer version does not: the accepted definition stands.
                    if matches!(
                        err.field.as_deref(),
                        Some("spec.engine" | "spec.model" | "spec.ctxSize")
                    ) && err.file == entry.file.display().to_string()
                    {
                        entry.actionable = false;
                    }
                    entry.errors.push(err);
                }
                None => state.file_errors.push(err),
            }
        }
        self.accepted_from = state
            .objects
            .iter()
            .map(|(r, e)| (r.clone(), e.file.display().to_string()))
            .collect();
        state
    }
}

fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with('~') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

fn list_manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read = std::fs::read_dir(dir).map_err(|e| {
        ManifestError::file(
            dir.display().to_string(),
            format!("cannot read the manifests directory: {e}"),
            "create it (`mkdir -p`) or fix its permissions; nothing was changed",
        )
    })?;
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .filter(|e| is_manifest_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| !p.is_dir())
        .collect();
    files.sort();
    Ok(files)
}

/// The file's bytes, if it is a regular file of at most `MAX_MANIFEST_BYTES`: a FIFO, a
/// terminal or a device named `x.yaml` is refused at once instead of stalling the pass, and a
/// symlink loop or a dangling link becomes an error naming the file.
fn read_capped(path: &Path) -> Result<Vec<u8>, ManifestError> {
    files::read_regular(path, MAX_MANIFEST_BYTES as u64)
        .map_err(|e| ManifestError::file(path.display().to_string(), e.to_string(), e.hint()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINE: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: mock}\nspec: {image: 'img:dev', version: '1'}\n";
    const MODEL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: tiny}\nspec: {ref: 'file:/m', ctxMax: 64}\n";
    const POOL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\nspec: {engine: mock, model: tiny, replicas: 2}\n";

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_objects_and_reports_the_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", &format!("{ENGINE}---\n{MODEL}"));
        write(dir.path(), "pool.yaml", POOL);
        let mut store = ManifestStore::new(dir.path());
        let s = store.scan();
        assert_eq!(s.objects.len(), 3);
        let chat = s.get(Kind::Pool, "chat").unwrap();
        assert!(chat.actionable && chat.errors.is_empty());

        write(dir.path(), "pool.yaml", &POOL.replace("replicas: 2", "replicas: two"));
        let s = store.scan();
        let chat = s.get(Kind::Pool, "chat").unwrap();
        assert!(chat.actionable, "the last good version stays in force");
        assert_eq!(chat.errors.len(), 1);
        assert!(
            chat.errors[0].to_string().contains("spec.replicas"),
            "{}",
            chat.errors[0]
        );

        std::fs::remove_file(dir.path().join("pool.yaml")).unwrap();
        assert!(store.scan().get(Kind::Pool, "chat").is_none());
    }

    #[test]
    fn a_duplicate_in_a_new_file_does_not_displace_the_definition_in_force() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
        let mut store = ManifestStore::new(dir.path());
        store.scan();
        // Sorts before b.yaml, so plain file order would pick it.
        write(dir.path(), "a.yaml", &POOL.replace("replicas: 2", "replicas: 5"));
        let s = store.scan();
        let chat = s.get(Kind::Pool, "chat").unwrap();
        assert!(chat.file.ends_with("b.yaml"));
        assert!(
            chat.errors
                .iter()
                .any(|e| e.file.ends_with("a.yaml") && e.message.contains("already defined")),
            "{:?}",
            chat.errors
        );
    }

    #[test]
    fn a_dangling_reference_is_an_error_on_the_pool_that_stops_action() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", ENGINE);
        write(dir.path(), "pool.yaml", POOL);
        let s = ManifestStore::new(dir.path()).scan();
        let chat = s.get(Kind::Pool, "chat").unwrap();
        assert!(!chat.actionable);
        assert!(
            chat.errors
                .iter()
                .any(|e| e.to_string().contains("Model `tiny` does not exist"))
        );
    }

    #[test]
    fn unreadable_and_oversize_files_become_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "big.yaml", &"#".repeat(MAX_MANIFEST_BYTES + 10));
        std::os::unix::fs::symlink("loop.yaml", dir.path().join("loop.yaml")).unwrap();
        write(dir.path(), "notes.txt", "ignored");
        let s = ManifestStore::new(dir.path()).scan();
        assert_eq!(s.file_errors.len(), 2, "{:#?}", s.file_errors);
        assert_eq!(s.unknown_sources.len(), 2, "unreadable files may hide objects");
        assert!(s.file_errors.iter().any(|e| e.message.contains("bytes")));
        assert!(s.file_errors.iter().any(|e| e.hint.contains("symlink loop")));
    }

    #[test]
    fn a_fifo_named_like_a_manifest_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "pool.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
        let fifo = dir.path().join("x.yaml");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let s = ManifestStore::new(dir.path()).scan();
        assert!(s.get(Kind::Pool, "chat").is_some(), "the other files still count");
        let e = s.file_errors.iter().find(|e| e.file.ends_with("x.yaml")).unwrap();
        assert!(e.message.contains("FIFO"), "{e:?}");
    }

    #[test]
    fn files_past_the_budget_keep_their_last_good_objects() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "pool.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
        let mut store = ManifestStore::new(dir.path());
        assert!(store.scan().get(Kind::Pool, "chat").is_some());
        // Listing the directory already takes longer than a zero budget: no file is read.
        let s = store.scan_within(Duration::ZERO);
        assert!(s.get(Kind::Pool, "chat").is_some(), "kept from the last good read");
        assert!(
            s.file_errors.iter().any(|e| e.message.contains("budget")),
            "{:?}",
            s.file_errors
        );
    }
}
