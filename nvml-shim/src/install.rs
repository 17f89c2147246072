//! Places the built shim where the dynamic loader looks for NVML: a copy named
//! `libnvidia-ml.so.1` in a directory a test puts on `LD_LIBRARY_PATH`, and finds the built
//! library next to a test or example binary. No loading happens here.

use std::path::{Path, PathBuf};

/// The file cargo writes for this crate's cdylib.
pub const CDYLIB_FILE: &str = "libllorch_nvml_shim.so";

/// The name NVML's callers `dlopen` (nvml-wrapper's default, and `gpu::nvml::NVML_LIBRARY`).
pub const NVML_SONAME: &str = "libnvidia-ml.so.1";

/// Copies the shim `so` into `dir` (created if missing) as `libnvidia-ml.so.1`, replacing any
/// earlier copy atomically, and returns the new file's path.
pub fn install_as_libnvidia_ml(so: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(NVML_SONAME);
    let tmp = dir.join(format!(".{NVML_SONAME}.{}.tmp", std::process::id()));
    let copied = std::fs::copy(so, &tmp).and_then(|_| std::fs::rename(&tmp, &target));
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied.map(|()| target)
}

/// The built cdylib for a binary at `exe` in a cargo target directory: tests run from
/// `target/<profile>/deps/`, examples from `target/<profile>/examples/`, binaries from
/// `target/<profile>/`. Cargo writes the library to `deps/` whenever it builds it (a test
/// build too) but copies it up to `target/<profile>/` only on `cargo build`, so the newer of
/// the two is the current one.
pub fn cdylib_near(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    let profile = match dir.file_name()?.to_str()? {
        "deps" | "examples" => dir.parent()?,
        _ => dir,
    };
    [profile.join(CDYLIB_FILE), profile.join("deps").join(CDYLIB_FILE)]
        .into_iter()
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok().filter(|m| m.is_file())?.modified().ok()?;
            Some((modified, p))
        })
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_aged(path: &Path, age_s: u64) {
        let f = std::fs::File::create(path).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age_s))
            .unwrap();
    }

    #[test]
    fn the_newest_library_is_found_from_tests_examples_and_binaries() {
        let t = tempfile::tempdir().unwrap();
        let profile = t.path().join("debug");
        let (top, deps) = (profile.join(CDYLIB_FILE), profile.join("deps").join(CDYLIB_FILE));
        std::fs::create_dir_all(profile.join("deps")).unwrap();
        let exes = [
            profile.join("deps").join("shim-0123"),
            profile.join("examples").join("x"),
            profile.join("llama-orchd"),
        ];
        write_aged(&deps, 60);
        assert_eq!(cdylib_near(&exes[0]), Some(deps.clone()));
        // `cargo build` copied it up, then a test build rebuilt it in deps/ only.
        write_aged(&top, 30);
        assert_eq!(cdylib_near(&exes[0]), Some(top.clone()));
        write_aged(&deps, 0);
        for exe in &exes {
            assert_eq!(cdylib_near(exe), Some(deps.clone()), "{exe:?}");
        }
        assert_eq!(cdylib_near(&t.path().join("elsewhere").join("x")), None);
    }

    #[test]
    fn installing_twice_replaces_the_copy_under_the_soname() {
        let t = tempfile::tempdir().unwrap();
        let so = t.path().join(CDYLIB_FILE);
        std::fs::write(&so, b"one").unwrap();
        let dir = t.path().join("lib");
        let installed = install_as_libnvidia_ml(&so, &dir).unwrap();
        assert_eq!(installed, dir.join("libnvidia-ml.so.1"));
        std::fs::write(&so, b"two").unwrap();
        install_as_libnvidia_ml(&so, &dir).unwrap();
        assert_eq!(std::fs::read(&installed).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }
}
