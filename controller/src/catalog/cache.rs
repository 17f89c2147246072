//! The content-addressed model cache: verified artifacts at `<cache>/blobs/sha256/<hex>`,
//! downloads in progress at `<cache>/partial/<key>.part` (never handed to an engine). A
//! download becomes a blob only by [`Cache::promote`]: fsync, rename, fsync of the folder, so a
//! crash leaves either the old state or the whole verified file.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::FetchError;

/// The cache's folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with sha256 `hex` lives.
    pub fn blob(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    /// The partial file for download `key` (a hex string).
    pub fn partial(&self, key: &str) -> PathBuf {
        self.root.join("partial").join(format!("{key}.part"))
    }

    /// Creates `blobs/sha256` and `partial`.
    pub fn ensure_dirs(&self) -> Result<(), FetchError> {
        for dir in [self.root.join("blobs/sha256"), self.root.join("partial")] {
            std::fs::create_dir_all(&dir).map_err(|source| FetchError::Io { path: dir, source })?;
        }
        Ok(())
    }

    /// Moves the verified `partial` into place as the blob `hex` and returns its path. The
    /// file is fsynced before and the folder after the rename.
    pub fn promote(&self, partial: &Path, hex: &str) -> Result<PathBuf, FetchError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchError::Io { path, source }
        };
        std::fs::File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(io(partial))?;
        let blob = self.blob(hex);
        std::fs::rename(partial, &blob).map_err(io(&blob))?;
        if let Some(dir) = blob.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        }
        Ok(blob)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 64-hex part of a `sha256:<hex>` digest, lower-cased; `None` when malformed.
pub fn digest_hex(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

/// `sha256:<hex>`.
pub fn digest_of_hex(hex: &str) -> String {
    format!("sha256:{hex}")
}

/// The sha256 hex of a string (download keys for references without a digest).
pub fn sha256_str(text: &str) -> String {
    sha256_hex(text.as_bytes())
}

/// The sha256 hex of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Feeds the first `len` bytes of `path` (the whole file for `None`) into `hasher`, calling
/// `on_bytes` after each chunk; returns the bytes read. Blocking: call from a blocking task.
pub fn hash_into(path: &Path, len: Option<u64>, hasher: &mut Sha256, on_bytes: &dyn Fn(u64)) -> std::io::Result<u64> {
    let file = std::fs::File::open(path)?;
    let mut reader: Box<dyn Read> = match len {
        Some(n) => Box::new(file.take(n)),
        None => Box::new(file),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        on_bytes(n as u64);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_promoted_partial_becomes_the_blob_named_by_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.ensure_dirs().unwrap();
        let partial = cache.partial("k");
        std::fs::write(&partial, b"abc").unwrap();
        let mut h = Sha256::new();
        assert_eq!(hash_into(&partial, None, &mut h, &|_| {}).unwrap(), 3);
        let hx = hex(&h.finalize());
        assert_eq!(hx, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let blob = cache.promote(&partial, &hx).unwrap();
        assert_eq!(blob, dir.path().join("blobs/sha256").join(&hx));
        assert_eq!(std::fs::read(&blob).unwrap(), b"abc");
        assert!(!partial.exists());
    }

    #[test]
    fn digests_parse_only_in_their_one_form() {
        let h = "AB".repeat(32);
        assert_eq!(digest_hex(&format!("sha256:{h}")), Some("ab".repeat(32)));
        assert_eq!(digest_hex(&h), None);
        assert_eq!(digest_hex("sha256:abc"), None);
    }
}
