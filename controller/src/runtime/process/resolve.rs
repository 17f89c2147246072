//! Finding an Engine's executable the way a shell would: an absolute or relative path is taken
//! as it is, a bare name is looked up on `PATH`; either way it must be a regular file with an
//! execute bit. Used by the process runtime, the controller's Engine check and `orchctl doctor`.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Resolves `name` against `path_var` (the value of `PATH`); the error says what was looked at.
pub fn resolve_executable(name: &str, path_var: Option<&OsStr>) -> Result<PathBuf, String> {
    if name.trim().is_empty() {
        return Err("the executable name is empty".into());
    }
    if name.contains('/') {
        let path = Path::new(name);
        return match executable_file(path) {
            Ok(()) => Ok(path.to_path_buf()),
            Err(why) => Err(format!("`{name}` {why}")),
        };
    }
    let dirs: Vec<PathBuf> = path_var.map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    for dir in &dirs {
        let candidate = dir.join(name);
        if executable_file(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "`{name}` is not on PATH ({})",
        if dirs.is_empty() {
            "PATH is empty".to_string()
        } else {
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        }
    ))
}

/// Resolves `name` against this process's `PATH`.
pub fn which(name: &str) -> Result<PathBuf, String> {
    resolve_executable(name, std::env::var_os("PATH").as_deref())
}

fn executable_file(path: &Path) -> Result<(), &'static str> {
    let meta = std::fs::metadata(path).map_err(|_| "does not exist")?;
    if !meta.is_file() {
        return Err("is not a file");
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("is not executable (no execute bit; `chmod +x` it)");
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
        assert!(resolve_executable("notes", path).unwrap_err().contains("not on PATH"));
        let abs = plain.display().to_string();
        assert!(resolve_executable(&abs, path).unwrap_err().contains("not executable"));
        assert!(
            resolve_executable("/no/such/engine", path)
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(
            resolve_executable("engine", None)
                .unwrap_err()
                .contains("PATH is empty")
        );
    }
}
