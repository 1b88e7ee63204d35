//! `report.md`: the retrospective, in GitHub-flavoured Markdown so it pastes
//! into a postmortem doc, an issue or a PR comment as it is.

use std::fmt::Write as _;

use super::facts::{self, EntryKind};
use crate::journal::{Journal, RunbookStepStatus, StepStatus};

pub(super) fn render(journal: &Journal) -> String {
    let mut out = String::new();
    summary(&mut out, journal);
    score(&mut out, journal);
    objectives(&mut out, journal);
    timeline(&mut out, journal);
    game_day(&mut out, journal);
    faults(&mut out, journal);
    steps(&mut out, journal);
    runbook(&mut out, journal);
    follow_ups(&mut out, journal);
    out
}

fn summary(out: &mut String, journal: &Journal) {
    let _ = writeln!(
        out,
        "# Drill report: {} — {}\n",
        inline(&journal.drill),
        journal.verdict.as_str().to_uppercase()
    );
    if !journal.reason.trim().is_empty() {
        let _ = writeln!(out, "> {}\n", inline(&journal.reason));
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let rows = [
        ("Verdict", format!("**{}**", journal.verdict.as_str())),
        (
            "Score",
            format!(
                "**{}** / 100 (minimum {})",
                journal.score, journal.min_score
            ),
        ),
        ("Run", code(&journal.run_id)),
        ("Scenario", or_unknown(&journal.scenario, code)),
        ("Target", or_unknown(&journal.target, cell)),
        ("Started", or_unknown(&journal.started_at, cell)),
        ("Duration", facts::human(journal.duration_ms)),
        (
            "Seed",
            format!("{} (replay with `--seed {}`)", journal.seed, journal.seed),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    out.push('\n');
}

fn score(out: &mut String, journal: &Journal) {
    let explanation = facts::score_explanation(journal);
    let _ = writeln!(out, "## Score\n");
    let _ = writeln!(out, "| Part | Value |\n|---|---|");
    let _ = writeln!(out, "| Time score | {} |", cell(&explanation.time));
    let _ = writeln!(
        out,
        "| Runbook accuracy | {} |",
        cell(&explanation.accuracy)
    );
    let _ = writeln!(out, "| **Score** | {} |\n", cell(&explanation.formula));
    let _ = writeln!(out, "Formula: {}\n", inline(facts::FORMULA));
    let _ = writeln!(
        out,
        "As the scorer computed it: {}\n",
        inline(&explanation.scorer)
    );
}

fn objectives(out: &mut String, journal: &Journal) {
    let _ = writeln!(out, "## Objectives\n");
    let _ = writeln!(
        out,
        "| Objective | Target | Measured | Met |\n|---|---|---|---|"
    );
    for objective in facts::objectives(journal) {
        let met = match objective.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            objective.name,
            cell(&objective.target),
            cell(&objective.measured)
        );
    }
    out.push('\n');
}

fn timeline(out: &mut String, journal: &Journal) {
    let _ = writeln!(out, "## Timeline\n");
    let entries = facts::timeline(journal);
    if entries.is_empty() {
        let _ = writeln!(out, "Nothing was recorded.\n");
        return;
    }
    let _ = writeln!(out, "| At | Event | Duration | Status |\n|---|---|---|---|");
    for entry in entries {
        let event = match entry.kind {
            EntryKind::Step => cell(&entry.event),
            EntryKind::Fault | EntryKind::Detection | EntryKind::Recovery | EntryKind::People => {
                format!("**{}**", cell(&entry.event))
            }
        };
        let duration = entry.duration_ms.map_or_else(String::new, facts::human);
        let _ = writeln!(
            out,
            "| {} | {event} | {duration} | {} |",
            facts::offset(entry.at_ms),
            cell(&entry.status)
        );
    }
    let _ = writeln!(
        out,
        "\nOffsets are from the start of the run; TTD and TTR count from the first fault.\n"
    );
}

/// A game day's postmortem draft (docs/game-days.md): the people's timings, what
/// went well, what was wrong in the runbook and the notes as written. Only
/// when people took part (an alert, an acknowledgement, notes or marks).
fn game_day(out: &mut String, journal: &Journal) {
    let moments = facts::people(journal);
    if moments.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Game day
"
    );
    let ms = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), facts::human);
    let _ = writeln!(
        out,
        "| Detect (TTD) | Alert | Acknowledge | Recover (TTR) |\n|---|---|---|---|\n| {} | {} | {} | {} |\n",
        ms(journal.ttd_ms),
        ms(journal.tta_alert_ms),
        ms(journal.tt_ack_ms),
        ms(journal.ttr_ms)
    );
    let _ = writeln!(out, "Times count from the first fault.\n");
    if let Some(surprise) = &journal.surprise {
        let _ = writeln!(
            out,
            "Unannounced (`--surprise {}`): the first fault came {} after the steady-state check.\n",
            inline(&surprise.window),
            facts::human(surprise.delay_ms)
        );
    }
    let _ = writeln!(out, "### What went well\n");
    let well = facts::went_well(journal);
    if well.is_empty() {
        let _ = writeln!(out, "Nothing stood out; see the follow-ups.\n");
    }
    for item in well {
        let _ = writeln!(out, "- {}", inline(&item));
    }
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = writeln!(out, "### What was wrong in the runbook\n");
    let wrong: Vec<_> = journal
        .marks
        .iter()
        .filter(|m| m.mark != crate::journal::StepMark::Ok)
        .collect();
    if wrong.is_empty() {
        let _ = writeln!(out, "No step was marked wrong or skipped.\n");
    } else {
        for mark in wrong {
            let why = mark
                .note
                .as_deref()
                .map_or_else(String::new, |n| format!(": {}", crate::text::visible(n)));
            let _ = writeln!(
                out,
                "- Step {} — {}{}",
                inline(&facts::mark_name(mark)),
                mark.mark.as_str(),
                inline(&why)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "### Notes\n");
    if journal.notes.is_empty() {
        let _ = writeln!(out, "No notes were written.\n");
    } else {
        for note in &journal.notes {
            let _ = writeln!(
                out,
                "- {} {}",
                facts::offset(Some(note.at_ms)),
                inline(&crate::text::visible(&note.text))
            );
        }
        out.push('\n');
    }
}

fn faults(out: &mut String, journal: &Journal) {
    let _ = writeln!(out, "## Faults\n");
    if journal.faults.is_empty() {
        let _ = writeln!(out, "No fault was injected.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| Step | Kind | At | Hit | Reverted | Detail |\n|---|---|---|---|---|---|"
    );
    for fault in &journal.faults {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            code(&fault.step),
            cell(&fault.kind),
            facts::offset(facts::fault_start_ms(journal, fault)),
            cell(&facts::targets(&fault.targets)),
            if fault.reverted { "yes" } else { "no" },
            cell(&fault.detail)
        );
    }
    out.push('\n');
}

fn steps(out: &mut String, journal: &Journal) {
    let _ = writeln!(out, "## Drill steps\n");
    if journal.steps.is_empty() {
        let _ = writeln!(out, "No step was recorded.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| Step | Action | Start | Duration | Status | Attempts | Detail |\n|---|---|---|---|---|---|---|"
    );
    for step in &journal.steps {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            code(&step.id),
            cell(&step.action),
            facts::offset(step.started_ms),
            step.started_ms
                .map_or_else(String::new, |_| facts::human(step.duration_ms)),
            facts::step_status(step.status),
            step.attempts,
            cell(&step.detail)
        );
    }
    out.push('\n');
    for step in &journal.steps {
        if matches!(step.status, StepStatus::Failed | StepStatus::Interrupted)
            && !step.output_tail.trim().is_empty()
        {
            let _ = writeln!(
                out,
                "Output of `{}` (last lines):\n",
                step.id.replace('`', "'")
            );
            out.push_str(&fenced("text", &step.output_tail));
        }
    }
}

fn runbook(out: &mut String, journal: &Journal) {
    let Some(runbook) = &journal.runbook else {
        let _ = writeln!(out, "## Runbook\n\nNo runbook: recovery was a command.\n");
        return;
    };
    let _ = writeln!(out, "## Runbook {}\n", code(&runbook.path));
    if !runbook.by_hand.is_empty() {
        let _ = writeln!(
            out,
            "Followed by hand; each step as people marked it.\n\n| # | Step | Mark | Note |\n|---|---|---|---|"
        );
        for (n, title, mark) in facts::by_hand(journal) {
            let (word, note) = facts::mark_words(mark);
            let _ = writeln!(out, "| {n} | {} | {word} | {} |", cell(&title), cell(&note));
        }
        out.push('\n');
        return;
    }
    if runbook.steps.is_empty() {
        let _ = writeln!(out, "The runbook has no steps.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| # | Step | Status | Time | Safe to re-run |\n|---|---|---|---|---|"
    );
    for (index, step) in runbook.steps.iter().enumerate() {
        let idempotent = match step.idempotent {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not checked",
        };
        let status = facts::runbook_status(step.status);
        let status = if step.status == RunbookStepStatus::Ok {
            status.to_string()
        } else {
            format!("**{status}**")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {status} | {} | {idempotent} |",
            index + 1,
            cell(&step.title),
            facts::human(step.duration_ms)
        );
    }
    out.push('\n');
    for (index, step) in runbook.steps.iter().enumerate() {
        let failed = matches!(
            step.status,
            RunbookStepStatus::Failed | RunbookStepStatus::Deviated
        ) || step.idempotent == Some(false);
        let has_note = step
            .note
            .as_deref()
            .is_some_and(|note| !note.trim().is_empty());
        if !failed && !has_note {
            continue;
        }
        let _ = writeln!(
            out,
            "### Step {} — {}\n",
            inline(&facts::runbook_step_name(index, step)),
            facts::runbook_status(step.status)
        );
        if step.status == RunbookStepStatus::Failed {
            let _ = writeln!(out, "Failed: {}.\n", inline(&facts::failure_reason(step)));
        }
        if step.idempotent == Some(false) {
            let _ = writeln!(
                out,
                "Not safe to re-run: it failed when the runbook ran a second time, so it does not count as ok.\n"
            );
            if let Some(output) = facts::second_run_failure(step) {
                let _ = writeln!(out, "Output of the second run (last lines):\n");
                out.push_str(&fenced("text", output));
            }
        }
        if !step.command.trim().is_empty() {
            let _ = writeln!(out, "Command as written:\n");
            out.push_str(&fenced("sh", &step.command));
        }
        if let Some(deviation) = step
            .deviation
            .as_deref()
            .filter(|text| !text.trim().is_empty())
        {
            let _ = writeln!(out, "The operator ran instead:\n");
            out.push_str(&fenced("sh", deviation));
        }
        if failed && !step.output_tail.trim().is_empty() {
            let _ = writeln!(out, "Output (last lines):\n");
            out.push_str(&fenced("text", &step.output_tail));
        }
        if let Some(note) = step.note.as_deref().filter(|text| !text.trim().is_empty()) {
            let _ = writeln!(out, "Operator's note: {}\n", inline(note));
        }
    }
}

fn follow_ups(out: &mut String, journal: &Journal) {
    let _ = writeln!(out, "## Follow-ups\n");
    let items = facts::follow_ups(journal);
    if items.is_empty() {
        let _ = writeln!(
            out,
            "None: every step ran as written and every objective was met."
        );
        return;
    }
    for item in items {
        let _ = writeln!(out, "- [ ] {}", inline(&item));
    }
}

/// Escapes Markdown syntax in free text so a title like `*nix_setup` stays literal.
fn inline(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in facts::one_line(text).chars() {
        // `#` and `>` only mean something at the start of a line, where this
        // text never goes.
        if matches!(character, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '|') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Free text for a table cell: one line, Markdown escaped.
fn cell(text: &str) -> String {
    inline(text)
}

/// A code span that survives backticks in the text.
fn code(text: &str) -> String {
    let text = facts::one_line(text).replace('|', "\\|");
    if text.is_empty() {
        return String::new();
    }
    let fence = "`".repeat(longest_run(&text, '`') + 1);
    // A space keeps a leading or trailing backtick from merging with the fence.
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn or_unknown(text: &str, format: fn(&str) -> String) -> String {
    if text.trim().is_empty() {
        "not recorded".to_string()
    } else {
        format(text)
    }
}

/// A fenced block longer than any backtick run inside, so output cannot end it early.
fn fenced(language: &str, text: &str) -> String {
    let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
    format!(
        "{fence}{language}\n{}\n{fence}\n\n",
        text.trim_end_matches('\n')
    )
}

fn longest_run(text: &str, wanted: char) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for character in text.chars() {
        current = if character == wanted { current + 1 } else { 0 };
        longest = longest.max(current);
    }
    longest
}
