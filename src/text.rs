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

/// People's text for a terminal, a Markdown table or a log line: control
/// characters (newlines, escapes, NUL) shown as escapes (`\n`, `\u{1b}`),
/// so a note can neither break the layout nor drive the terminal.
pub fn visible(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(visible("a\nb\u{1b}[2Jc\t"), "a\\nb\\u{1b}[2Jc\\t");
        assert_eq!(visible("façade ✓"), "façade ✓");
    }
}
