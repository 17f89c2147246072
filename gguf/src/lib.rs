//! llorch_gguf: reads what a GGUF model file's header says about its size, and estimates the
//! VRAM one engine replica needs for it.
//!
//! [`read_summary`] reads only the header (at most [`Limits::DEFAULT`]`.header_bytes`), never
//! the weights, and refuses what llama.cpp refuses. [`estimate`] turns tensor bytes and KV bytes
//! per token into a per-replica figure (docs/vram.md). [`fixture`] writes tiny valid GGUF files
//! for tests. Nothing here panics on a hostile file; the parser is fuzzed.

pub mod error;
pub mod fixture;
pub mod ggml_type;
mod header;
pub mod reader;
pub mod summary;
pub mod vram;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

pub use error::GgufError;
pub use reader::Limits;
pub use summary::GgufSummary;
pub use vram::{VramBreakdown, estimate};

/// Reads the header of the GGUF file at `path` and checks that the file is long enough to hold
/// the tensor data the header describes. Errors name the file.
pub fn read_summary(path: &Path) -> Result<GgufSummary, GgufError> {
    let open_err = |source| GgufError::Open {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(open_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let summary = read_summary_from(BufReader::with_capacity(64 << 10, file)).map_err(|e| GgufError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    if meta.len() < summary.data_end {
        return Err(GgufError::FileTooShort {
            path: path.to_owned(),
            len: meta.len(),
            data_end: summary.data_end,
        });
    }
    Ok(summary)
}

/// Reads a GGUF header from `r` under [`Limits::DEFAULT`]; reads no further than the header.
pub fn read_summary_from<R: Read>(r: R) -> Result<GgufSummary, GgufError> {
    read_summary_with_limits(r, Limits::DEFAULT)
}

/// [`read_summary_from`] under other limits (tests use small ones).
pub fn read_summary_with_limits<R: Read>(r: R, limits: Limits) -> Result<GgufSummary, GgufError> {
    header::parse(r, limits)
}
