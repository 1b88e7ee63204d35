//! Problems found in a drill file, located and rendered like a compiler's.

use std::path::{Path, PathBuf};

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

use super::yaml::Loc;

/// One problem in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Where; line 0 when the problem is about the whole file.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Problem {
    /// A problem at `loc`.
    pub fn at(loc: Loc, message: impl Into<String>) -> Problem {
        Problem {
            loc,
            message: message.into(),
            help: None,
        }
    }

    /// Adds what to do.
    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }
}

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
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_context_lines(1);
        let mut out = String::new();
        let name = self.path.display().to_string();
        for problem in &self.problems {
            if problem.loc.line == 0 || self.source.is_empty() {
                out.push_str(&format!("error: {name}: {}\n", problem.message));
                if let Some(help) = &problem.help {
                    out.push_str(&format!("  help: {help}\n"));
                }
                out.push('\n');
                continue;
            }
            let (offset, len) = span_at(&self.source, problem.loc);
            let mut diagnostic = MietteDiagnostic::new(format!(
                "{name}:{}:{}: {}",
                problem.loc.line, problem.loc.column, problem.message
            ))
            .with_label(LabeledSpan::at(offset..offset + len, "here"));
            if let Some(help) = &problem.help {
                diagnostic = diagnostic.with_help(help.clone());
            }
            let report = miette::Report::new(diagnostic)
                .with_source_code(NamedSource::new(name.clone(), self.source.clone()));
            let mut rendered = String::new();
            if handler
                .render_report(&mut rendered, report.as_ref())
                .is_err()
            {
                rendered = format!(
                    "{name}:{}:{}: {}\n",
                    problem.loc.line, problem.loc.column, problem.message
                );
            }
            out.push_str(&rendered);
            out.push('\n');
        }
        out
    }
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
