//! Label selectors as kubectl writes them (`-l team=demo,tier!=batch,gpu,!legacy`): parsed
//! once into a [`Selector`] and matched against an object's `metadata.labels`. Only the
//! equality-based forms; set-based ones (`in (…)`) are refused with a message that says so.

use std::collections::BTreeMap;

/// The longest selector accepted (a command-line argument, but it is echoed in errors).
const MAX_LEN: usize = 1024;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the label is missing, as in kubectl).
    NotEquals(String, String),
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    Missing(String),
}

/// Every requirement must hold (a comma is AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// Why a selector does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid selector `{selector}`: {problem}; write e.g. `team=demo`, `team!=demo`, `team` or `!team`, joined with `,`"
)]
pub struct SelectorError {
    selector: String,
    problem: String,
}

impl Selector {
    /// Parses `-l`'s argument.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let fail = |problem: String| SelectorError {
            selector: text.chars().take(MAX_LEN).collect(),
            problem,
        };
        if text.len() > MAX_LEN {
            return Err(fail(format!("it is longer than {MAX_LEN} bytes")));
        }
        if text.trim().is_empty() {
            return Err(fail("it is empty".into()));
        }
        let mut requirements = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(fail("it has an empty requirement between commas".into()));
            }
            if part.contains(" in ") || part.contains(" notin ") || part.contains('(') {
                return Err(fail(format!("`{part}`: set-based requirements are not supported")));
            }
            let requirement = if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key_of(key).map_err(&fail)?, value_of(value).map_err(&fail)?)
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(key_of(key).map_err(&fail)?, value_of(value).map_err(&fail)?)
            } else if let Some(key) = part.strip_prefix('!') {
                Requirement::Missing(key_of(key).map_err(&fail)?)
            } else {
                Requirement::Exists(key_of(part).map_err(&fail)?)
            };
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    /// Whether `labels` meet every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Missing(k) => !labels.contains_key(k),
        })
    }
}

/// A label key: `[prefix/]name` of letters, digits, `-`, `_`, `.`.
fn key_of(key: &str) -> Result<String, String> {
    let key = key.trim();
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!("`{key}` is not a label key"))
    }
}

/// A label value: possibly empty; letters, digits, `-`, `_`, `.`.
fn value_of(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(value.to_string())
    } else {
        Err(format!("`{value}` is not a label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn equality_inequality_existence_and_absence_combine_with_and() {
        let demo = labels(&[("team", "demo"), ("tier", "gold")]);
        let other = labels(&[("team", "ops")]);
        let none = labels(&[]);
        let check = |s: &str| {
            let sel = Selector::parse(s).unwrap();
            (sel.matches(&demo), sel.matches(&other), sel.matches(&none))
        };
        assert_eq!(check("team=demo"), (true, false, false));
        assert_eq!(check("team==demo"), (true, false, false));
        assert_eq!(check("team!=demo"), (false, true, true));
        assert_eq!(check("team"), (true, true, false));
        assert_eq!(check("!team"), (false, false, true));
        assert_eq!(check("team, tier=gold"), (true, false, false));
        assert_eq!(check("team,!tier"), (false, true, false));
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_offending_part() {
        for (s, needle) in [
            ("", "it is empty"),
            ("team=demo,,x", "empty requirement"),
            ("team in (a,b)", "set-based"),
            ("=demo", "`` is not a label key"),
            ("te am=x", "`te am` is not a label key"),
            ("team=a b", "`a b` is not a label value"),
        ] {
            let e = Selector::parse(s).unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
            assert!(e.starts_with("invalid selector"), "{e}");
        }
    }
}
