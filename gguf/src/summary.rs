//! What a GGUF header says about a model's size: tensor bytes and the shape numbers that size
//! its KV cache. Built by the header parser; turned into the wire type [`GgufInfo`].

use llorch_manifests::status::GgufInfo;

use crate::error::{GgufError, Result};
use crate::header::Metadata;

/// The parts of a GGUF header that size a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufSummary {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// Tensors in the file.
    pub tensor_count: u64,
    /// Sum of the tensor sizes computed from each tensor's ggml type and dimensions.
    pub tensor_bytes: u64,
    /// `<arch>.block_count`.
    pub layers: u32,
    /// `<arch>.attention.head_count` (the largest, when given per layer).
    pub heads: u32,
    /// `<arch>.attention.head_count_kv`; `heads` when absent.
    pub kv_heads: u32,
    /// `<arch>.embedding_length`.
    pub embedding_length: u32,
    /// `<arch>.attention.key_length`; `embedding_length / heads` when absent.
    pub key_length: u32,
    /// `<arch>.attention.value_length`; `embedding_length / heads` when absent.
    pub value_length: u32,
    /// `<arch>.context_length`: the context the model was trained for.
    pub context_length: u32,
    /// Where the tensor data starts (aligned to `general.alignment`).
    pub data_offset: u64,
    /// Where the last tensor's data ends, from the start of the file.
    pub data_end: u64,
}

impl GgufSummary {
    /// KV-cache bytes per token of context with llama.cpp's default f16 K and V caches:
    /// `layers × kv_heads × (key_length + value_length) × 2`.
    pub fn kv_bytes_per_token(&self) -> u64 {
        u64::from(self.layers)
            * u64::from(self.kv_heads)
            * (u64::from(self.key_length) + u64::from(self.value_length))
            * 2
    }

    /// The status wire type.
    pub fn info(&self) -> GgufInfo {
        GgufInfo {
            architecture: self.architecture.clone(),
            tensor_count: self.tensor_count,
            layers: self.layers,
            heads: self.heads,
            kv_heads: self.kv_heads,
            embedding_length: self.embedding_length,
            context_length: self.context_length,
        }
    }

    pub(crate) fn from_parts(
        version: u32,
        tensor_count: u64,
        tensor_bytes: u64,
        data_offset: u64,
        data_end: u64,
        meta: &Metadata,
    ) -> Result<GgufSummary> {
        let Some((architecture, _)) = meta.architecture.clone() else {
            return Err(GgufError::MissingKey {
                key: "general.architecture".into(),
            });
        };
        let key = |suffix: &str| format!("{architecture}.{suffix}");
        let required = |suffix: &str| -> Result<u32> {
            let k = key(suffix);
            optional(meta, &k)?.ok_or(GgufError::MissingKey { key: k })
        };
        let layers = required("block_count")?;
        let context_length = required("context_length")?;
        let embedding_length = required("embedding_length")?;
        let heads = required("attention.head_count")?;
        let kv_heads = optional(meta, &key("attention.head_count_kv"))?.unwrap_or(heads);
        let head_dim = embedding_length.checked_div(heads).unwrap_or(0);
        let key_length = optional(meta, &key("attention.key_length"))?.unwrap_or(head_dim);
        let value_length = optional(meta, &key("attention.value_length"))?.unwrap_or(head_dim);
        Ok(GgufSummary {
            version,
            architecture,
            tensor_count,
            tensor_bytes,
            layers,
            heads,
            kv_heads,
            embedding_length,
            key_length,
            value_length,
            context_length,
            data_offset,
            data_end,
        })
    }
}

/// A sizing key as u32: absent → `None`; not an integer or out of range → an error.
fn optional(meta: &Metadata, key: &str) -> Result<Option<u32>> {
    let Some(v) = meta.get(key) else { return Ok(None) };
    match v.value {
        Ok(n) => u32::try_from(n).map(Some).map_err(|_| GgufError::Invalid {
            field: format!("metadata key '{key}'"),
            offset: v.offset,
            reason: format!("{n} is not in 0..=4294967295"),
        }),
        Err(found) => Err(GgufError::WrongType {
            key: key.to_owned(),
            offset: v.offset,
            found,
            expected: "an unsigned integer or an array of them",
        }),
    }
}
