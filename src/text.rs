//! Small text helpers shared by the engine and the reporters.

/// The first line of a text (empty for an empty text).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
