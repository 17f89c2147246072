//! Finding an Engine's executable the way a shell would: an absolute or relative path is taken
//! as it is, a bare name is looked up on `PATH`; either way it must be a regular file with an
//! execute bit. Used by the process runtime, the controller's Engine check and `orchctl doctor`.
//! It only looks: it never runs or changes anything.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why an executable could not be found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No name was given.
    #[error("the executable name is empty")]
    EmptyName,
    /// A path that is not an executable file.
    #[error("`{name}` {problem}")]
    NotExecutable {
        /// The path as given.
        name: String,
        /// What is wrong with the file.
        #[source]
        problem: FileProblem,
    },
    /// A bare name found in no directory of `PATH`.
    #[error("`{name}` is not on PATH ({searched})")]
    NotOnPath {
        /// The name.
        name: String,
        /// The directories looked in, `:`-separated, or `PATH is empty`.
        searched: String,
    },
}

/// What is wrong with a file that should be an executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// Nothing there.
    #[error("does not exist")]
    Missing,
    /// A directory or another non-file.
    #[error("is not a file")]
    NotAFile,
    /// No execute bit.
    #[error("is not executable (no execute bit; `chmod +x` it)")]
    NoExecuteBit,
}

/// Resolves `name` against `path_var` (the value of `PATH`); the error says what was looked at.
pub fn resolve_executable(name: &str, path_var: Option<&OsStr>) -> Result<PathBuf, ResolveError> {
    if name.trim().is_empty() {
        return Err(ResolveError::EmptyName);
    }
    if name.contains('/') {
        let path = Path::new(name);
        return match executable_file(path) {
            Ok(()) => Ok(path.to_path_buf()),
            Err(problem) => Err(ResolveError::NotExecutable {
                name: name.to_string(),
                problem,
            }),
        };
    }
    let dirs: Vec<PathBuf> = path_var.map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    for dir in &dirs {
        let candidate = dir.join(name);
        if executable_file(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(ResolveError::NotOnPath {
        name: name.to_string(),
        searched: if dirs.is_empty() {
            "PATH is empty".to_string()
        } else {
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        },
    })
}

/// Resolves `name` against this process's `PATH`.
pub fn which(name: &str) -> Result<PathBuf, ResolveError> {
    resolve_executable(name, std::env::var_os("PATH").as_deref())
}

fn executable_file(path: &Path) -> Result<(), FileProblem> {
    let meta = std::fs::metadata(path).map_err(|_| FileProblem::Missing)?;
    if !meta.is_file() {
        return Err(FileProblem::NotAFile);
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(FileProblem::NoExecuteBit);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_found_on_path_and_paths_must_be_executable_files() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("engine");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("notes");
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = Some(dir.path().as_os_str());
        assert_eq!(resolve_executable("engine", path).unwrap(), exe);
        let err = |name: &str, path| resolve_executable(name, path).unwrap_err().to_string();
        assert!(err("notes", path).contains("not on PATH"));
        let abs = plain.display().to_string();
        assert!(err(&abs, path).contains("not executable"));
        assert_eq!(err("/no/such/engine", path), "`/no/such/engine` does not exist");
        assert_eq!(err("engine", None), "`engine` is not on PATH (PATH is empty)");
        assert_eq!(err(" ", path), "the executable name is empty");
    }
}
