//! Checks the model file the way llama.cpp's loader would refuse it: it must be a readable
//! regular file, a GGUF file whose header parses (read with `llorch_gguf`, header only), whole
//! (as long as its tensor data), and of an architecture llama.cpp knows. Returns the header
//! summary; the failure carries the llama.cpp-like lines the server prints before exiting 1.

use std::io;
use std::path::Path;

use llorch_gguf::{GgufError, GgufSummary};

/// `general.architecture` values llama.cpp's `LLM_ARCH_NAMES` knows (a representative subset:
/// the families people serve; the mock refuses the rest as llama.cpp would refuse an unknown one).
pub const KNOWN_ARCHITECTURES: &[&str] = &[
    "llama",
    "llama4",
    "deci",
    "mistral",
    "mistral3",
    "falcon",
    "falcon-h1",
    "grok",
    "gpt2",
    "gptj",
    "gptneox",
    "gpt-oss",
    "mpt",
    "baichuan",
    "starcoder",
    "starcoder2",
    "refact",
    "bert",
    "nomic-bert",
    "jina-bert-v2",
    "bloom",
    "stablelm",
    "qwen",
    "qwen2",
    "qwen2moe",
    "qwen2vl",
    "qwen3",
    "qwen3moe",
    "phi2",
    "phi3",
    "phimoe",
    "plamo",
    "codeshell",
    "orion",
    "internlm2",
    "minicpm",
    "minicpm3",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3n",
    "mamba",
    "mamba2",
    "xverse",
    "command-r",
    "cohere2",
    "dbrx",
    "olmo",
    "olmo2",
    "olmoe",
    "openelm",
    "arctic",
    "deepseek",
    "deepseek2",
    "chatglm",
    "glm4",
    "bitnet",
    "t5",
    "t5encoder",
    "jais",
    "nemotron",
    "exaone",
    "exaone4",
    "rwkv6",
    "rwkv7",
    "granite",
    "granitemoe",
    "chameleon",
    "bailingmoe",
    "dots1",
    "arcee",
    "ernie4_5",
    "hunyuan-moe",
    "smollm3",
    "lfm2",
];

/// Why the model could not be loaded; [`LoadFailure::lines`] is what llama-server prints.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    /// Missing, unreadable or not a regular file.
    #[error("{0}")]
    Open(#[source] io::Error),
    /// Not a GGUF file, or a header llama.cpp would not parse.
    #[error("{0}")]
    Gguf(#[source] GgufError),
    /// An architecture llama.cpp does not know.
    #[error("unknown model architecture: '{0}'")]
    UnknownArchitecture(String),
}

impl LoadFailure {
    /// The lines llama-server prints for this failure, before its common epilogue.
    pub fn lines(&self, path: &Path) -> Vec<String> {
        let p = path.display();
        let loader_failed =
            format!("llama_model_load: error loading model: llama_model_loader: failed to load model from {p}");
        match self {
            LoadFailure::Open(e) => vec![
                format!("gguf_init_from_file: failed to open GGUF file '{p}' ({e})"),
                loader_failed,
            ],
            LoadFailure::Gguf(e) => match e.root() {
                GgufError::NotGguf { found } => vec![
                    format!("gguf_init_from_file_impl: invalid magic characters: {found}, expected 'GGUF'"),
                    loader_failed,
                ],
                other => vec![format!("gguf_init_from_file_impl: {other}"), loader_failed],
            },
            LoadFailure::UnknownArchitecture(arch) => vec![format!(
                "llama_model_load: error loading model: error loading model architecture: unknown model architecture: '{arch}'"
            )],
        }
    }
}

/// A model file this engine loads: `llorch_gguf::fixture::tiny_model("llama")`, for tests of
/// crates that run the mock in-process.
pub fn fixture_model() -> Vec<u8> {
    llorch_gguf::fixture::tiny_model("llama")
}

/// Reads and checks the model file; blocking (a bounded header read), so call it off the runtime.
pub fn check(path: &Path) -> Result<GgufSummary, LoadFailure> {
    let meta = std::fs::metadata(path).map_err(LoadFailure::Open)?;
    if !meta.is_file() {
        return Err(LoadFailure::Open(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let summary = llorch_gguf::read_summary(path).map_err(|e| match e {
        GgufError::Open { source, .. } => LoadFailure::Open(source),
        other => LoadFailure::Gguf(other),
    })?;
    if !KNOWN_ARCHITECTURES.contains(&summary.architecture.as_str()) {
        return Err(LoadFailure::UnknownArchitecture(summary.architecture));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use llorch_gguf::fixture::tiny_model;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        f
    }

    #[test]
    fn a_tiny_llama_loads() {
        let f = write(&tiny_model("llama"));
        assert_eq!(check(f.path()).unwrap().architecture, "llama");
    }

    #[test]
    fn a_non_gguf_file_is_refused_with_llama_cpps_magic_line() {
        let f = write(b"mock weights");
        let failure = check(f.path()).unwrap_err();
        let lines = failure.lines(f.path()).join("\n");
        assert!(lines.contains("invalid magic characters"), "{lines}");
        assert!(lines.contains("llama_model_load: error loading model:"), "{lines}");
    }

    #[test]
    fn an_unknown_architecture_is_refused_by_name() {
        let f = write(&tiny_model("brokenarch"));
        let failure = check(f.path()).unwrap_err();
        assert_eq!(failure.to_string(), "unknown model architecture: 'brokenarch'");
        assert!(failure.lines(f.path())[0].contains("unknown model architecture: 'brokenarch'"));
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let bytes = tiny_model("llama");
        let f = write(&bytes[..bytes.len() / 2]);
        let lines = check(f.path()).unwrap_err().lines(f.path()).join("\n");
        assert!(lines.contains("truncated"), "{lines}");
    }
}
