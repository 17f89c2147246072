//! Writes small, valid GGUF v3 files for tests: [`tiny_model`] (what every fake model file in
//! the tests is) and [`GgufBuilder`] for shapes the tests need beyond it.
//!
//! Output is deterministic: the same calls give the same bytes, so a committed fixture can be
//! compared with the generator's output.

use crate::ggml_type::{self, F16, F32, Q4_K, Q8_0};

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Elements of one type: (element type id, encoded elements).
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::String(s) => put_string(out, s),
            Value::Array(items) => {
                // An empty array is written as an array of u8.
                let elem = items.first().map_or(0, Value::type_id);
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    item.encode(out);
                }
            }
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Tensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
}

/// Builds a GGUF v3 file in memory. Tensor data is a deterministic byte pattern.
pub struct GgufBuilder {
    kv: Vec<(String, Value)>,
    tensors: Vec<Tensor>,
    alignment: u64,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        GgufBuilder {
            kv: Vec::new(),
            tensors: Vec::new(),
            alignment: 32,
        }
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key; `general.alignment` as a `U32` also sets the padding used.
    pub fn kv(mut self, key: &str, value: Value) -> Self {
        if let ("general.alignment", Value::U32(a)) = (key, &value)
            && a.is_power_of_two()
        {
            self.alignment = u64::from(*a);
        }
        self.kv.push((key.to_owned(), value));
        self
    }

    /// Adds a tensor of ggml type `type_id` with dimensions `dims` (innermost first).
    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32) -> Self {
        self.tensors.push(Tensor {
            name: name.to_owned(),
            dims: dims.to_vec(),
            type_id,
        });
        self
    }

    /// Size of a tensor in bytes; 0 for an unknown type (the reader refuses those anyway).
    fn tensor_size(t: &Tensor) -> u64 {
        let (block, bytes) = ggml_type::block_layout(t.type_id).unwrap_or((1, 0));
        t.dims.iter().product::<u64>() / block * bytes
    }

    fn pad(&self, n: u64) -> u64 {
        n.div_ceil(self.alignment) * self.alignment
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (key, value) in &self.kv {
            put_string(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            value.encode(&mut out);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = self.pad(offset + Self::tensor_size(t));
        }
        out.resize(self.pad(out.len() as u64) as usize, 0);
        for (i, t) in self.tensors.iter().enumerate() {
            let size = Self::tensor_size(t) as usize;
            out.extend((0..size).map(|j| ((i * 31 + j * 7) % 251) as u8));
            out.resize(self.pad(out.len() as u64) as usize, 0);
        }
        out
    }
}

/// The shape of [`tiny_model`], for tests that check what the reader finds.
pub mod tiny {
    /// `<arch>.block_count`.
    pub const LAYERS: u32 = 2;
    /// `<arch>.attention.head_count`.
    pub const HEADS: u32 = 4;
    /// `<arch>.attention.head_count_kv`.
    pub const KV_HEADS: u32 = 2;
    /// `<arch>.embedding_length`.
    pub const EMBEDDING: u32 = 64;
    /// `<arch>.feed_forward_length`.
    pub const FEED_FORWARD: u32 = 256;
    /// `<arch>.context_length`.
    pub const CONTEXT: u32 = 4096;
    /// Tokens in the vocabulary.
    pub const VOCAB: u32 = 32;
}

/// A valid GGUF v3 file of 43,936 bytes for `architecture`: 2 layers, 4 heads (2 KV heads),
/// embedding 64, context 4096, a 32-token vocabulary, and F32, F16, Q8_0 and Q4_K tensors. An
/// architecture llama.cpp does not know (`brokenarch`) makes a file the mock engine refuses.
pub fn tiny_model(architecture: &str) -> Vec<u8> {
    use tiny::*;
    let a = |suffix: &str| format!("{architecture}.{suffix}");
    let tokens = (0..VOCAB).map(|i| Value::String(format!("tok{i}"))).collect();
    let e = u64::from(EMBEDDING);
    let ff = u64::from(FEED_FORWARD);
    let mut b = GgufBuilder::new()
        .kv("general.architecture", Value::String(architecture.to_owned()))
        .kv("general.name", Value::String(format!("llama-orch tiny {architecture}")))
        .kv("general.file_type", Value::U32(7))
        .kv(&a("block_count"), Value::U32(LAYERS))
        .kv(&a("context_length"), Value::U32(CONTEXT))
        .kv(&a("embedding_length"), Value::U32(EMBEDDING))
        .kv(&a("feed_forward_length"), Value::U32(FEED_FORWARD))
        .kv(&a("attention.head_count"), Value::U32(HEADS))
        .kv(&a("attention.head_count_kv"), Value::U32(KV_HEADS))
        .kv(&a("attention.layer_norm_rms_epsilon"), Value::F32(1e-5))
        .kv(&a("rope.freq_base"), Value::F32(10_000.0))
        .kv("tokenizer.ggml.model", Value::String("llama".into()))
        .kv("tokenizer.ggml.tokens", Value::Array(tokens))
        .kv(
            "tokenizer.ggml.scores",
            Value::Array((0..VOCAB).map(|i| Value::F32(-(i as f32))).collect()),
        )
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(2))
        .tensor("token_embd.weight", &[e, u64::from(VOCAB)], Q8_0);
    for layer in 0..LAYERS {
        let t = |n: &str| format!("blk.{layer}.{n}.weight");
        b = b
            .tensor(&t("attn_norm"), &[e], F32)
            .tensor(&t("attn_q"), &[e, e], F16)
            .tensor(&t("attn_k"), &[e, e / 2], Q8_0)
            .tensor(&t("ffn_down"), &[ff, e], Q4_K);
    }
    b.tensor("output_norm.weight", &[e], F32).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_model_is_small_and_deterministic() {
        let a = tiny_model("llama");
        assert!(a.len() < 64 << 10, "{} bytes", a.len());
        assert_eq!(a, tiny_model("llama"));
        assert_ne!(a, tiny_model("qwen2"));
        assert_eq!(&a[..4], b"GGUF");
    }
}
