//! Durations as people type them — `500ms`, `30s`, `2m`, `1h`, sums such as `1m30s` — read by
//! jiff's "friendly" duration parser, and printed back short: the manifests crate's
//! [`llorch_manifests::duration`], which manifests use too (`scaling.idleTimeout`).

pub use llorch_manifests::duration::{DurationError, human, parse, short};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
