//! Durations as people type them — `500ms`, `30s`, `2m`, `1h`, sums such as `1m30s` — read by
//! jiff's "friendly" duration parser, and printed back short.

use std::time::Duration;

/// A duration that cannot be read; the message says what is accepted.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a duration ({reason}); use a number and a unit, e.g. 500ms, 30s, 2m or 1h")]
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
    let d: jiff::SignedDuration = text.trim().parse().map_err(|e: jiff::Error| refuse(e.to_string()))?;
    Duration::try_from(d).map_err(|_| refuse("it is negative".into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_sums() {
        assert_eq!(parse("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(parse("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse("1h").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(parse("1m30s").ok(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn durations_without_a_known_unit_are_refused_with_examples() {
        let refused = |text: &str| parse(text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused("30").contains("unit"), "{}", refused("30"));
        assert!(refused("3d").contains("days"), "{}", refused("3d"));
        assert!(refused("soon").contains("e.g. 500ms"), "{}", refused("soon"));
        assert!(refused("-5s").contains("negative"), "{}", refused("-5s"));
        assert!(parse("").is_err());
    }

    #[test]
    fn short_durations_use_the_largest_whole_unit() {
        assert_eq!(short(Duration::from_secs(5)), "5s");
        assert_eq!(short(Duration::from_secs(600)), "10m");
        assert_eq!(short(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(short(Duration::from_secs(5 * 86_400)), "5d");
        assert_eq!(human(Duration::from_millis(300)), "300ms");
        assert_eq!(human(Duration::from_secs(120)), "2m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
    }
}
