//! `Model`: a model artifact — where it is (`ref`), what it must hash to (`digest`), how much
//! context it supports and, optionally, how much VRAM it needs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, Spec};

/// `Model.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSpec {
    /// Where the artifact is: `file:/abs/path.gguf`, `file:rel/path` (relative to the manifest
    /// file's directory), `hf:org/repo/path/file.gguf`, `hf:org/repo` (the repository's only
    /// `.gguf` file), `https://host/path` or, for loopback hosts only, `http://127.0.0.1:…/path`.
    /// Remote artifacts are fetched into the model cache when the config's `models` policy
    /// allows it (ORCH-3090, ORCH-3091).
    #[serde(rename = "ref")]
    pub reference: String,
    /// Expected content digest, `sha256:<64 hex>`; verified before any replica starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::validate::DIGEST_PATTERN))]
    pub digest: Option<String>,
    /// The largest context (tokens) the model supports.
    #[schemars(range(min = 1))]
    pub ctx_max: u32,
    /// VRAM one replica needs, in bytes (weights, KV cache and overhead together); overrides
    /// the estimate read from the GGUF header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub vram_bytes: Option<u64>,
}

impl Spec for ModelSpec {
    const KIND: Kind = Kind::Model;
}

/// A parsed `ref`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRef<'a> {
    /// `file:` — a path, absolute or relative to the manifest's directory.
    File(&'a str),
    /// `https://…`, or `http://…` on a loopback host: fetched as is.
    Url {
        /// The whole URL.
        url: &'a str,
        /// Host name or address (no port), lower-cased by the caller when compared.
        host: &'a str,
        /// True for `https://`.
        tls: bool,
    },
    /// `hf:org/repo[/path/in/repo]` — a Hugging Face Hub file (revision `main`).
    Hf {
        /// `org/repo`.
        repo: &'a str,
        /// The file inside the repository; `None` means "the repository's only `.gguf` file".
        file: Option<&'a str>,
    },
}

/// Hosts that count as loopback for plain `http://` model references.
pub const LOOPBACK_HOSTS: [&str; 4] = ["127.0.0.1", "localhost", "[::1]", "::1"];

/// Why a Model's `ref` cannot be used; the message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// `file:` without a path.
    #[error("`file:` needs a path, e.g. `file:/models/tiny.gguf`")]
    EmptyFile,
    /// `hf:` without `org/repo`, or with path tricks.
    #[error("`{0}` is not a Hugging Face reference; use `hf:org/repo/file.gguf` or `hf:org/repo`")]
    Hf(String),
    /// A URL without a host.
    #[error("`{0}` is not a URL with a host")]
    NoHost(String),
    /// Plain `http://` to a host that is not loopback.
    #[error("plain `http://` is only allowed for loopback hosts (tests); use `https://{0}`")]
    PlainHttp(String),
    /// A scheme llama-orch will support, not yet.
    #[error("`{0}` model references are not supported yet; use `hf:`, `https://` or `file:`")]
    NotYet(&'static str),
    /// Nothing it knows.
    #[error(
        "`{0}` is not a model reference; expected `file:/path/to/model.gguf`, `hf:org/repo/file.gguf` or `https://…`"
    )]
    Unknown(String),
}

impl ModelSpec {
    /// Parses `ref`, or says why it is not supported.
    pub fn parse_ref(&self) -> Result<ModelRef<'_>, RefError> {
        let r = self.reference.as_str();
        if let Some(path) = r.strip_prefix("file:") {
            if path.is_empty() {
                return Err(RefError::EmptyFile);
            }
            return Ok(ModelRef::File(path));
        }
        if let Some(rest) = r.strip_prefix("hf:") {
            let parts: Vec<&str> = rest.split('/').collect();
            let ok = parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && *p != "." && *p != "..");
            if !ok || rest.contains(['?', '#', '\\', ' ']) {
                return Err(RefError::Hf(r.to_string()));
            }
            let repo_len = parts[0].len() + 1 + parts[1].len();
            let file = (parts.len() > 2).then(|| &rest[repo_len + 1..]);
            return Ok(ModelRef::Hf {
                repo: &rest[..repo_len],
                file,
            });
        }
        for (scheme, tls) in [("https://", true), ("http://", false)] {
            if let Some(rest) = r.strip_prefix(scheme) {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                let authority = authority.rsplit('@').next().unwrap_or_default();
                let host = if authority.starts_with('[') {
                    // `[v6]`, brackets included; an unclosed `[` leaves no host.
                    authority.find(']').map(|end| &authority[..=end]).unwrap_or_default()
                } else {
                    authority.split(':').next().unwrap_or_default()
                };
                if host.is_empty() || r.contains(char::is_whitespace) {
                    return Err(RefError::NoHost(r.to_string()));
                }
                if !tls && !LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                    return Err(RefError::PlainHttp(rest.to_string()));
                }
                return Ok(ModelRef::Url { url: r, host, tls });
            }
        }
        for scheme in ["s3://", "oci://"] {
            if r.starts_with(scheme) {
                return Err(RefError::NotYet(scheme));
            }
        }
        Err(RefError::Unknown(r.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(r: &str) -> Result<ModelRef<'_>, String> {
        parse_typed(r).map_err(|e| e.to_string())
    }

    fn parse_typed(r: &str) -> Result<ModelRef<'_>, RefError> {
        // Leak: tests only; keeps the borrowed result simple.
        let spec: &'static ModelSpec = Box::leak(Box::new(ModelSpec {
            reference: r.to_string(),
            digest: None,
            ctx_max: 1,
            vram_bytes: None,
        }));
        spec.parse_ref()
    }

    #[test]
    fn every_reference_form_parses_to_its_parts() {
        assert_eq!(parse("file:/m/x.gguf"), Ok(ModelRef::File("/m/x.gguf")));
        assert_eq!(
            parse("hf:org/repo/sub/x.gguf"),
            Ok(ModelRef::Hf {
                repo: "org/repo",
                file: Some("sub/x.gguf")
            })
        );
        assert_eq!(
            parse("hf:org/repo"),
            Ok(ModelRef::Hf {
                repo: "org/repo",
                file: None
            })
        );
        assert_eq!(
            parse("https://example.com:8443/a.gguf"),
            Ok(ModelRef::Url {
                url: "https://example.com:8443/a.gguf",
                host: "example.com",
                tls: true
            })
        );
        assert_eq!(
            parse("http://127.0.0.1:9000/a.gguf"),
            Ok(ModelRef::Url {
                url: "http://127.0.0.1:9000/a.gguf",
                host: "127.0.0.1",
                tls: false
            })
        );
        assert!(matches!(
            parse("http://[::1]:9/a"),
            Ok(ModelRef::Url { host: "[::1]", .. })
        ));
    }

    #[test]
    fn unusable_references_say_what_to_write_instead() {
        assert!(parse("http://example.com/a.gguf").unwrap_err().contains("loopback"));
        assert!(parse("hf:onlyorg").unwrap_err().contains("hf:org/repo"));
        assert!(parse("hf:org/../x").unwrap_err().contains("hf:org/repo"));
        assert!(parse("s3://b/k").unwrap_err().contains("not supported yet"));
        assert!(parse("model.gguf").unwrap_err().contains("file:/path/to/model.gguf"));
        assert!(parse("https:///x").unwrap_err().contains("host"));
    }

    /// Found by the `manifest` fuzz target (fuzz/regressions/manifest/unclosed-ipv6-bracket):
    /// the host of `https://[…` without `]` was sliced one byte past its end, a panic while
    /// validating a Model manifest.
    #[test]
    fn an_unclosed_ipv6_bracket_is_a_url_without_a_host() {
        for r in [
            "https://[xample.com/models/m.gguf",
            "http://[::1",
            "https://[",
            "https://u@[::1:9/a",
        ] {
            assert_eq!(parse_typed(r), Err(RefError::NoHost(r.to_string())), "{r}");
        }
        assert!(matches!(
            parse("https://[::1]/a"),
            Ok(ModelRef::Url { host: "[::1]", .. })
        ));
    }
}
