//! Echoing input back to people safely.

/// `text` made safe to show a person: control characters (ESC sequences, CR, LF, ...)
/// escaped so they cannot rewrite a terminal or forge a log line, and cut after `max_chars`
/// with a note of how much was left out. For echoing input back in errors and tables.
pub fn shown(text: &str, max_chars: usize) -> String {
    let cut = text.char_indices().nth(max_chars).map(|(at, _)| at);
    let mut out = String::new();
    for c in text[..cut.unwrap_or(text.len())].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if let Some(at) = cut {
        out.push_str(&format!("… ({} more bytes)", text.len() - at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(shown("a\u{1b}[31mb\r\nc", 100), "a\\u{1b}[31mb\\r\\nc");
        assert_eq!(shown("abcdef", 3), "abc… (3 more bytes)");
        assert_eq!(shown("abc", 3), "abc");
        assert_eq!(shown("ééé", 1), "é… (4 more bytes)");
    }
}
