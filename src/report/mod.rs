//! The records a run leaves for people and CI (docs/cli.md, "The run
//! directory"; docs/scoring.md): `report.md`, `report.html`, `junit.xml` and
//! the pretty `journal.json`.
//!
//! Every format is a pure function of a [`Journal`], so `firedrill report` can
//! re-render any past run and the formats cannot disagree about the facts: the
//! derived facts (timeline, score explanation, follow-ups) live in `facts` and
//! each renderer only lays them out.

mod facts;
mod html;
mod junit;
mod markdown;
mod samples;
pub mod terminal;

use std::io;
use std::path::Path;

use crate::cli::ReportFormat;
use crate::journal::{Journal, RunbookStepStatus, StepStatus};

pub use samples::sample_journal_for_docs;

/// `evidence/failed-steps.txt`: each step and runbook step that failed, as
/// a person says it (`failed after 2 attempts, exit code 1`), with its output.
pub fn failed_steps(journal: &Journal) -> String {
    let mut failed = String::new();
    for step in &journal.steps {
        if matches!(step.status, StepStatus::Failed | StepStatus::Interrupted) {
            failed.push_str(&format!(
                "step {} ({}): {} after {}, {}: {}\n{}\n\n",
                step.id,
                step.action,
                step.status.as_str(),
                crate::text::count(step.attempts, "attempt"),
                crate::text::exit_status(step.exit_code),
                step.detail,
                step.output_tail
            ));
        }
    }
    if let Some(runbook) = &journal.runbook {
        for (index, step) in runbook.steps.iter().enumerate() {
            if step.status == RunbookStepStatus::Failed {
                failed.push_str(&format!(
                    "runbook {} step {} ({}, line {}): {}: {}\n$ {}\n{}\n\n",
                    runbook.path,
                    index + 1,
                    step.title,
                    step.line,
                    crate::text::exit_status(step.exit_code),
                    step.detail,
                    step.command,
                    step.output_tail
                ));
            }
        }
    }
    failed
}

/// Renders `report.md`: a retrospective a team can paste into its postmortem.
pub fn markdown(journal: &Journal) -> String {
    markdown::render(journal)
}

/// Renders `report.html`: one self-contained file (inline CSS and SVG, no
/// scripts, no network) with the same content as the Markdown plus a timeline.
pub fn html(journal: &Journal) -> String {
    html::render(journal)
}

/// Renders `junit.xml`: a suite per drill with a test case per drill step,
/// per runbook step and per objective, so CI shows why a drill failed.
pub fn junit(journal: &Journal) -> String {
    junit::render(journal)
}

/// Renders the journal as pretty JSON (the `journal.json` format).
pub fn json(journal: &Journal) -> String {
    // A journal holds only strings, numbers and plain containers, so serde_json
    // cannot fail on it; the fallback keeps this function total anyway.
    serde_json::to_string_pretty(journal).unwrap_or_else(|error| {
        let message = serde_json::Value::String(format!("cannot serialize journal: {error}"));
        format!("{{\"error\": {message}}}")
    })
}

/// Writes `report.md`, `report.html` and `junit.xml` into `run_dir`
/// (`journal.json` is the engine's to write).
///
/// Each file is written to a temporary name first and renamed into place so
/// a reader (a CI artifact upload, a browser) never sees half a report.
pub fn write_all(run_dir: &Path, journal: &Journal) -> io::Result<()> {
    std::fs::create_dir_all(run_dir)?;
    write_atomically(
        &run_dir.join("report.md"),
        &render(journal, ReportFormat::Md),
    )?;
    write_atomically(
        &run_dir.join("report.html"),
        &render(journal, ReportFormat::Html),
    )?;
    write_atomically(&run_dir.join("junit.xml"), &junit(journal))?;
    Ok(())
}

/// Renders a journal in the format `firedrill report --format` names.
pub fn render(journal: &Journal, format: ReportFormat) -> String {
    match format {
        // What drills and commands wrote may hold ESC and other controls:
        // shown escaped, never obeyed by the terminal that prints a report.
        ReportFormat::Md => crate::text::escape_controls(&markdown(journal)).into_owned(),
        ReportFormat::Html => crate::text::escape_controls(&html(journal)).into_owned(),
        ReportFormat::Json => json(journal) + "\n",
        ReportFormat::Junit => junit(journal),
    }
}

fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}

/// Escapes text for HTML (and inline SVG) element content and quoted attribute values.
///
/// Every piece of journal text that reaches `report.html` goes through here:
/// step output is whatever the system under test printed, including `<script>`.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // Control characters other than tab and newline are not allowed in
            // HTML text and would garble the page; output tails can contain them.
            c if c.is_control() && c != '\n' && c != '\t' => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests;
