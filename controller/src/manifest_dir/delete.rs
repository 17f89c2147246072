//! Removing objects from the manifests directory. A file that holds only the object is
//! deleted; a file that also holds other objects is left alone and named, because rewriting it
//! would lose the user's comments and layout. Deleting an object that others refer to is
//! allowed (the daemon reports the dangling reference on the referring object);
//! [`dangling_references`] says which references break, for a warning.

use std::path::PathBuf;

use llorch_manifests::parse::Located;
use llorch_manifests::{ObjectRef, validate};

use super::{DirError, ManifestDir};

/// What deleting one object does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its file is removed.
    Deleted(PathBuf),
    /// Not declared anywhere.
    NotFound,
    /// Declared in a file that holds other objects too.
    SharedFile {
        /// The file to edit.
        file: PathBuf,
        /// The other objects in it.
        others: Vec<ObjectRef>,
    },
}

/// Decides, without touching anything, what deleting `object` from `dir` does.
pub fn outcome(dir: &ManifestDir, object: &ObjectRef) -> Outcome {
    let found = dir.find(object);
    let Some((file, _)) = found.first() else {
        return Outcome::NotFound;
    };
    let others: Vec<ObjectRef> = file
        .objects()
        .iter()
        .map(|l| l.object.object_ref())
        .filter(|r| r != object)
        .collect();
    if others.is_empty() {
        Outcome::Deleted(file.path.clone())
    } else {
        Outcome::SharedFile {
            file: file.path.clone(),
            others,
        }
    }
}

/// Removes `path` (already gone counts as removed).
pub fn remove(path: &std::path::Path) -> Result<(), DirError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DirError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The message for [`Outcome::SharedFile`].
pub fn shared_file_message(object: &ObjectRef, file: &std::path::Path, others: &[ObjectRef]) -> String {
    let others: Vec<String> = others.iter().map(ToString::to_string).collect();
    format!(
        "{object} is declared in {} together with {}; edit that file to remove it",
        file.display(),
        others.join(", ")
    )
}

/// References broken by removing `removed` from `dir` (as read before the removal).
pub fn dangling_references(dir: &ManifestDir, removed: &[ObjectRef]) -> Vec<String> {
    if removed.is_empty() {
        return Vec::new();
    }
    let before: Vec<Located> = dir.objects().cloned().collect();
    let after: Vec<Located> = before
        .iter()
        .filter(|l| !removed.contains(&l.object.object_ref()))
        .cloned()
        .collect();
    let known = validate::check_set(&before);
    validate::check_set(&after)
        .into_iter()
        .filter(|e| !known.contains(e))
        .map(|e| e.to_string())
        .collect()
}
