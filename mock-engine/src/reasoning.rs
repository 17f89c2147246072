//! Reasoning: when a chat request sets `reasoning_effort`, the reply starts with
//! [`REASONING_PIECES`] pieces of "thinking", sent as `reasoning_content` before any content.
//! Each piece is one generated token and counts in `completion_tokens`, as llama-server counts
//! reasoning tokens; `max_tokens` bounds only the content after them. Pure: no I/O.

use crate::generation::GenerationSpec;
use crate::tokens::TokenSource;

/// How many reasoning pieces a reply starts with.
pub const REASONING_PIECES: u32 = 3;

/// The reasoning pieces for a request: words picked like content tokens, from the prompt with a
/// `reasoning` prefix, so they are deterministic and differ from the content.
pub fn pieces(spec: &GenerationSpec) -> Vec<String> {
    let source = TokenSource::new(&format!("reasoning\0{}", spec.prompt), &spec.sampling);
    (0..REASONING_PIECES).map(|i| source.token_text(i).to_owned()).collect()
}
