//! One reply as a pure state machine: tokens, stop strings and the length limit.
//!
//! It decides *what* is generated and *when it ends*; pacing, fault injection, slots and metrics
//! are the emitter's business, and wire formats belong to the protocol modules.

use crate::stop::{Scan, StopScanner};
use crate::tokens::{Sampling, TokenSource, token_text};

/// How many tokens a reply has when the request sets no limit (`n_predict`/`max_tokens` absent or
/// negative): the mock "model" then emits its end-of-sequence token, like a model that finished
/// its answer (`stop_type: "eos"`, `finish_reason: "stop"`).
pub const DEFAULT_REPLY_TOKENS: u32 = 16;

/// Why a reply ended, with llama-server's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopType {
    /// The model's end-of-sequence token.
    Eos,
    /// `n_predict` tokens, or the slot's context is full.
    Limit,
    /// A stop string.
    Word,
}

impl StopType {
    /// llama-server's `stop_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Limit => "limit",
            Self::Word => "word",
        }
    }

    /// OpenAI's `finish_reason`.
    pub fn finish_reason(self) -> &'static str {
        match self {
            Self::Eos | Self::Word => "stop",
            Self::Limit => "length",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSpec {
    pub prompt: String,
    pub sampling: Sampling,
    /// `None`: no limit set by the request (see [`DEFAULT_REPLY_TOKENS`]).
    pub n_predict: Option<u32>,
    pub stop: Vec<String>,
}

/// One step of [`Generation::advance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// One more token was produced; `text` may be sent now (empty while held back).
    Token { id: u32, text: String },
    /// The reply is over; `text` is held-back text still to be sent.
    Finished {
        text: String,
        stop_type: StopType,
        stopping_word: String,
    },
}

#[derive(Debug, Clone)]
pub struct Generation {
    source: TokenSource,
    scanner: StopScanner,
    limit: u32,
    end_at_limit: StopType,
    produced: u32,
    stopped_by: Option<String>,
}

impl Generation {
    /// `context_budget`: how many tokens fit in the slot after the prompt.
    pub fn new(spec: &GenerationSpec, context_budget: u32) -> Self {
        let (limit, end_at_limit) = match spec.n_predict {
            Some(n) => (n.min(context_budget), StopType::Limit),
            None if DEFAULT_REPLY_TOKENS <= context_budget => (DEFAULT_REPLY_TOKENS, StopType::Eos),
            None => (context_budget, StopType::Limit),
        };
        Self {
            source: TokenSource::new(&spec.prompt, &spec.sampling),
            scanner: StopScanner::new(spec.stop.iter().cloned()),
            limit,
            end_at_limit,
            produced: 0,
            stopped_by: None,
        }
    }

    pub fn advance(&mut self) -> Advance {
        if let Some(word) = &self.stopped_by {
            return Advance::Finished {
                text: String::new(),
                stop_type: StopType::Word,
                stopping_word: word.clone(),
            };
        }
        if self.produced >= self.limit {
            return Advance::Finished {
                text: self.scanner.flush(),
                stop_type: self.end_at_limit,
                stopping_word: String::new(),
            };
        }
        let id = self.source.token_id(self.produced);
        self.produced += 1;
        match self.scanner.push(token_text(id)) {
            Scan::Continue { ready } => Advance::Token { id, text: ready },
            Scan::Stopped { ready, word } => {
                self.stopped_by = Some(word);
                Advance::Token { id, text: ready }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::DEFAULT_SEED;

    fn spec(n_predict: Option<u32>, stop: &[&str]) -> GenerationSpec {
        GenerationSpec {
            prompt: "Once upon a time".into(),
            sampling: Sampling {
                seed: DEFAULT_SEED,
                temperature: 0.8,
                top_p: 0.95,
            },
            n_predict,
            stop: stop.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Runs to the end: (text, tokens produced, stop type, stopping word).
    fn run(spec: &GenerationSpec, budget: u32) -> (String, u32, StopType, String) {
        let mut g = Generation::new(spec, budget);
        let (mut text, mut tokens) = (String::new(), 0);
        loop {
            match g.advance() {
                Advance::Token { text: t, .. } => {
                    text.push_str(&t);
                    tokens += 1;
                }
                Advance::Finished {
                    text: t,
                    stop_type,
                    stopping_word,
                } => {
                    text.push_str(&t);
                    return (text, tokens, stop_type, stopping_word);
                }
            }
        }
    }

    #[test]
    fn n_predict_sets_the_length_and_ends_with_limit() {
        let (text, tokens, stop_type, _) = run(&spec(Some(5), &[]), 1000);
        assert_eq!((tokens, stop_type), (5, StopType::Limit));
        assert_eq!(text.split_whitespace().count(), 5);
    }

    #[test]
    fn a_shorter_request_is_a_prefix_of_a_longer_one() {
        let (short, ..) = run(&spec(Some(4), &[]), 1000);
        let (long, ..) = run(&spec(Some(12), &[]), 1000);
        assert!(long.starts_with(&short), "{short:?} / {long:?}");
    }

    #[test]
    fn no_limit_gives_the_default_length_and_eos() {
        let (_, tokens, stop_type, _) = run(&spec(None, &[]), 1000);
        assert_eq!((tokens, stop_type), (DEFAULT_REPLY_TOKENS, StopType::Eos));
    }

    #[test]
    fn the_context_budget_caps_the_reply() {
        assert_eq!(run(&spec(Some(50), &[]), 3).1, 3);
        let (_, tokens, stop_type, _) = run(&spec(None, &[]), 3);
        assert_eq!((tokens, stop_type), (3, StopType::Limit));
    }

    #[test]
    fn n_predict_zero_generates_nothing() {
        let (text, tokens, stop_type, _) = run(&spec(Some(0), &[]), 1000);
        assert_eq!((text.as_str(), tokens, stop_type), ("", 0, StopType::Limit));
    }

    #[test]
    fn a_stop_string_ends_the_reply_early_without_the_stop_string() {
        let (full, ..) = run(&spec(Some(12), &[]), 1000);
        // Stop at the third word of the unconstrained reply.
        let third = full.split_whitespace().nth(2).unwrap().to_owned();
        let (text, tokens, stop_type, word) = run(&spec(Some(12), &[&third]), 1000);
        assert_eq!(stop_type, StopType::Word);
        assert_eq!(word, third);
        assert!(!text.contains(&third), "{text:?} must not contain {third:?}");
        assert!(full.starts_with(&text));
        assert!(tokens <= 3, "stopped after {tokens} tokens");
    }

    #[test]
    fn a_stop_string_on_the_last_allowed_token_still_ends_with_word() {
        let (full, ..) = run(&spec(Some(5), &[]), 1000);
        let last = full.split_whitespace().last().unwrap().to_owned();
        // The pinned reply's fifth word appears in none of the first four.
        assert!(!full.split_whitespace().take(4).any(|w| w.contains(&last)), "{full}");
        let (text, tokens, stop_type, word) = run(&spec(Some(5), &[&last]), 1000);
        assert_eq!((tokens, stop_type, word.as_str()), (5, StopType::Word, last.as_str()));
        assert!(!text.contains(&last));
        // The same on the context budget's last token.
        let (_, _, stop_type, _) = run(&spec(None, &[&last]), 5);
        assert_eq!(stop_type, StopType::Word);
    }
}
