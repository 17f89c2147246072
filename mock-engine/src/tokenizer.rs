//! The mock tokenizer behind `/tokenize`, `/detokenize` and every `prompt_tokens` count.
//!
//! A token is one whitespace-separated word with the whitespace before it (like a BPE piece
//! `" word"`); whitespace after the last word joins the last token. So a text's token count is
//! its word count, [`count_prompt_tokens`]. Words of the reply vocabulary keep their
//! [`VOCABULARY`] index as id; other pieces get a hashed id at or above [`FIRST_HASHED_ID`],
//! which this process remembers (bounded) so `/detokenize` can give the text back.
//! No I/O.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::tokens::{VOCABULARY, fnv1a64, token_text};

/// The beginning-of-sequence token `/tokenize` adds with `add_special: true`.
pub const BOS_ID: u32 = 64;
pub const BOS_PIECE: &str = "<s>";
/// Ids of pieces outside the vocabulary start here.
pub const FIRST_HASHED_ID: u32 = 1_000;
const HASHED_IDS: u64 = 1 << 20;
/// How many out-of-vocabulary pieces are remembered for `/detokenize`.
const REMEMBERED_PIECES: usize = 65_536;

pub use crate::tokens::count_prompt_tokens;

/// A text cut into pieces: `(id, piece)`.
pub fn pieces(text: &str) -> Vec<(u32, String)> {
    let mut pieces: Vec<(u32, String)> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for ch in text.chars() {
        let space = ch.is_whitespace();
        if space && in_word {
            pieces.push((0, std::mem::take(&mut current)));
            in_word = false;
        }
        current.push(ch);
        in_word |= !space;
    }
    if in_word {
        pieces.push((0, current));
    } else if let Some(last) = pieces.last_mut() {
        last.1.push_str(&current);
    }
    pieces.into_iter().map(|(_, piece)| (piece_id(&piece), piece)).collect()
}

fn piece_id(piece: &str) -> u32 {
    match VOCABULARY.iter().position(|word| *word == piece) {
        Some(index) => u32::try_from(index).unwrap_or(0),
        None => FIRST_HASHED_ID + u32::try_from(fnv1a64(piece.as_bytes()) % HASHED_IDS).unwrap_or(0),
    }
}

/// The tokenizer with its memory of out-of-vocabulary pieces.
#[derive(Debug, Default)]
pub struct Tokenizer {
    remembered: Mutex<HashMap<u32, String>>,
}

impl Tokenizer {
    /// Tokenizes `text` (with [`BOS_ID`] first when `add_special`), remembering its pieces.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Vec<(u32, String)> {
        let pieces = pieces(text);
        let mut remembered = self.remembered.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, piece) in &pieces {
            if *id >= FIRST_HASHED_ID && remembered.len() < REMEMBERED_PIECES {
                remembered.entry(*id).or_insert_with(|| piece.clone());
            }
        }
        let bos = add_special.then(|| (BOS_ID, BOS_PIECE.to_owned()));
        bos.into_iter().chain(pieces).collect()
    }

    /// The text of token ids; unknown ids read as `<unk>`, the BOS token as nothing.
    pub fn detokenize(&self, ids: &[u32]) -> String {
        let remembered = self.remembered.lock().unwrap_or_else(PoisonError::into_inner);
        ids.iter()
            .map(|id| match *id {
                id if (id as usize) < VOCABULARY.len() => token_text(id).to_owned(),
                BOS_ID => String::new(),
                id => remembered.get(&id).cloned().unwrap_or_else(|| "<unk>".to_owned()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_word_with_the_whitespace_before_it() {
        let p = pieces("Hello the  world \n");
        let texts: Vec<&str> = p.iter().map(|(_, piece)| piece.as_str()).collect();
        assert_eq!(texts, ["Hello", " the", "  world \n"]);
        assert_eq!(p[1].0, 0, "a vocabulary word keeps its index");
        assert!(p[0].0 >= FIRST_HASHED_ID);
    }

    #[test]
    fn the_count_is_the_prompt_token_count() {
        for text in ["", "  ", "one", " one two\tthree\nfour ", "user: Hi\nassistant:"] {
            assert_eq!(pieces(text).len() as u32, count_prompt_tokens(text), "{text:?}");
        }
    }

    #[test]
    fn detokenize_gives_back_the_tokenized_text() {
        let tokenizer = Tokenizer::default();
        let text = "Once upon a time, the fox";
        let ids: Vec<u32> = tokenizer.tokenize(text, true).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids[0], BOS_ID);
        assert_eq!(tokenizer.detokenize(&ids), text);
        assert_eq!(tokenizer.detokenize(&[999_999]), "<unk>");
    }
}
