//! Bounding text that quotes user input (a manifest value, a hostile name) before it goes into
//! a message, an event or a log line: cut at a character boundary, with a note of how much
//! was cut, so the reader knows it is not the whole.

/// `text`, at most `max_bytes` long (plus the note) when it was longer.
pub fn cut(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let total = text.len();
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("… ({} more bytes cut)", total - end));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary_with_a_note() {
        assert_eq!(cut("short".into(), 10), "short");
        // "é" is two bytes: a cut at 3 bytes falls inside the second one and backs off to 2.
        assert_eq!(cut("ééé".into(), 3), "é… (4 more bytes cut)");
    }
}
