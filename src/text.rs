//! Small text helpers shared by the engine and the reporters.

/// The first line of a text (empty for an empty text).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The first line of a text, trimmed and cut at 70 characters, with `…`
/// when anything was left out: a command as a one-line summary.
pub fn short_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("");
    let mut short: String = line.chars().take(70).collect();
    if short.len() < line.len() || text.trim().lines().count() > 1 {
        short.push('…');
    }
    short
}

/// `text` with its control characters made visible (`\u{1b}` for ESC), so
/// that what a drill or a command printed cannot move the cursor, clear
/// the screen or rewrite the lines of a terminal or a report. Newlines and
/// tabs are kept: they are layout, not commands.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hostile(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Control characters other than newline and tab (C0, DEL, C1), and the
/// bidirectional overrides that reorder what a reader sees.
fn is_hostile(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(escape_controls("\u{1b}[2Jgone\r"), "\\u{1b}[2Jgone\\u{d}");
        assert_eq!(escape_controls("a\u{7}\u{9b}b"), "a\\u{7}\\u{9b}b");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
    }
}
