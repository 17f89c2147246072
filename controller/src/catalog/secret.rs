//! The Hugging Face token (`HF_TOKEN`): held as a [`Secret`] whose `Debug` and `Display` print
//! `<redacted>`, so it cannot reach a log line, an event, a status or an error message by
//! accident. [`Secret::redact`] scrubs it from text that came from elsewhere (a server's
//! error body) as a second line of defence.

use std::fmt;

/// A credential that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`; `None` for an empty or blank one.
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let value = value.into();
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| Secret(trimmed.to_string()))
    }

    /// The token from the environment variable `name`, if set and not blank.
    pub fn from_env(name: &str) -> Option<Secret> {
        std::env::var(name).ok().and_then(Secret::new)
    }

    /// The value, for the one place that needs it: the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the secret replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_secret_never_prints_and_is_scrubbed_from_foreign_text() {
        let s = Secret::new("hf_abcdef123456").unwrap();
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}").contains("hf_abc"));
        assert_eq!(s.redact("bad token hf_abcdef123456!"), "bad token <redacted>!");
        assert!(Secret::new("  ").is_none());
    }
}
