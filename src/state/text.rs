//! Text for people: input echoed back safely, numbers written as people write them.

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

/// A number as people write it: `950`, not `950.0`; `0.15`, not `0.1500`; at most `decimals`
/// digits after the point.
pub fn plain(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.to_string() }
}
#[cfg(test)]
mod tests {
    use super::{plain, shown};

    #[test]
    fn numbers_drop_trailing_zeros_and_negative_zero() {
        assert_eq!(plain(950.0, 2), "950");
        assert_eq!(plain(0.15, 4), "0.15");
        assert_eq!(plain(0.123456, 2), "0.12");
        assert_eq!(plain(-0.0001, 2), "0");
        assert_eq!(plain(1200.0, 0), "1200");
    }

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(shown("a\u{1b}[31mb\r\nc", 100), "a\\u{1b}[31mb\\r\\nc");
        assert_eq!(shown("abcdef", 3), "abc… (3 more bytes)");
        assert_eq!(shown("abc", 3), "abc");
        assert_eq!(shown("ééé", 1), "é… (4 more bytes)");
    }
}
