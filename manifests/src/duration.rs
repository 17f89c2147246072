//! Durations as people type them — `500ms`, `90s`, `5m`, `1h`, sums such as `1m30s` — read by
//! jiff's "friendly" parser, for manifests ([`HumanDuration`], kept as written, so a manifest's
//! text and its generation do not change when it is re-serialized) and for orchctl's flags
//! ([`parse`]); and printed back short ([`short`], [`human`]).

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from text; it serializes back to the same text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HumanDuration {
    text: String,
    value: Duration,
}

/// Text that is not a duration; the message says what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration ({reason}); use a number and a unit, e.g. 500ms, 90s, 5m or 1h")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Parses a duration; negative ones and calendar units (days, months) are refused.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let refuse = |reason: String| DurationError {
        text: text.to_string(),
        reason,
    };
    let signed: jiff::SignedDuration = text.trim().parse().map_err(|e: jiff::Error| refuse(e.to_string()))?;
    Duration::try_from(signed).map_err(|_| refuse("it is negative".into()))
}

/// A short human form: `45s`, `3m`, `2h`, `4d` (the largest whole unit).
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7_199 => format!("{}m", s / 60),
        7_200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A duration as it would be typed: `500ms`, `30s`, `2m`, `1500ms`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

impl HumanDuration {
    /// Reads `text` (see [`parse`]).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        Ok(HumanDuration {
            value: parse(text)?,
            text: text.trim().to_string(),
        })
    }

    /// Whole minutes, written `<n>m`.
    pub fn minutes(n: u64) -> Self {
        HumanDuration {
            text: format!("{n}m"),
            value: Duration::from_secs(n * 60),
        }
    }

    /// Whole seconds, written `<n>s`.
    pub fn seconds(n: u64) -> Self {
        HumanDuration {
            text: format!("{n}s"),
            value: Duration::from_secs(n),
        }
    }

    /// The duration.
    pub fn get(&self) -> Duration {
        self.value
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HumanDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit (ms, s, m, h), or a sum such as 1m30s.",
            "examples": ["90s", "5m"]
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_read_as_people_write_them_and_keep_their_text() {
        let d = HumanDuration::parse("1m30s").unwrap();
        assert_eq!(d.get(), Duration::from_secs(90));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1m30s\"");
        assert_eq!(HumanDuration::parse(" 5m ").unwrap().as_str(), "5m");
        let err = HumanDuration::parse("-5s").unwrap_err().to_string();
        assert!(err.contains("negative"), "{err}");
        assert!(
            HumanDuration::parse("soon")
                .unwrap_err()
                .to_string()
                .contains("e.g. 500ms")
        );
    }
}
