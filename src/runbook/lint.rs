//! `firedrill runbook lint`: what would make a runbook fail or mislead on the day,
//! found without running it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diagnostic::{Diagnostic, Severity};

use super::parse::{Document, Section};
use super::shell::{self, COMMON_ENV};
use super::{RunbookError, ScriptLine};

/// One problem in a runbook, at an exact line. Displays as `file:line: kind: message`;
/// [`LintFinding::help`] says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintFinding {
    /// The runbook file.
    pub path: PathBuf,
    /// The line (1-based).
    pub line: usize,
    /// What kind of problem, for machines and tests.
    pub kind: LintKind,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl LintFinding {
    /// The finding as a [`Diagnostic`] (a warning whose code is the kind).
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic {
            path: self.path.clone(),
            line: u32::try_from(self.line).unwrap_or(u32::MAX),
            col: 0,
            severity: Severity::Warning,
            code: self.kind.as_str(),
            message: self.message.clone(),
            help: Some(self.help.clone()),
        }
    }
}

impl fmt::Display for LintFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diagnostic().fmt(f)
    }
}

/// The kinds of lint finding, in the order findings on one line are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LintKind {
    /// A fence attribute is unknown or malformed (the runbook cannot be run).
    InvalidAttribute,
    /// A heading with nothing under it: no instructions, no commands.
    EmptyStep,
    /// A shell block with nothing to run.
    EmptyBlock,
    /// A shell block before the first step heading, which never runs.
    CodeOutsideStep,
    /// A `$ ` prompt in an `sh`/`bash`/`shell` block, which the shell would run.
    PromptInScript,
    /// `exit=` on a block that is not its step's last: it cannot be observed.
    IgnoredExit,
    /// Placeholder text such as `<node>`.
    Placeholder,
    /// `TODO`, `FIXME` or `XXX`.
    Unfinished,
    /// A `$VARIABLE` that nothing sets.
    UnsetVariable,
    /// A relative path or link to a file that does not exist.
    MissingFile,
    /// No step has a command (or there are no steps): nothing of the runbook
    /// can be verified, and a run scores its accuracy on manual steps alone.
    NothingToRun,
}

impl LintKind {
    /// The kind's name as JSON output spells it, e.g. `unset_variable`.
    pub fn as_str(self) -> &'static str {
        match self {
            LintKind::InvalidAttribute => "invalid_attribute",
            LintKind::EmptyStep => "empty_step",
            LintKind::EmptyBlock => "empty_block",
            LintKind::CodeOutsideStep => "code_outside_step",
            LintKind::PromptInScript => "prompt_in_script",
            LintKind::IgnoredExit => "ignored_exit",
            LintKind::Placeholder => "placeholder",
            LintKind::Unfinished => "unfinished",
            LintKind::UnsetVariable => "unset_variable",
            LintKind::MissingFile => "missing_file",
            LintKind::NothingToRun => "nothing_to_run",
        }
    }
}

/// HTML tags people put in Markdown on purpose; `<node>` is not one of them.
const HTML_TAGS: [&str; 49] = [
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "center",
    "cite",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
];

/// Checks a runbook without running it. Findings come sorted by line.
///
/// `known_vars` is the set of variables the runbook's commands will have: the
/// drill's `vars`, firedrill's built-ins, and anything the caller knows of. With
/// `None` (linting a runbook on its own) variables are not checked. Either way,
/// shell specials (`$?`, `$1` ...), common environment (`HOME`, `PATH` ...) and
/// names the runbook assigns itself are never reported.
///
/// Relative paths (`./x`, `../x`) are resolved against the runbook's directory:
/// Markdown links, and in commands only paths a command surely reads (the
/// command itself, inputs, `-f`/`--config` values, `cp` sources) that no earlier
/// command may have made; nothing after a `cd`. Files made during the run are
/// best named through `$WORKDIR`.
pub fn lint(path: &Path, text: &str, known_vars: Option<&BTreeSet<String>>) -> Vec<LintFinding> {
    let document = Document::parse(path, text);
    let mut linter = Linter {
        path,
        base_dir: path.parent().unwrap_or(Path::new("")),
        lines: text.lines().collect(),
        findings: Vec::new(),
        may_create: Vec::new(),
    };
    for error in &document.errors {
        linter.push(
            error.line.unwrap_or(1),
            LintKind::InvalidAttribute,
            error.message.clone(),
            "write attributes after the language in braces, e.g. ```sh {timeout=2m exit=0 stdout_contains=\"is healthy\" retries=3 retry_delay=2s}".into(),
        );
    }
    let commands: Vec<Vec<ScriptLine>> = document
        .sections
        .iter()
        .flat_map(|section| section.blocks.iter().map(|block| block.commands()))
        .collect();
    // Assignments count across the whole runbook: a name written to
    // $FIREDRILL_OUTPUT in one step is set for the next ones.
    let assigned: BTreeSet<String> = commands
        .iter()
        .flat_map(|lines| shell::assigned_names(&shell::shell_view(lines)))
        .collect();
    // After `source FILE` or `eval`, any name may be set: checking would cry wolf.
    let hidden_names = commands
        .iter()
        .flatten()
        .any(|line| shell::sets_hidden_names(&line.text));
    let known_vars = known_vars.filter(|_| !hidden_names);
    for (index, section) in document.sections.iter().enumerate() {
        let next_level = document
            .sections
            .get(index + 1)
            .and_then(|next| next.heading.as_ref())
            .map(|heading| heading.level);
        linter.structure(section, next_level);
        linter.text(section);
        linter.links(section);
        // The blocks of a step share one shell: after a `cd` in any of them,
        // relative paths no longer resolve against the runbook's directory.
        let mut moved = false;
        for block in &section.blocks {
            let lines = block.commands();
            linter.commands(
                &lines,
                known_vars.map(|known| (known, &assigned)),
                &mut moved,
            );
        }
    }
    linter.nothing_to_run(&document);
    let mut findings = linter.findings;
    findings.sort_by(|a, b| (a.line, a.kind, &a.message).cmp(&(b.line, b.kind, &b.message)));
    findings.dedup();
    findings
}

/// Reads a runbook file and lints it; the error is for a file that cannot be read.
pub fn lint_file(
    path: &Path,
    known_vars: Option<&BTreeSet<String>>,
) -> Result<Vec<LintFinding>, RunbookError> {
    let text = super::read(path)?;
    Ok(lint(path, &text, known_vars))
}

struct Linter<'a> {
    path: &'a Path,
    base_dir: &'a Path,
    lines: Vec<&'a str>,
    findings: Vec<LintFinding>,
    /// Relative paths commands so far may have created, in document order.
    may_create: Vec<String>,
}

impl Linter<'_> {
    fn push(&mut self, line: usize, kind: LintKind, message: String, help: String) {
        self.findings.push(LintFinding {
            path: self.path.to_path_buf(),
            line,
            kind,
            message,
            help,
        });
    }

    /// A runbook with no steps, or only manual ones: firedrill can verify none of it.
    fn nothing_to_run(&mut self, document: &Document) {
        let steps: Vec<&Section> = document.sections.iter().filter(|s| s.is_step).collect();
        let runnable = steps
            .iter()
            .any(|step| step.blocks.iter().any(|block| !block.is_empty()));
        if runnable {
            return;
        }
        let title_line = document
            .sections
            .iter()
            .find_map(|section| section.heading.as_ref().map(|heading| heading.line))
            .unwrap_or(1);
        let (message, help) = if steps.is_empty() {
            (
                "the runbook has no steps: every heading below the title is a step, and there are none".to_owned(),
                "write each step under a `##` heading, with its commands in ```sh blocks",
            )
        } else {
            (
                format!(
                    "no step has a command: all {} step{} are manual, so firedrill can verify none of them",
                    steps.len(),
                    if steps.len() == 1 { "" } else { "s" }
                ),
                "put the commands an operator would type in ```sh blocks under their steps",
            )
        };
        self.push(title_line, LintKind::NothingToRun, message, help.into());
    }

    /// Steps and blocks that say nothing, or say something that will not run as meant.
    fn structure(&mut self, section: &Section, next_level: Option<u8>) {
        if let (true, Some(heading)) = (section.is_step, &section.heading) {
            // A heading straight followed by deeper ones groups them; it is not empty.
            let groups_next = next_level.is_some_and(|next| next > heading.level);
            if section.body.trim().is_empty() && !groups_next {
                self.push(
                    heading.line,
                    LintKind::EmptyStep,
                    format!(
                        "step `{}` is empty: no instructions and no commands",
                        heading.title
                    ),
                    "write what to do under the heading, or remove the heading".into(),
                );
            }
        }
        let runnable: Vec<usize> = (0..section.blocks.len())
            .filter(|index| !section.blocks[*index].is_empty())
            .collect();
        for (index, block) in section.blocks.iter().enumerate() {
            if !section.is_step && !block.is_empty() {
                self.push(
                    block.line,
                    LintKind::CodeOutsideStep,
                    format!("`{}` block before the first step never runs", block.lang),
                    "put it under a heading: every heading below the title is a step".into(),
                );
            }
            if block.is_empty() {
                let (message, help) = if block.is_console() && !block.code.trim().is_empty() {
                    (
                        "`console` block has no `$ ` or `# ` prompt line, so nothing in it runs"
                            .to_string(),
                        "start each command with a `$ ` prompt; other lines are read as expected output",
                    )
                } else {
                    (
                        format!(
                            "empty `{}` block: the step looks runnable but has no command",
                            block.lang
                        ),
                        "write the commands in the block, or remove it to make the step manual",
                    )
                };
                self.push(block.line, LintKind::EmptyBlock, message, help.into());
            }
            if !block.is_console()
                && let Some(prompt) = block.commands().iter().find(|l| l.text.starts_with("$ "))
            {
                self.push(
                    prompt.line,
                    LintKind::PromptInScript,
                    format!(
                        "`{}` block line starts with a `$ ` prompt, which the shell would run as a command named `$`",
                        block.lang
                    ),
                    "remove the prompt, or make the block ```console so prompts are stripped and other lines are read as output".into(),
                );
            }
            let is_last = runnable.last() == Some(&index);
            if section.is_step && !block.is_empty() && !is_last && block.attrs.exit != 0 {
                self.push(
                    block.line,
                    LintKind::IgnoredExit,
                    format!(
                        "`exit={}` cannot be checked here: a step's blocks run in one shell and only its final status is seen",
                        block.attrs.exit
                    ),
                    "give this block a heading of its own, or put the check on the step's last block".into(),
                );
            }
        }
    }

    /// `TODO` anywhere in the section, and `<placeholder>`s in its prose.
    fn text(&mut self, section: &Section) {
        for line in section.start_line..=section.end_line {
            let Some(raw) = self.lines.get(line.wrapping_sub(1)).copied() else {
                continue;
            };
            for marker in shell::unfinished_markers(raw) {
                self.push(
                    line,
                    LintKind::Unfinished,
                    format!("`{marker}` left in the runbook"),
                    "finish or remove it before the game day".into(),
                );
            }
            if section.in_code(line) {
                continue;
            }
            for placeholder in shell::placeholders(raw) {
                let tag = placeholder.trim_matches(['<', '>']).to_ascii_lowercase();
                if HTML_TAGS.contains(&tag.as_str()) {
                    continue;
                }
                self.push(
                    line,
                    LintKind::Placeholder,
                    format!("placeholder `{placeholder}` in the instructions"),
                    "replace it with the real name, or say where to find it".into(),
                );
            }
        }
    }

    /// Markdown links and images to local files that do not exist.
    fn links(&mut self, section: &Section) {
        for (line, destination) in &section.links {
            let Some(relative) = local_link(destination) else {
                continue;
            };
            if !self.base_dir.join(&relative).exists() {
                self.push(
                    *line,
                    LintKind::MissingFile,
                    format!(
                        "link to `{relative}`, which does not exist next to the runbook (looked for `{}`)",
                        self.base_dir.join(&relative).display()
                    ),
                    "fix the path; links resolve against the runbook's directory".into(),
                );
            }
        }
    }

    /// Placeholders, unset variables and missing files in the lines that run.
    /// `moved` is set once a line changes directory; from then on relative paths
    /// are not checked, since the lint cannot know where they point.
    fn commands(
        &mut self,
        lines: &[ScriptLine],
        variables: Option<(&BTreeSet<String>, &BTreeSet<String>)>,
        moved: &mut bool,
    ) {
        let view = shell::shell_view(lines);
        for shell_line in &view {
            // A heredoc body is data for a command (a config file, a manifest),
            // where `<tag>` is more often markup than a placeholder.
            if shell_line.heredoc.is_some() {
                continue;
            }
            for placeholder in shell::placeholders(shell::strip_comment(shell_line.text)) {
                self.push(
                    shell_line.line,
                    LintKind::Placeholder,
                    format!(
                        "placeholder `{placeholder}` in a command: the shell would read it as a redirection"
                    ),
                    format!(
                        "replace it with the real value, or with a variable set in the drill's `vars:` (like `${}`)",
                        placeholder.trim_matches(['<', '>']).replace('-', "_").to_ascii_uppercase()
                    ),
                );
            }
            *moved = *moved || shell::changes_directory(shell_line.text);
            if *moved {
                continue;
            }
            for path_use in shell::path_uses(shell_line.text) {
                let path = path_use.path;
                // A path an earlier command may have made (`snapshot save ./snap.db`,
                // `mkdir ./backup`) is not expected to exist beforehand.
                let maybe_made = self.may_create.iter().any(|made| {
                    Path::new(&path).starts_with(Path::new(made.trim_end_matches('/')))
                });
                if !path_use.read {
                    self.may_create.push(path);
                    continue;
                }
                let resolved = self.base_dir.join(&path);
                if !maybe_made && !resolved.exists() {
                    self.push(
                        shell_line.line,
                        LintKind::MissingFile,
                        format!(
                            "`{path}` does not exist next to the runbook (looked for `{}`)",
                            resolved.display()
                        ),
                        "fix the path (relative paths resolve against the runbook's directory); for files made during the run use `$WORKDIR/...`".into(),
                    );
                }
            }
        }
        let Some((known, assigned)) = variables else {
            return;
        };
        for (line, name) in shell::variable_uses(&view) {
            if known.contains(&name)
                || assigned.contains(&name)
                || COMMON_ENV.contains(&name.as_str())
            {
                continue;
            }
            let candidates: Vec<&str> = known
                .iter()
                .chain(assigned.iter())
                .map(String::as_str)
                .collect();
            let help = match crate::diagnostic::closest(&name, candidates) {
                Some(best) => format!("did you mean `${best}`?"),
                None => format!(
                    "add `{name}` to the drill's `vars:` (or pass `--var {name}=...`), or set it in the runbook before it is used"
                ),
            };
            self.push(
                line,
                LintKind::UnsetVariable,
                format!("`${name}` is not set: it is not a drill variable, a built-in, or assigned in the runbook"),
                help,
            );
        }
    }
}

/// The names a shell script gives a value (`NAME=...`, `export NAME=...`,
/// `for NAME in`, `read NAME`, lines written to `$FIREDRILL_OUTPUT`): a drill's
/// commands may set variables its runbook then uses.
pub fn names_assigned_in(script: &str) -> BTreeSet<String> {
    let lines: Vec<ScriptLine> = script
        .lines()
        .enumerate()
        .map(|(index, text)| ScriptLine::new(index + 1, text))
        .collect();
    shell::assigned_names(&shell::shell_view(&lines))
}

/// The `$NAME`s a shell script expands that neither `known` nor the script
/// itself sets (nor common environment such as `HOME`), each once, in order
/// of first use with its line in the script. Empty after `source` or `eval`,
/// which may set anything.
pub fn unset_names_in(script: &str, known: &BTreeSet<String>) -> Vec<(usize, String)> {
    let lines: Vec<ScriptLine> = script
        .lines()
        .enumerate()
        .map(|(index, text)| ScriptLine::new(index + 1, text))
        .collect();
    if lines
        .iter()
        .any(|line| shell::sets_hidden_names(&line.text))
    {
        return Vec::new();
    }
    let view = shell::shell_view(&lines);
    let assigned = shell::assigned_names(&view);
    let mut seen = BTreeSet::new();
    shell::variable_uses(&view)
        .into_iter()
        .filter(|(_, name)| {
            !known.contains(name)
                && !assigned.contains(name)
                && !COMMON_ENV.contains(&name.as_str())
                && seen.insert(name.clone())
        })
        .collect()
}

/// The local file a link points at, or `None` for URLs, anchors and absolute paths.
fn local_link(destination: &str) -> Option<String> {
    let path = destination.split(['#', '?']).next().unwrap_or("").trim();
    let has_scheme = path
        .split_once(':')
        .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'));
    if path.is_empty() || path.starts_with('/') || has_scheme {
        return None;
    }
    Some(percent_decode(path))
}

/// Links spell spaces and other bytes as `%20`; the file system does not.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_links_only() {
        assert_eq!(
            local_link("../scenarios/x.yaml#top").as_deref(),
            Some("../scenarios/x.yaml")
        );
        assert_eq!(
            local_link("docs/my%20file.md").as_deref(),
            Some("docs/my file.md")
        );
        for remote in [
            "https://example.com/x",
            "mailto:a@b",
            "#anchor",
            "/etc/hosts",
            "",
        ] {
            assert_eq!(local_link(remote), None, "{remote}");
        }
    }
}
