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
