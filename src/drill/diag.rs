//! Problems found in a drill file, located and rendered like a compiler's.

use std::path::{Path, PathBuf};

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

use crate::located::Loc;
pub use crate::located::Problem;

/// Every problem found in one file, with the text they point into.
#[derive(Debug, Clone)]
pub struct FileProblems {
    /// The file as the user named it.
    pub path: PathBuf,
    /// Its text (empty when it could not be read).
    pub source: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl FileProblems {
    /// Problems with no source text (unreadable file).
    pub fn unreadable(path: &Path, problem: Problem) -> FileProblems {
        FileProblems {
            path: path.to_owned(),
            source: String::new(),
            problems: vec![problem],
        }
    }

    /// Renders every problem: `file:line:column`, the line with the offending
    /// text marked, and what to do.
    pub fn render(&self, color: bool) -> String {
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
            .with_context_lines(1);
        let mut out = String::new();
        let name = self.path.display().to_string();
        for problem in &self.problems {
            let place = if problem.loc.line == 0 {
                name.clone()
            } else {
                format!("{name}:{}:{}", problem.loc.line, problem.loc.column)
            };
            let mut diagnostic = MietteDiagnostic::new(format!("{place}: {}", problem.message));
            if let Some(help) = &problem.help {
                diagnostic = diagnostic.with_help(help.clone());
            }
            let report = match line_text(&self.source, problem.loc.line) {
                Some(line) if line.chars().count() <= MAX_SNIPPET_LINE => {
                    let (offset, len) = span_at(&self.source, problem.loc);
                    miette::Report::new(
                        diagnostic.with_label(LabeledSpan::at(offset..offset + len, "here")),
                    )
                    .with_source_code(NamedSource::new(name.clone(), self.source.clone()))
                }
                // A generated or minified line would flood the terminal:
                // show the part around the column instead.
                Some(line) => {
                    diagnostic.message = format!(
                        "{}\nnear: {}",
                        diagnostic.message,
                        excerpt(line, problem.loc.column)
                    );
                    miette::Report::new(diagnostic)
                }
                None => miette::Report::new(diagnostic),
            };
            let mut rendered = String::new();
            if handler
                .render_report(&mut rendered, report.as_ref())
                .is_err()
            {
                rendered = format!("error: {place}: {}\n", problem.message);
                if let Some(help) = &problem.help {
                    rendered.push_str(&format!("  help: {help}\n"));
                }
            }
            out.push_str(&rendered);
            out.push('\n');
        }
        out
    }
}

/// Lines longer than this (in characters) are not shown whole.
const MAX_SNIPPET_LINE: usize = 200;

/// The text of a 1-based line, without its line break.
fn line_text(source: &str, line: u32) -> Option<&str> {
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    source.lines().nth(index)
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

/// Byte offset and length of the token a location points at.
fn span_at(source: &str, loc: Loc) -> (usize, usize) {
    let mut offset = 0;
    for (index, line) in source.split_inclusive('\n').enumerate() {
        if index + 1 == loc.line as usize {
            let column_offset: usize = line
                .char_indices()
                .nth(loc.column.saturating_sub(1) as usize)
                .map_or(line.trim_end_matches('\n').len(), |(i, _)| i);
            let start = offset + column_offset;
            let rest = &line[column_offset..];
            let len = token_len(rest);
            return (start, len);
        }
        offset += line.len();
    }
    (source.len(), 0)
}

fn token_len(rest: &str) -> usize {
    let rest = rest.trim_end_matches(['\n', '\r']);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_token_at_the_location() {
        let source = "steps:\n  - id: restor\n    needs: [a, \"b c\"]\n";
        assert_eq!(span_at(source, Loc { line: 2, column: 9 }), (15, 6));
        let (start, len) = span_at(
            source,
            Loc {
                line: 3,
                column: 16,
            },
        );
        assert_eq!(&source[start..start + len], "\"b c\"");
    }
}
