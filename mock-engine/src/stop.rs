//! Stop strings: ends a reply at the first occurrence of any of them, like llama-server.
//!
//! Text that could be the start of a stop string is held back until the next token decides it,
//! so the concatenated stream equals the non-streamed content byte for byte and never contains
//! (part of) the stop string. Pure: no I/O, no clock.

/// What a pushed piece of text allows the caller to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// No stop string yet; `ready` may be sent (it may be empty while text is held back).
    Continue { ready: String },
    /// A stop string was found; `ready` is the last text to send and `word` the stop string.
    Stopped { ready: String, word: String },
}

#[derive(Debug, Clone, Default)]
pub struct StopScanner {
    stops: Vec<String>,
    text: String,
    /// Bytes of `text` already handed out.
    sent: usize,
}

impl StopScanner {
    /// Empty stop strings are ignored (they would match everywhere).
    pub fn new(stops: impl IntoIterator<Item = String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Self::default()
        }
    }

    pub fn push(&mut self, piece: &str) -> Scan {
        self.text.push_str(piece);
        let pending = &self.text[self.sent..];
        // A match cannot start before `sent`: such a start would have been held back.
        let first_match = self
            .stops
            .iter()
            .filter_map(|stop| pending.find(stop.as_str()).map(|at| (at, stop)))
            .min_by_key(|(at, _)| *at);
        if let Some((at, stop)) = first_match {
            let ready = pending[..at].to_owned();
            let word = stop.clone();
            self.sent = self.text.len();
            return Scan::Stopped { ready, word };
        }
        let hold = self
            .stops
            .iter()
            .map(|stop| partial_suffix_len(pending, stop))
            .max()
            .unwrap_or(0);
        let end = self.text.len() - hold;
        let ready = self.text[self.sent..end].to_owned();
        self.sent = end;
        Scan::Continue { ready }
    }

    /// Releases the text held back when generation ends for another reason.
    pub fn flush(&mut self) -> String {
        let rest = self.text[self.sent..].to_owned();
        self.sent = self.text.len();
        rest
    }
}

/// The length of the longest proper prefix of `stop` that `text` ends with.
fn partial_suffix_len(text: &str, stop: &str) -> usize {
    stop.char_indices()
        .map(|(i, _)| i)
        .skip(1)
        .filter(|&len| text.ends_with(&stop[..len]))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(stops: &[&str]) -> StopScanner {
        StopScanner::new(stops.iter().map(|s| (*s).to_owned()))
    }

    fn ready(scan: Scan) -> String {
        match scan {
            Scan::Continue { ready } => ready,
            Scan::Stopped { .. } => panic!("unexpected stop"),
        }
    }

    #[test]
    fn text_without_stop_strings_passes_through() {
        let mut s = scanner(&[]);
        assert_eq!(ready(s.push(" the")), " the");
        assert_eq!(ready(s.push(" fox")), " fox");
        assert_eq!(s.flush(), "");
    }

    #[test]
    fn a_stop_string_inside_a_token_ends_the_text_before_it() {
        let mut s = scanner(&["ox"]);
        assert_eq!(ready(s.push(" the")), " the");
        assert_eq!(
            s.push(" fox"),
            Scan::Stopped {
                ready: " f".into(),
                word: "ox".into()
            }
        );
    }

    #[test]
    fn a_stop_string_across_tokens_is_held_back_then_dropped() {
        let mut s = scanner(&["fox jumps"]);
        assert_eq!(ready(s.push(" the")), " the");
        // " fox" could start "fox jumps": hold "fox" back.
        assert_eq!(ready(s.push(" fox")), " ");
        assert_eq!(
            s.push(" jumps"),
            Scan::Stopped {
                ready: String::new(),
                word: "fox jumps".into()
            }
        );
    }

    #[test]
    fn held_back_text_is_released_when_the_match_fails() {
        let mut s = scanner(&["fox jumps"]);
        assert_eq!(ready(s.push(" fox")), " ");
        assert_eq!(ready(s.push(" runs")), "fox runs");
    }

    #[test]
    fn held_back_text_is_released_by_flush() {
        let mut s = scanner(&["fox jumps"]);
        assert_eq!(ready(s.push(" the fox")), " the ");
        assert_eq!(s.flush(), "fox");
    }

    #[test]
    fn the_earliest_of_several_stop_strings_wins() {
        let mut s = scanner(&["dog", "lazy"]);
        assert_eq!(
            s.push(" the lazy dog"),
            Scan::Stopped {
                ready: " the ".into(),
                word: "lazy".into()
            }
        );
    }

    #[test]
    fn empty_stop_strings_are_ignored() {
        let mut s = scanner(&[""]);
        assert_eq!(ready(s.push(" the")), " the");
    }

    #[test]
    fn multibyte_stop_strings_hold_back_on_char_boundaries() {
        let mut s = scanner(&["é!"]);
        assert_eq!(ready(s.push("café")), "caf");
        assert_eq!(
            s.push("!"),
            Scan::Stopped {
                ready: String::new(),
                word: "é!".into()
            }
        );
    }
}
