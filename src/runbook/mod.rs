//! Recovery runbooks: ordinary Markdown that a person can follow and firedrill can run.
//!
//! The first level-1 heading is the runbook's title. Every other heading starts a
//! step that runs until the next heading, whatever the levels. A step whose section
//! holds fenced code blocks in `sh`, `bash`, `shell` or `console` is executable: its
//! blocks run in order in one shell. Any other step is manual (the report lists it
//! as unverified). Text before the first step is introduction and never runs.
//!
//! This module only reads runbooks ([`parse`], [`load`]) and checks them ([`lint`]);
//! running them is the engine's job, which gets from here the script of each step
//! ([`RunbookStep::script`]), its time budget ([`RunbookStep::timeout`]) and the
//! checks its result must pass ([`RunbookStep::expectations`]).

mod fence;
mod lint;
mod parse;
mod shell;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::watch::{Pattern, Printed, Watch};

pub use fence::{DEFAULT_RETRY_DELAY, FenceAttrs, SUPPORTED_ATTRIBUTES};
pub use lint::{LintFinding, LintKind, lint, lint_file, names_assigned_in, unset_names_in};

/// Fence languages that make a code block executable.
pub const SHELL_LANGUAGES: [&str; 4] = ["sh", "bash", "shell", "console"];

/// A parsed runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// The file it was read from, as given; errors and findings name it.
    pub path: PathBuf,
    /// The text of the first level-1 heading, if there is one.
    pub title: Option<String>,
    /// Every heading except the title, in document order.
    pub steps: Vec<RunbookStep>,
}

/// One heading and everything up to the next heading.
#[derive(Debug, Clone)]
pub struct RunbookStep {
    /// The heading's text, as plain text.
    pub title: String,
    /// The heading's line (1-based).
    pub line: usize,
    /// The heading's level, 1 to 6.
    pub level: u8,
    /// The shell code blocks (`sh`, `bash`, `shell`, `console`), in order. Code in
    /// other languages (YAML to apply by hand, say) is part of [`Self::body`] only.
    pub blocks: Vec<CodeBlock>,
    /// The section's text without its code blocks, for showing a manual step.
    pub prose: String,
    /// The section's Markdown source below the heading, as written.
    pub body: String,
}

/// A fenced shell code block.
#[derive(Debug, Clone)]
pub struct CodeBlock {
    /// The line of the opening fence (1-based); the code starts on the next line.
    pub line: usize,
    /// `sh`, `bash`, `shell` or `console`.
    pub lang: String,
    /// The block's text exactly as written (console prompts and output included).
    pub code: String,
    /// What the fence says about how the block must behave.
    pub attrs: FenceAttrs,
}

/// A line of shell code that will run, with the runbook line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLine {
    /// The line in the runbook file (1-based).
    pub line: usize,
    /// The command text, without any console prompt.
    pub text: String,
}

impl ScriptLine {
    fn new(line: usize, text: &str) -> Self {
        ScriptLine {
            line,
            text: text.to_string(),
        }
    }
}

impl CodeBlock {
    /// Whether this is a `console` transcript rather than a plain script.
    pub fn is_console(&self) -> bool {
        self.lang == "console"
    }

    /// The lines that run, each with its runbook line.
    ///
    /// In `console` blocks only `$ ` and `# ` prompt lines are commands (prompt
    /// stripped), with the lines a trailing `\` continues onto and the bodies of
    /// heredocs they open; everything else is the expected output and does not run.
    /// Other blocks run every line as written.
    pub fn commands(&self) -> Vec<ScriptLine> {
        if self.is_console() {
            shell::console_commands(self.line, &self.code)
        } else {
            self.code
                .lines()
                .enumerate()
                .map(|(index, text)| ScriptLine::new(self.line + 1 + index, text))
                .collect()
        }
    }

    /// Whether the block has nothing to run (only blank lines, or a console
    /// transcript without a single prompt line).
    pub fn is_empty(&self) -> bool {
        self.commands()
            .iter()
            .all(|line| line.text.trim().is_empty())
    }
}

impl RunbookStep {
    /// A step is manual when it has nothing to run: no shell block, or only empty
    /// ones. (An empty block is still a lint finding: it looks runnable and is not.)
    pub fn is_manual(&self) -> bool {
        self.blocks.iter().all(CodeBlock::is_empty)
    }

    /// The shell script of the step: its blocks' commands in order, console
    /// prompts and output removed, ending with a newline (empty for a manual step).
    ///
    /// Nothing is added: no `set -e`, no markers. The engine decides how to run it;
    /// blocks share one shell so a `cd` or a variable in one carries to the next,
    /// as it would for a person typing them into one terminal.
    pub fn script(&self) -> String {
        let mut script = String::new();
        for block in &self.blocks {
            for line in block.commands() {
                script.push_str(&line.text);
                script.push('\n');
            }
        }
        if script.trim().is_empty() {
            String::new()
        } else {
            script
        }
    }

    /// Time allowed for one attempt of the step: the sum of its blocks' timeouts,
    /// each block without a `timeout` counting as `default_per_block`.
    ///
    /// A sum because the blocks run one after the other in the same shell; taking
    /// the largest would cut short a step whose every block needs its full time.
    pub fn timeout(&self, default_per_block: Duration) -> Duration {
        self.runnable_blocks()
            .map(|block| block.attrs.timeout.unwrap_or(default_per_block))
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// What the step's one shell must do to count as run as written.
    ///
    /// The blocks run in one shell, so there is one exit status and one output:
    /// - the exit status the step must end with is the **last** block's `exit`
    ///   (the shell exits with its last command's status; `exit` on an earlier
    ///   block cannot be observed, and the lint says so);
    /// - every block's `stdout_contains` and `stdout_matches` must hold for the
    ///   step's whole standard output;
    /// - a failed attempt re-runs the whole step (the blocks may depend on one
    ///   another's shell state), up to the largest `retries` of any block, waiting
    ///   the largest `retry_delay` among the blocks that ask for retries.
    pub fn expectations(&self) -> StepExpectations {
        let runnable: Vec<&CodeBlock> = self.runnable_blocks().collect();
        StepExpectations {
            exit: runnable.last().map_or(0, |block| block.attrs.exit),
            stdout_contains: runnable
                .iter()
                .filter_map(|block| block.attrs.stdout_contains.clone())
                .collect(),
            stdout_matches: runnable
                .iter()
                .filter_map(|block| block.attrs.stdout_matches.clone())
                .collect(),
            retries: self.retries(),
            retry_delay: self.retry_delay(),
        }
    }

    /// Further attempts after a failed one: the largest `retries` of the step's
    /// blocks (0 when none asks). An attempt re-runs the whole step.
    pub fn retries(&self) -> u32 {
        self.runnable_blocks()
            .map(|block| block.attrs.retries)
            .max()
            .unwrap_or(0)
    }

    /// Pause between attempts: the largest `retry_delay` among the blocks that ask
    /// for retries, else [`DEFAULT_RETRY_DELAY`].
    pub fn retry_delay(&self) -> Duration {
        self.runnable_blocks()
            .filter(|block| block.attrs.retries > 0)
            .map(|block| block.attrs.retry_delay)
            .max()
            .unwrap_or(DEFAULT_RETRY_DELAY)
    }

    /// The blocks with something to run, in order.
    fn runnable_blocks(&self) -> impl Iterator<Item = &CodeBlock> {
        self.blocks.iter().filter(|block| !block.is_empty())
    }
}

/// The combined expectations of a step's blocks; see [`RunbookStep::expectations`].
#[derive(Debug, Clone)]
pub struct StepExpectations {
    /// The exit status the step's shell must end with.
    pub exit: i32,
    /// Texts the step's standard output must each contain.
    pub stdout_contains: Vec<String>,
    /// Regexes the step's standard output must each match (multi-line).
    pub stdout_matches: Vec<Pattern>,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_delay: Duration,
}

impl StepExpectations {
    /// A watch for this step's texts and patterns, to see every byte of its
    /// output as it is printed (docs/runbooks.md, "Checks on long output").
    pub fn watch(&self) -> Option<Watch> {
        if self.stdout_contains.is_empty() && self.stdout_matches.is_empty() {
            None
        } else {
            Some(Watch::new(
                &self.stdout_contains,
                self.stdout_matches.clone(),
            ))
        }
    }

    /// Checks one attempt's result. The error says every way it fell short, e.g.
    /// "exit 1, expected 0; stdout does not contain `is healthy`".
    pub fn check(&self, exit_code: i32, printed: &Printed<'_>) -> Result<(), String> {
        let mut problems = Vec::new();
        if exit_code != self.exit {
            problems.push(format!("exit {exit_code}, expected {}", self.exit));
        }
        for text in &self.stdout_contains {
            if let Err(note) = printed.contains(text) {
                problems.push(format!("stdout does not contain `{text}`{note}"));
            }
        }
        for pattern in &self.stdout_matches {
            if let Err(note) = printed.matches(pattern, false) {
                problems.push(format!(
                    "stdout does not match `{}`{note}",
                    pattern.as_str()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// A problem that stops a runbook from being read: the file is missing or not
/// UTF-8, or a fence attribute is unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookError {
    /// The runbook file.
    pub path: PathBuf,
    /// The line (1-based), unless the problem is with the whole file.
    pub line: Option<usize>,
    /// What is wrong, and for a misspelt attribute the closest valid one.
    pub message: String,
}

impl RunbookError {
    /// The error as a [`crate::diagnostic::Diagnostic`].
    pub fn diagnostic(&self) -> crate::diagnostic::Diagnostic {
        crate::diagnostic::Diagnostic {
            path: self.path.clone(),
            line: self
                .line
                .map_or(0, |line| u32::try_from(line).unwrap_or(u32::MAX)),
            col: 0,
            severity: crate::diagnostic::Severity::Error,
            code: "",
            message: self.message.clone(),
            help: None,
        }
    }
}

/// `file:line: message`.
impl fmt::Display for RunbookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diagnostic().fmt(f)
    }
}

impl std::error::Error for RunbookError {}

/// Parses runbook text. `path` is only used to name the file in errors.
///
/// Returns every error found, in line order, rather than stopping at the first.
pub fn parse(path: &Path, text: &str) -> Result<Runbook, Vec<RunbookError>> {
    let document = parse::Document::parse(path, text);
    if document.errors.is_empty() {
        Ok(document.runbook(path))
    } else {
        Err(document.errors)
    }
}

/// Reads and parses a runbook file.
pub fn load(path: &Path) -> Result<Runbook, Vec<RunbookError>> {
    let text = read(path).map_err(|error| vec![error])?;
    parse(path, &text)
}

/// Reads a runbook file as UTF-8, with an error that says which line is not.
fn read(path: &Path) -> Result<String, RunbookError> {
    let bytes =
        crate::bounded::read_regular(path, crate::bounded::MAX_INPUT_FILE).map_err(|error| {
            RunbookError {
                path: path.to_path_buf(),
                line: None,
                message: format!("cannot read the runbook: {error}"),
            }
        })?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let line = error.as_bytes()[..valid]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count()
            + 1;
        RunbookError {
            path: path.to_path_buf(),
            line: Some(line),
            message: "the runbook is not valid UTF-8".into(),
        }
    })
}

#[cfg(test)]
mod tests;
