//! Editing YAML text in place: each `key: value` found exactly once (outside comments, at a
//! key boundary, plain or quoted) gets its new value, with layout and comments kept. It knows
//! only text: which keys change is [`super::edit_pool`]'s, and so is checking the result.

use std::ops::Range;

/// One `key: value` to change in place: the key, the value it has now, the new one.
#[derive(Debug)]
pub(super) struct InPlace {
    pub(super) key: &'static str,
    pub(super) old: String,
    pub(super) new: String,
}

/// The text with each edit made in place, if each key occurs exactly once (outside comments)
/// with its old value.
pub(super) fn edit_in_place(text: &str, edits: &[InPlace]) -> Option<String> {
    let mut out = text.to_string();
    for edit in edits {
        let (range, quote) = find_value(&out, edit.key, &edit.old)?;
        let new = match quote {
            Some(q) => format!("{q}{}{q}", edit.new),
            None => edit.new.clone(),
        };
        out.replace_range(range, &new);
    }
    Some(out)
}

/// Where the value of the single `key: old` is (its bytes, quotes included) and the quote it
/// is written in; none when it occurs never or more than once. The key must start the line's
/// content or follow whitespace, `{` or `,` (so `replicas` never matches inside
/// `minReplicas`); a quoted key (`"replicas": 2`, as a JSON rewrite writes it) counts too.
fn find_value(text: &str, key: &str, old: &str) -> Option<(Range<usize>, Option<char>)> {
    let mut hits = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let code = &line[..comment_start(line)];
        for (at, _) in code.match_indices(key) {
            if let Some((range, quote, value)) = value_after_key(code, at, key)
                && value == old
            {
                hits.push((line_start + range.start..line_start + range.end, quote));
            }
        }
        line_start += line.len();
    }
    match <[_; 1]>::try_from(hits) {
        Ok([hit]) => Some(hit),
        Err(_) => None,
    }
}

/// For `key` found at byte `at` of `code`: the value's byte range, its quote and its text,
/// when `at` really starts a `key: value` pair.
fn value_after_key(code: &str, at: usize, key: &str) -> Option<(Range<usize>, Option<char>, String)> {
    let bytes = code.as_bytes();
    let key_quote = at
        .checked_sub(1)
        .map(|i| bytes[i])
        .filter(|b| matches!(b, b'"' | b'\''));
    let start = if key_quote.is_some() { at - 1 } else { at };
    let boundary = start == 0 || matches!(bytes[start - 1], b' ' | b'\t' | b'{' | b',');
    let mut i = at + key.len();
    if let Some(q) = key_quote {
        (bytes.get(i) == Some(&q)).then_some(())?;
        i += 1;
    }
    if !boundary || bytes.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let spaced = matches!(bytes.get(i), Some(b' ' | b'\t'));
    // A plain YAML key needs a space after its colon (`replicas:2` is one scalar).
    if !spaced && key_quote.is_none() {
        return None;
    }
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let value_start = i;
    match bytes.get(i) {
        Some(&q @ (b'"' | b'\'')) => {
            let close = code[i + 1..].find(q as char)? + i + 1;
            let inner = &code[i + 1..close];
            // Escapes would need decoding: leave such a value to the JSON rewrite.
            if inner.contains('\\') {
                return None;
            }
            Some((value_start..close + 1, Some(q as char), inner.to_string()))
        }
        Some(_) => {
            let end = code[i..]
                .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']'))
                .map_or(code.len(), |n| n + i);
            (end > value_start).then(|| (value_start..end, None, code[value_start..end].to_string()))
        }
        None => None,
    }
}

/// Where the line's comment starts (its length when it has none): a `#` at the start or after
/// whitespace, outside quotes.
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return i,
            None => {}
        }
        previous = c;
    }
    line.len()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_is_found_only_at_a_boundary_and_outside_comments() {
        let value = |text: &str, key: &str, old: &str| find_value(text, key, old).map(|(r, _)| text[r].to_string());
        assert_eq!(
            value("  maxReplicas: 1\n", "Replicas", "1"),
            None,
            "inside a longer key"
        );
        assert_eq!(
            value("scaling: {minReplicas: 0, maxReplicas: 1}\n", "maxReplicas", "1").as_deref(),
            Some("1")
        );
        assert_eq!(
            value("replicas: 2 # was replicas: 2\n", "replicas", "2").as_deref(),
            Some("2")
        );
        assert_eq!(
            value("# replicas: 2\nreplicas: 3\n", "replicas", "2"),
            None,
            "only in a comment"
        );
        assert_eq!(value("replicas:2\n", "replicas", "2"), None, "one plain scalar");
        assert_eq!(
            value("  \"model\": \"tiny\",\n", "model", "tiny").as_deref(),
            Some("\"tiny\"")
        );
        assert_eq!(value("model: tiny\nmodel: tiny\n", "model", "tiny"), None, "ambiguous");
        assert_eq!(comment_start("image: 'a # b' # c"), 15);
    }
}
