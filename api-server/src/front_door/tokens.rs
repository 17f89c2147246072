//! The API's bearer tokens (AUTH-1001..1008): named secrets from `auth.tokenFile` and the
//! `LLAMA_ORCH_TOKEN` environment variable, compared in constant time. A token never leaves
//! this type: not in `Debug`, not in an error, not in a log line; only its name does.

use std::fmt;
use std::path::Path;

use llorch_manifests::files::{self, ReadError};
use subtle::ConstantTimeEq;

/// The environment variable whose value is a token named [`ENV_TOKEN_NAME`].
pub const TOKEN_ENV: &str = "LLAMA_ORCH_TOKEN";
/// The name the environment's token goes by in logs.
pub const ENV_TOKEN_NAME: &str = "env";
/// Shortest token accepted: a guessable token is worse than none, because it looks safe.
pub const MIN_TOKEN_LEN: usize = 16;
/// Largest token file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Why the tokens could not be loaded. Messages name the file and the entry, never a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a plain file, is too large, or others can read it.
    #[error("token file {path}: {problem}")]
    File {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The file is not a YAML map of `name: token`.
    #[error(
        "token file {path}: {problem}; write one `name: token` line per token, e.g. `laptop: <openssl rand -hex 24>`"
    )]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// One entry is unusable.
    #[error("{source_name}: token `{name}`: {problem}")]
    Entry {
        /// The file, or `LLAMA_ORCH_TOKEN`.
        source_name: String,
        /// The token's name.
        name: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

/// Named bearer tokens. Empty means the API is open to loopback clients only.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl Tokens {
    /// No tokens.
    pub fn none() -> Self {
        Self::default()
    }

    /// The tokens of `auth.tokenFile` (when set) and of `env` (the value of
    /// `LLAMA_ORCH_TOKEN`, when set and not empty).
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Self, TokenError> {
        let mut tokens = match file {
            Some(path) => Self::parse(&path.display().to_string(), &read_private(path)?)?,
            None => Self::none(),
        };
        if let Some(token) = env.filter(|t| !t.is_empty()) {
            tokens.add(TOKEN_ENV, ENV_TOKEN_NAME, token.trim())?;
        }
        Ok(tokens)
    }

    /// Parses a token file's text: a YAML map of `name: token`. `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, TokenError> {
        let format = |problem: String| TokenError::Format {
            path: origin.to_string(),
            problem,
        };
        let map = match serde_saphyr::from_str::<serde_json::Value>(text) {
            _ if text.trim().is_empty() => serde_json::Map::new(),
            Ok(serde_json::Value::Object(map)) => map,
            Ok(serde_json::Value::Null) => serde_json::Map::new(),
            Ok(_) => return Err(format("it is not a map".into())),
            // Without the snippet: it would quote the file, tokens included.
            Err(e) => return Err(format(format!("not YAML ({})", e.without_snippet()))),
        };
        if map.is_empty() {
            return Err(format("it holds no token".into()));
        }
        let mut tokens = Self::none();
        for (name, value) in map {
            let Some(token) = value.as_str() else {
                return Err(TokenError::Entry {
                    source_name: origin.to_string(),
                    name,
                    problem: "the token must be a string".into(),
                });
            };
            tokens.add(origin, &name, token)?;
        }
        Ok(tokens)
    }

    fn add(&mut self, origin: &str, name: &str, token: &str) -> Result<(), TokenError> {
        let entry = |problem: &str| TokenError::Entry {
            source_name: origin.to_string(),
            name: name.to_string(),
            problem: problem.to_string(),
        };
        if !llorch_manifests::validate::is_valid_name(name) {
            return Err(entry("a token's name must be a short lower-case name like `laptop`"));
        }
        if self.entries.iter().any(|(n, _)| n == name) {
            return Err(entry("this name is used twice"));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(entry(&format!(
                "the token is shorter than {MIN_TOKEN_LEN} characters; make one with `openssl rand -hex 24`"
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(entry(
                "a token may hold printable ASCII characters only, without spaces",
            ));
        }
        self.entries.push((name.to_string(), token.as_bytes().to_vec()));
        Ok(())
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tokens' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// The name of the token `presented` is, comparing with every token in constant time (per
    /// length), so the time taken says nothing about how much of it matched.
    pub fn verify(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for (name, secret) in &self.entries {
            let equal: bool = presented.ct_eq(secret).into();
            if equal && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The file's text, if it is a regular file of sane size that only its owner can read.
fn read_private(path: &Path) -> Result<String, TokenError> {
    let shown = path.display().to_string();
    let file_error = |problem: String| TokenError::File {
        path: shown.clone(),
        problem,
    };
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 {
            return Err(file_error(format!(
                "other users can read it (mode {mode:o}); run `chmod 600 {shown}`"
            )));
        }
    }
    let bytes = files::read_regular(path, MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::Open(source) => TokenError::Read {
            path: shown.clone(),
            source,
        },
        other => file_error(other.to_string()),
    })?;
    String::from_utf8(bytes).map_err(|_| file_error("not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const A: &str = "0123456789abcdef0123";
    const B: &str = "fedcba9876543210fedc";

    #[test]
    fn a_file_of_named_tokens_verifies_each_by_name() {
        let t = Tokens::parse("t.yaml", &format!("laptop: {A}\nci: \"{B}\"\n")).unwrap();
        assert_eq!(t.verify(A.as_bytes()), Some("laptop"));
        assert_eq!(t.verify(B.as_bytes()), Some("ci"));
        assert_eq!(t.verify(b"0123456789abcdef012"), None, "a prefix is not the token");
        assert_eq!(t.verify(format!("{A}x").as_bytes()), None);
        assert_eq!(t.verify(b""), None);
    }

    #[test]
    fn bad_files_and_entries_are_named_without_the_token() {
        let cases = [
            ("", "holds no token"),
            ("- a\n- b\n", "name: token"),
            ("Laptop: 0123456789abcdef0123\n", "short lower-case name"),
            ("laptop: short\n", "shorter than 16"),
            ("laptop: \"0123456789 abcdef0123\"\n", "without spaces"),
            ("laptop: 12345678901234567890\n", "must be a string"),
        ];
        for (text, expected) in cases {
            let e = Tokens::parse("t.yaml", text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(e.contains("t.yaml"), "{e}");
            assert!(!e.contains("abcdef0123"), "a token leaked into {e}");
        }
    }

    #[test]
    fn the_environment_adds_a_token_named_env() {
        let t = Tokens::load(None, Some(A)).unwrap();
        assert_eq!(t.verify(A.as_bytes()), Some("env"));
        assert!(Tokens::load(None, Some("")).unwrap().is_empty());
        assert!(Tokens::load(None, None).unwrap().is_empty());
        assert!(Tokens::load(None, Some("short")).is_err());
    }

    #[test]
    fn debug_shows_names_only() {
        let t = Tokens::parse("t.yaml", &format!("laptop: {A}\n")).unwrap();
        let shown = format!("{t:?}");
        assert!(shown.contains("laptop") && !shown.contains(A), "{shown}");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, format!("laptop: {A}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Tokens::load(Some(&path), None).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            Tokens::load(Some(&path), None).unwrap().verify(A.as_bytes()),
            Some("laptop")
        );
        let e = Tokens::load(Some(dir.path()), None).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
