//! `Model`: a model artifact — where it is (`ref`), what it must hash to (`digest`), how much
//! context it supports and, optionally, how much VRAM it needs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Kind, Spec};

/// `Model.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelSpec {
    /// Where the artifact is. This release supports `file:/abs/path.gguf` and `file:rel/path`
    /// (relative to the manifest file's directory); `hf:` and `https://` are reserved.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Expected content digest, `sha256:<64 hex>`; verified before any replica starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The largest context (tokens) the model supports.
    pub ctx_max: u32,
    /// VRAM one replica needs, in bytes; overrides the estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
}

impl ModelSpec {
    /// Parses `ref`, or says why it is not supported.
    pub fn parse_ref(&self) -> Result<ModelRef<'_>, String> {
        let r = self.reference.as_str();
        if let Some(path) = r.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path, e.g. `file:/models/tiny.gguf`".into());
            }
            return Ok(ModelRef::File(path));
        }
        for scheme in ["hf:", "https://", "http://", "s3://", "oci://"] {
            if r.starts_with(scheme) {
                return Err(format!(
                    "`{scheme}` model references are not yet supported in this release; \
                     download the file and use `file:/path/to/model.gguf`"
                ));
            }
        }
        Err(format!(
            "`{r}` is not a model reference; expected `file:/path/to/model.gguf`"
        ))
    }
}
