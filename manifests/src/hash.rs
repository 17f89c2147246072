//! Content hashes: a short, stable digest of any serialisable value, used as a manifest's
//! generation and as the spec hash on engine containers.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Hex characters kept from the sha256 (48 bits: ample for telling specs apart on one host).
pub const HASH_LEN: usize = 12;

/// A short hex sha256 over the value's canonical JSON (object keys sorted).
pub fn short_hash<T: Serialize>(value: &T) -> String {
    // serde_json's default map is ordered by key, so equal values give equal bytes.
    let canonical = serde_json::to_value(value)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    let mut hex = String::with_capacity(HASH_LEN);
    for byte in digest.iter().take(HASH_LEN / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// A short hex sha256 over `bytes` themselves (a file's contents): no JSON on the way, which
/// for bytes would be an array of numbers several times their size.
pub fn short_hash_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(HASH_LEN / 2).map(|b| format!("{b:02x}")).collect()
}

/// The full lowercase hex sha256 of `bytes`: an artifact's content address (`sha256:<this>`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_hash_equal_regardless_of_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
        assert_eq!(short_hash(&a), short_hash(&b));
        assert_eq!(short_hash(&a).len(), HASH_LEN);
        let c: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":[1,2]}"#).unwrap();
        assert_ne!(short_hash(&a), short_hash(&c));
    }

    #[test]
    fn bytes_hash_the_bytes() {
        // sha256("abc") = ba7816bf8f01…
        assert_eq!(short_hash_bytes(b"abc"), "ba7816bf8f01");
        assert_ne!(short_hash_bytes(b"abc"), short_hash(&b"abc".to_vec()));
    }
}
