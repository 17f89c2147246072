//! Resolves a Model's `file:` reference to a readable file on the host and verifies its
//! sha256 digest when one is declared. Digests are cached by (path, size, mtime), so a large
//! model is hashed once, not on every reconcile pass.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use llorch_manifests::ModelSpec;
use llorch_manifests::model::ModelRef;
use sha2::{Digest, Sha256};

/// Checks models, remembering digests.
#[derive(Debug, Default)]
pub struct ModelChecker {
    digests: HashMap<(PathBuf, u64, SystemTime), String>,
}

impl ModelChecker {
    /// The model file on the host, checked (and digest-verified when declared). `manifest_file`
    /// anchors relative paths. The error says what is wrong and what to do.
    pub fn resolve(&mut self, spec: &ModelSpec, manifest_file: &Path) -> Result<PathBuf, String> {
        let ModelRef::File(raw) = spec.parse_ref()? else {
            return Err(format!(
                "`{}` is a remote reference; remote models are not fetched by this build yet",
                spec.reference
            ));
        };
        let path = if Path::new(raw).is_absolute() {
            PathBuf::from(raw)
        } else {
            manifest_file.parent().unwrap_or(Path::new(".")).join(raw)
        };
        let meta = std::fs::metadata(&path).map_err(|e| {
            format!(
                "model file {} is not readable ({e}); put the file there or fix `spec.ref`",
                path.display()
            )
        })?;
        if !meta.is_file() {
            return Err(format!("model path {} is not a regular file", path.display()));
        }
        let path = path.canonicalize().unwrap_or(path);
        if let Some(want) = &spec.digest {
            let key = (
                path.clone(),
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            );
            let have = match self.digests.get(&key) {
                Some(d) => d.clone(),
                None => {
                    let d =
                        sha256_file(&path).map_err(|e| format!("cannot read model file {}: {e}", path.display()))?;
                    self.digests.insert(key, d.clone());
                    d
                }
            };
            if !want.eq_ignore_ascii_case(&have) {
                return Err(format!(
                    "digest mismatch for {}: manifest says {want}, file is {have}; replace the file or fix `spec.digest`",
                    path.display()
                ));
            }
        }
        Ok(path)
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Ok(format!(
        "sha256:{}",
        digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(reference: &str, digest: Option<&str>) -> ModelSpec {
        ModelSpec {
            reference: reference.into(),
            digest: digest.map(String::from),
            ctx_max: 64,
            vram_bytes: None,
        }
    }

    #[test]
    fn relative_refs_resolve_against_the_manifest_and_digests_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.gguf"), b"abc").unwrap();
        let manifest = dir.path().join("model.yaml");
        let mut c = ModelChecker::default();
        assert!(
            c.resolve(&spec("file:m.gguf", None), &manifest)
                .unwrap()
                .ends_with("m.gguf")
        );
        let good = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(c.resolve(&spec("file:m.gguf", Some(good)), &manifest).is_ok());
        let bad = format!("sha256:{}", "0".repeat(64));
        let err = c.resolve(&spec("file:m.gguf", Some(&bad)), &manifest).unwrap_err();
        assert!(err.contains("digest mismatch"), "{err}");
        let err = c.resolve(&spec("file:missing.gguf", None), &manifest).unwrap_err();
        assert!(err.contains("missing.gguf") && err.contains("not readable"), "{err}");
    }
}
