//! Where a Model's `file:` reference may point (`models.fileRoots`). The config is the trust
//! root: without it a manifest could name any file the daemon can read (`/etc/shadow`) and
//! have its lines served back through an engine's log. The check is made on the resolved path
//! (symlinks followed), so a link inside a root cannot lead out of it.

use std::path::{Path, PathBuf};

/// The directories `file:` references must resolve into.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FileRoots {
    /// No restriction (tests and embedding; the daemon always sets [`FileRoots::Under`]).
    #[default]
    Anywhere,
    /// Only files under these directories (resolved once here).
    Under(Vec<PathBuf>),
}

impl FileRoots {
    /// Files under `roots`; each root is resolved now when it exists.
    pub fn under(roots: impl IntoIterator<Item = PathBuf>) -> Self {
        FileRoots::Under(roots.into_iter().map(|r| r.canonicalize().unwrap_or(r)).collect())
    }

    /// Whether the resolved path `real` lies under a root.
    pub fn admits(&self, real: &Path) -> bool {
        match self {
            FileRoots::Anywhere => true,
            FileRoots::Under(roots) => roots.iter().any(|root| real.starts_with(root)),
        }
    }

    /// The resolved path of `path` when it lies under a root, else the message that says so
    /// and what to do (the same words for the controller and the write API).
    pub fn check(&self, path: &Path) -> Result<PathBuf, String> {
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.admits(&real) {
            return Ok(real);
        }
        Err(format!(
            "model file {} is outside `models.fileRoots` ({}); move it under one of them, or add its \
             directory to `models.fileRoots` in config.yaml",
            real.display(),
            self.describe()
        ))
    }

    /// The roots, for messages.
    pub fn describe(&self) -> String {
        match self {
            FileRoots::Anywhere => "anywhere".into(),
            FileRoots::Under(roots) => roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_resolved_paths_under_a_root_are_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("models");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("m.gguf"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("escape.gguf")).unwrap();
        let roots = FileRoots::under([root.clone()]);
        let real = |p: &Path| p.canonicalize().unwrap();
        assert!(roots.admits(&real(&root.join("m.gguf"))));
        assert!(
            !roots.admits(&real(&root.join("escape.gguf"))),
            "a link out of the root"
        );
        assert!(!roots.admits(Path::new("/etc/shadow")));
        assert!(
            !roots.admits(&dir.path().join("models-other/m.gguf")),
            "a sibling with the same prefix"
        );
        assert!(FileRoots::Anywhere.admits(Path::new("/etc/shadow")));
    }
}
