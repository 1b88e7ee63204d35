//! Problems found in a drill file, located; rendered by [`crate::diagnostic`].

use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Severity};
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

    /// Every problem as a [`Diagnostic`] about this file.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.problems
            .iter()
            .map(|problem| Diagnostic {
                path: self.path.clone(),
                line: problem.loc.line,
                col: problem.loc.column,
                severity: Severity::Error,
                code: "",
                message: problem.message.clone(),
                help: problem.help.clone(),
            })
            .collect()
    }

    /// Renders every problem: `file:line:column`, the line with the offending
    /// text marked, and what to do.
    pub fn render(&self, color: bool) -> String {
        crate::diagnostic::render(&self.diagnostics(), &self.source, color)
    }
}
