//! Errors from reading a GGUF header. Each one names the field and the byte offset where the
//! reader stopped, so a person can look at the file with a hex dump and see what is wrong.

use std::io;
use std::path::PathBuf;

/// Why a file could not be read as a GGUF model.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A parse error in a named file.
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<GgufError>,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: it starts with {found}, a GGUF file starts with the bytes \"GGUF\"")]
    NotGguf { found: String },
    /// A version this reader does not know (GGUF v1 is obsolete and unsupported).
    #[error(
        "unsupported GGUF version {version} at byte 4 (supported: 2 and 3; re-convert the model with a current llama.cpp)"
    )]
    UnsupportedVersion { version: u32 },
    /// A big-endian GGUF file (made for s390x); llama-server on x86/ARM cannot load it.
    #[error("big-endian GGUF file (version bytes {raw:#010x} at byte 4); use the little-endian file")]
    BigEndian { raw: u32 },
    /// The header ended before `field` was complete.
    #[error("truncated GGUF header: the file ends inside {field} at byte {offset}")]
    Truncated { field: String, offset: u64 },
    /// A count or length beyond what this reader accepts from any file.
    #[error("{field} at byte {offset} is {value}, above the limit of {limit}")]
    Limit {
        field: String,
        offset: u64,
        value: u64,
        limit: u64,
    },
    /// A value that is not allowed where it stands.
    #[error("invalid {field} at byte {offset}: {reason}")]
    Invalid { field: String, offset: u64, reason: String },
    /// A tensor of a ggml type this reader does not know.
    #[error(
        "tensor '{tensor}' at byte {offset} has unknown ggml type id {type_id}; the file may need a newer llama.cpp (and a newer llama-orch)"
    )]
    UnknownTensorType { tensor: String, type_id: u32, offset: u64 },
    /// A metadata key the estimate needs is absent.
    #[error("metadata key '{key}' is missing; it is needed to size the model (or give the Model spec.vramBytes)")]
    MissingKey { key: String },
    /// A metadata key has a type the reader cannot use.
    #[error("metadata key '{key}' at byte {offset} has type {found}, expected {expected}")]
    WrongType {
        key: String,
        offset: u64,
        found: &'static str,
        expected: &'static str,
    },
    /// The file is shorter than the tensor data its header describes.
    #[error(
        "{path}: the file has {len} bytes but its tensors end at byte {data_end}; it is truncated (an interrupted copy or download?)"
    )]
    FileTooShort { path: PathBuf, len: u64, data_end: u64 },
    /// An I/O error other than the end of the input.
    #[error("reading {field} at byte {offset}: {source}")]
    Io {
        field: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl GgufError {
    /// The error without its file wrapper ([`GgufError::InFile`]).
    pub fn root(&self) -> &GgufError {
        match self {
            GgufError::InFile { source, .. } => source.root(),
            other => other,
        }
    }
}

/// `Result` with [`GgufError`].
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
