//! `firedrill runbook lint FILE... [--drill DRILL]`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{EXIT_FAILED, EXIT_OK, Error, plural};
use crate::runbook::LintFinding;

/// Prints every finding to stdout as `file:line: kind: message` with a
/// `  help:` line under it, and `ok: FILE` for a clean runbook. Ends with
/// [`EXIT_FAILED`] when anything was found, an error when a runbook cannot be
/// read or the drill is invalid.
///
/// Variables are only checked with a drill: then the known ones are the drill's
/// `vars`, firedrill's built-ins, `CLUSTER` and `KUBECONFIG`, and the names the
/// drill's own commands assign (step outputs written to `$FIREDRILL_OUTPUT`).
pub(super) fn lint(files: &[PathBuf], drill: Option<&Path>) -> Result<i32, Error> {
    let known = match drill {
        Some(drill) => Some(drill_vars(&super::load(drill)?.drill)),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let (mut unreadable, mut findings_total, mut with_findings) = (0, 0, 0);
    for file in files {
        match crate::runbook::lint_file(file, known.as_ref()) {
            Err(error) => {
                // The file could not be read: there is no text to show.
                eprint!(
                    "{}",
                    crate::diagnostic::render(&[error.diagnostic()], "", super::stderr_color())
                );
                unreadable += 1;
            }
            Ok(findings) if findings.is_empty() => {
                let _ = writeln!(out, "ok: {}", file.display());
            }
            Ok(findings) => {
                with_findings += 1;
                findings_total += findings.len();
                for finding in findings.iter().map(LintFinding::diagnostic) {
                    let help = finding.help.as_deref().unwrap_or_default();
                    let _ = writeln!(out, "{finding}\n  help: {help}");
                }
            }
        }
    }
    let _ = out.flush();
    if unreadable > 0 {
        return Err(Error::UnreadableRunbooks {
            unreadable,
            total: files.len(),
        });
    }
    if findings_total == 0 {
        return Ok(EXIT_OK);
    }
    eprintln!(
        "{findings_total} finding{} in {with_findings} of {} runbook{}",
        plural(findings_total),
        files.len(),
        plural(files.len())
    );
    Ok(EXIT_FAILED)
}

/// Every name a runbook may use when the drill runs it: the drill's `vars`,
/// firedrill's built-ins, the kind target's variables and what its commands assign.
fn drill_vars(drill: &crate::drill::Drill) -> BTreeSet<String> {
    let mut known = crate::drill::known_vars(drill);
    known.extend(
        crate::target::kind::VAR_NAMES
            .iter()
            .map(|name| (*name).to_owned()),
    );
    // Names a `run` writes to $FIREDRILL_OUTPUT are set for the steps after it;
    // any name a drill command assigns is taken as known, to stay quiet.
    let scripts = drill.steps.iter().filter_map(|step| match &step.action {
        crate::drill::Action::Run(run) => Some(run.as_str()),
        crate::drill::Action::Recover(recover) => recover.value.run.as_deref(),
        crate::drill::Action::Fault(_)
        | crate::drill::Action::Probe(_)
        | crate::drill::Action::Wait(_)
        | crate::drill::Action::Apply(_) => None,
    });
    for script in scripts {
        known.extend(crate::runbook::names_assigned_in(script));
    }
    known
}
