//! Problems in files the user wrote — drills, runbooks — located, explained
//! and rendered the same way, whoever found them.
//!
//! Drill validation, runbook loading and `runbook lint` each describe what
//! they find in their own terms (`drill::Problem`, `runbook::RunbookError`,
//! `runbook::LintFinding`) and turn it into a [`Diagnostic`]; [`render`] shows
//! diagnostics like a compiler (miette: `file:line:col`, the line with the
//! offending text marked, what to do), and their `Display` is the one-line
//! form for grep and editors. [`closest`] is the one did-you-mean.

use std::fmt;
use std::path::PathBuf;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, MietteError,
    MietteSpanContents, NamedSource, SourceCode, SourceSpan, SpanContents,
};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The file cannot be used as it is.
    Error,
    /// The file works but will probably mislead or fail on the day (lint findings).
    Warning,
}

/// One problem at one place in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub path: PathBuf,
    /// The line, from 1; 0 when the problem is about the whole file.
    pub line: u32,
    /// The column in characters, from 1; 0 when the line is all we know.
    pub col: u32,
    /// How bad it is.
    pub severity: Severity,
    /// What kind of problem, for machines and tests (e.g. `unset_variable`);
    /// empty when the message says it all.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// `file`, `file:line` or `file:line:col`, as far as the location is known.
    pub fn place(&self) -> String {
        let path = self.path.display();
        match (self.line, self.col) {
            (0, _) => path.to_string(),
            (line, 0) => format!("{path}:{line}"),
            (line, col) => format!("{path}:{line}:{col}"),
        }
    }
}

/// `file:line:col: code: message`, one line (the help is not included).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.place())?;
        if !self.code.is_empty() {
            write!(f, "{}: ", self.code)?;
        }
        f.write_str(&self.message)
    }
}

/// Renders diagnostics about one file whose text is `source` (empty when it
/// could not be read): per diagnostic `file:line:col: message`, the line with
/// the offending text marked, and what to do; each followed by a blank line.
pub fn render(diagnostics: &[Diagnostic], source: &str, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    // Messages are not wrapped: `file:line:col: message` stays one line
    // that editors and grep can use, and paths are never split.
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_wrap_lines(false)
        .with_context_lines(CONTEXT_LINES);
    let lines = LineIndex::new(source);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let place = diagnostic.place();
        let mut report = MietteDiagnostic::new(format!("{place}: {}", diagnostic.message));
        if diagnostic.severity == Severity::Warning {
            report = report.with_severity(miette::Severity::Warning);
        }
        if let Some(help) = &diagnostic.help {
            report = report.with_help(help.clone());
        }
        let report = match lines.line(source, diagnostic.line) {
            Some((start, line)) if line.chars().count() <= MAX_SNIPPET_LINE => {
                let (offset, len) = span_in_line(line, diagnostic.col);
                let name = diagnostic.path.display().to_string();
                let snippet = Snippet::around(source, &lines, diagnostic.line);
                miette::Report::new(report.with_label(LabeledSpan::at(
                    start + offset..start + offset + len,
                    "here",
                )))
                .with_source_code(NamedSource::new(name, snippet))
            }
            // A generated or minified line would flood the terminal:
            // show the part around the column instead.
            Some((_, line)) => {
                report.message = format!(
                    "{}\nnear: {}",
                    report.message,
                    excerpt(line, diagnostic.col)
                );
                miette::Report::new(report)
            }
            None => miette::Report::new(report),
        };
        let mut rendered = String::new();
        if handler
            .render_report(&mut rendered, report.as_ref())
            .is_err()
        {
            rendered = format!("error: {place}: {}\n", diagnostic.message);
            if let Some(help) = &diagnostic.help {
                rendered.push_str(&format!("  help: {help}\n"));
            }
        }
        out.push_str(&rendered);
        out.push('\n');
    }
    out
}

/// The lines around one diagnostic, standing in for the whole text: miette
/// finds a span's line by scanning the text from its start, so rendering
/// thousands of diagnostics of a large file against the whole text would
/// take time quadratic in its size.
struct Snippet {
    /// The lines, with their line breaks.
    text: String,
    /// The 0-based number of its first line in the whole text.
    first_line: usize,
    /// The byte offset of its first line in the whole text.
    offset: usize,
}

impl Snippet {
    /// The 1-based `line` of `source` with [`CONTEXT_LINES`] lines either side.
    fn around(source: &str, lines: &LineIndex, line: u32) -> Snippet {
        let index = (line as usize).saturating_sub(1);
        let first = index.saturating_sub(CONTEXT_LINES);
        let offset = lines.starts.get(first).copied().unwrap_or(source.len());
        let end = lines
            .starts
            .get(index + CONTEXT_LINES + 1)
            .copied()
            .unwrap_or(source.len());
        Snippet {
            text: source[offset..end].to_owned(),
            first_line: first,
            offset,
        }
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let local = SourceSpan::new(span.offset().saturating_sub(self.offset).into(), span.len());
        let contents = self
            .text
            .read_span(&local, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new(
            contents.data(),
            SourceSpan::new(
                (contents.span().offset() + self.offset).into(),
                contents.span().len(),
            ),
            contents.line() + self.first_line,
            contents.column(),
            contents.line_count(),
        )))
    }
}

/// Lines shown before and after the line of a diagnostic.
const CONTEXT_LINES: usize = 1;

/// Lines longer than this (in characters) are not shown whole.
const MAX_SNIPPET_LINE: usize = 200;

/// Where each line of a text starts: byte offsets to line numbers and back
/// without rescanning the text for each diagnostic.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `source`.
    pub(crate) fn new(source: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(index, _)| index + 1));
        LineIndex { starts }
    }

    /// The 1-based line a byte offset is on.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|start| *start <= offset).max(1)
    }

    /// The byte offset and text (without its line break) of a 1-based line.
    fn line<'a>(&self, source: &'a str, line: u32) -> Option<(usize, &'a str)> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        let start = *self.starts.get(index)?;
        let end = self.starts.get(index + 1).copied().unwrap_or(source.len());
        if start >= source.len() {
            return None;
        }
        let text = source[start..end].trim_end_matches('\n');
        Some((start, text.strip_suffix('\r').unwrap_or(text)))
    }
}

/// About 60 characters of `line` around a 1-based column.
fn excerpt(line: &str, column: u32) -> String {
    const WIDTH: usize = 60;
    let chars: Vec<char> = line.chars().collect();
    let column = (column as usize).saturating_sub(1).min(chars.len());
    let start = column.saturating_sub(WIDTH / 2);
    let end = (start + WIDTH).min(chars.len());
    let mut text = String::new();
    if start > 0 {
        text.push('…');
    }
    text.extend(&chars[start..end]);
    if end < chars.len() {
        text.push('…');
    }
    text
}

/// Byte offset (in the line) and length of the token at a 1-based column;
/// column 0 marks the start of the line.
fn span_in_line(line: &str, column: u32) -> (usize, usize) {
    let offset = line
        .char_indices()
        .nth(column.saturating_sub(1) as usize)
        .map_or(line.len(), |(index, _)| index);
    (offset, token_len(&line[offset..]))
}

fn token_len(rest: &str) -> usize {
    if let Some(quote @ ('"' | '\'')) = rest.chars().next() {
        return rest[1..].find(quote).map_or(rest.len(), |end| end + 2);
    }
    let end = rest.find([':', ',', ']', '}', '#']).unwrap_or(rest.len());
    let token = rest[..end].trim_end();
    if token.is_empty() {
        rest.len().min(1)
    } else {
        token.len()
    }
}

/// The closest of `candidates` to `wrong`, if any is close enough to be a
/// typo: the one did-you-mean of firedrill's messages. Case is ignored; a
/// candidate qualifies when it is one edit away (two for words over four
/// characters; a swapped pair counts as one), or similar enough by
/// Jaro-Winkler for longer names.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    let max_edits = if wrong.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .map(|candidate| {
            let candidate_lower = candidate.to_lowercase();
            (
                strsim::osa_distance(&wrong_lower, &candidate_lower),
                strsim::jaro_winkler(&wrong_lower, &candidate_lower),
                candidate,
            )
        })
        .filter(|(edits, similarity, _)| *edits <= max_edits || *similarity > 0.8)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, candidate)| candidate)
}

/// "did you mean `x`? (expected one of: a, b, c)", or the list alone.
pub fn suggest<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
    what: &str,
) -> String {
    let list: Vec<&str> = candidates.clone().into_iter().collect();
    let expected = if list.is_empty() {
        format!("no {what}s are allowed here")
    } else {
        format!("expected one of: {}", list.join(", "))
    };
    match closest(wrong, candidates) {
        Some(best) => format!("did you mean `{best}`? ({expected})"),
        None => expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, col: u32) -> Diagnostic {
        Diagnostic {
            path: PathBuf::from("d.yaml"),
            line,
            col,
            severity: Severity::Error,
            code: "",
            message: "wrong".into(),
            help: Some("fix it".into()),
        }
    }

    #[test]
    fn spans_cover_the_token_at_the_column() {
        assert_eq!(span_in_line("  - id: restor", 9), (8, 6));
        let line = "    needs: [a, \"b c\"]";
        let (start, len) = span_in_line(line, 16);
        assert_eq!(&line[start..start + len], "\"b c\"");
        assert_eq!(span_in_line("abc", 0), (0, 3));
    }

    #[test]
    fn one_line_form_says_as_much_of_the_place_as_is_known() {
        assert_eq!(at(3, 7).to_string(), "d.yaml:3:7: wrong");
        let mut finding = at(5, 0);
        finding.code = "unset_variable";
        assert_eq!(finding.to_string(), "d.yaml:5: unset_variable: wrong");
        assert_eq!(at(0, 0).to_string(), "d.yaml: wrong");
    }

    #[test]
    fn render_marks_the_line_and_says_what_to_do() {
        let source = "a: 1\nb: oops\nc: 3\n";
        let text = render(&[at(2, 4), at(0, 0)], source, false);
        assert!(text.contains("d.yaml:2:4: wrong"), "{text}");
        assert!(text.contains("2 │ b: oops"), "{text}");
        assert!(text.contains("help: fix it"), "{text}");
        assert!(text.contains("d.yaml: wrong"), "{text}");
        // Far into a file the snippet still shows the real line numbers.
        let long: String = (1..=300).map(|n| format!("key{n}: {n}\n")).collect();
        let text = render(&[at(250, 1)], &long, false);
        assert!(text.contains("d.yaml:250:1: wrong"), "{text}");
        assert!(text.contains("249 │ key249: 249"), "{text}");
        assert!(text.contains("250 │ key250: 250"), "{text}");
        assert!(text.contains("251 │ key251: 251"), "{text}");
        assert!(!text.contains("key248"), "{text}");
        // A location past the end of the text is shown without a snippet.
        assert!(render(&[at(9, 1)], source, false).contains("d.yaml:9:1: wrong"));
    }

    #[test]
    fn closest_finds_typos_in_any_case_but_not_strangers() {
        let fields = ["retries", "retry_delay", "timeout", "exit"];
        assert_eq!(closest("retrys", fields), Some("retries"));
        assert_eq!(closest("Timeout", fields), Some("timeout"));
        assert_eq!(closest("exti", fields), Some("exit"));
        assert_eq!(closest("banana", fields), None);
        assert_eq!(
            suggest("tiemout", fields, "attribute"),
            "did you mean `timeout`? (expected one of: retries, retry_delay, timeout, exit)"
        );
        assert_eq!(suggest("x", [], "field"), "no fields are allowed here");
    }
}
