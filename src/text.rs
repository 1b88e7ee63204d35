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

/// Whether output to a stream gets colours: a terminal does, a file or a
/// pipe does not; `NO_COLOR` (set and not empty) turns them off everywhere,
/// `CLICOLOR=0` too, and `CLICOLOR_FORCE` (not empty, not `0`) turns them on
/// for a pipe (a CI log that renders them). `NO_COLOR` wins over a force.
pub fn use_color(is_terminal: bool) -> bool {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    color_choice(
        is_terminal,
        var("NO_COLOR").is_some(),
        var("CLICOLOR_FORCE").is_some_and(|value| value != "0"),
        var("CLICOLOR").is_some_and(|value| value == "0"),
    )
}

fn color_choice(is_terminal: bool, no_color: bool, force: bool, clicolor_off: bool) -> bool {
    if no_color {
        false
    } else if force {
        true
    } else {
        is_terminal && !clicolor_off
    }
}

/// How a process ended, as a person says it: `exit code 1`, or for a
/// process that has no exit code, that a signal ended it.
pub fn exit_status(code: Option<i32>) -> String {
    code.map_or_else(
        || "no exit code (ended by a signal)".to_owned(),
        |code| format!("exit code {code}"),
    )
}

/// `1 attempt`, `2 attempts`.
pub fn count(n: u32, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `text` without one trailing line ending: what a command "printed", as
/// `stdout_matches` sees it, so `$` matches after the last line.
pub fn without_final_newline(text: &str) -> &str {
    text.strip_suffix('\n')
        .map_or(text, |text| text.strip_suffix('\r').unwrap_or(text))
}

/// `text` in double quotes with newlines, tabs, quotes and backslashes
/// escaped as in a YAML or JSON string (`"ok\n3"`), so what a message shows
/// cannot be mistaken for something else; at most the last `max` characters.
pub fn quoted(text: &str, max: usize) -> String {
    let count = text.chars().count();
    let (cut, rest) = if count > max {
        ("…", text.chars().skip(count - max).collect::<String>())
    } else {
        ("", text.to_owned())
    };
    format!("\"{cut}{}\"", rest.escape_debug())
}

/// The most characters of a command's output that a detail, a record or a
/// report holds: enough for the last lines of an error, small enough that a
/// command printing megabytes on one line cannot fill `events.jsonl`, the
/// journal and every report with them.
pub const MAX_DETAIL: usize = 4096;

/// `text` if it has at most `max` characters; otherwise its first and last
/// characters (half of `max` each) around a note of how many were cut between
/// them (`abc[firedrill: 1000 characters cut here]xyz`), cut on character
/// boundaries.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    // A character is at least one byte: a text of at most `max` bytes fits.
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let count = text.chars().count();
    if count <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let head = max / 2;
    let tail = max - head;
    let head_end = text
        .char_indices()
        .nth(head)
        .map_or(text.len(), |(at, _)| at);
    let tail_start = match tail {
        0 => text.len(),
        _ => text
            .char_indices()
            .nth_back(tail - 1)
            .map_or(0, |(at, _)| at),
    };
    std::borrow::Cow::Owned(format!(
        "{}[firedrill: {} characters cut here]{}",
        &text[..head_end],
        count - head - tail,
        &text[tail_start..]
    ))
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

/// People's one-line text (a note, a mark's reason) for a terminal line, a
/// table cell or a timeline label: every control character shown escaped,
/// newlines and tabs too (`\n`, `\t`), so a note can neither break the
/// layout nor drive the terminal; the journal keeps the text as written.
pub fn visible(text: &str) -> String {
    escape_controls(&text.replace('\n', "\\n").replace('\t', "\\t")).into_owned()
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
    fn clip_keeps_a_head_and_a_tail_on_character_boundaries() {
        assert_eq!(clip("short", 5), "short");
        assert!(matches!(clip("short", 5), std::borrow::Cow::Borrowed(_)));
        // Six characters in twelve bytes fit a limit of six.
        assert_eq!(clip("éééééé", 6), "éééééé");
        assert_eq!(
            clip("abcdefghij", 4),
            "ab[firedrill: 6 characters cut here]ij"
        );
        assert_eq!(clip("ééé€€€ü", 3), "é[firedrill: 4 characters cut here]€ü");
        assert_eq!(clip("abc", 0), "[firedrill: 3 characters cut here]");
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(escape_controls("\u{1b}[2Jgone\r"), "\\u{1b}[2Jgone\\u{d}");
        assert_eq!(escape_controls("a\u{7}\u{9b}b"), "a\\u{7}\\u{9b}b");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn people_text_is_one_visible_line() {
        assert_eq!(visible("a\nb\u{1b}[2Jc\t"), "a\\nb\\u{1b}[2Jc\\t");
        assert_eq!(visible("façade ✓"), "façade ✓");
    }

    #[test]
    fn colours_follow_the_terminal_unless_the_environment_says_otherwise() {
        // (terminal, NO_COLOR, CLICOLOR_FORCE, CLICOLOR=0) → colours
        assert!(color_choice(true, false, false, false));
        assert!(!color_choice(false, false, false, false));
        assert!(!color_choice(true, true, false, false));
        assert!(color_choice(false, false, true, false));
        assert!(!color_choice(false, true, true, false));
        assert!(!color_choice(true, false, false, true));
        assert!(color_choice(false, false, true, true));
    }

    #[test]
    fn messages_say_exits_and_counts_in_words() {
        assert_eq!(exit_status(Some(1)), "exit code 1");
        assert_eq!(exit_status(None), "no exit code (ended by a signal)");
        assert_eq!(count(1, "attempt"), "1 attempt");
        assert_eq!(count(3, "attempt"), "3 attempts");
    }

    #[test]
    fn output_is_quoted_with_newlines_shown() {
        assert_eq!(quoted("ok\n3\n", 10), r#""ok\n3\n""#);
        assert_eq!(quoted("abcdef", 3), r#""…def""#);
        assert_eq!(without_final_newline("a\n\n"), "a\n");
        assert_eq!(without_final_newline("a\r\n"), "a");
    }
}
