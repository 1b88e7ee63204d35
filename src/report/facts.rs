//! What the reports say, derived once from a journal so that Markdown, HTML
//! and JUnit cannot tell different stories about the same run.
//!
//! Everything here is total: journals come from disk, possibly from an older
//! or newer firedrill or a run that died, so absent data reads as "not
//! measured" and arithmetic saturates instead of overflowing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::format_duration;
use crate::journal::{
    Journal, ProbeSample, RunbookStepRecord, RunbookStepStatus, StepMark, StepStatus,
};
use crate::text::visible;

/// The general formula of docs/scoring.md, stated in every report.
pub(crate) const FORMULA: &str = "score = 0.5 × time score + 0.5 × runbook accuracy, rounded; 0 if not recovered. \
time score = 100 if TTR ≤ RTO, else 100 × RTO / TTR. Without a runbook the score is the time score.";

/// Formats milliseconds for people.
pub(crate) fn human(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

/// Formats an offset from the run's start: `+41.2s`.
pub(crate) fn offset(ms: Option<u64>) -> String {
    ms.map_or_else(|| "—".to_string(), |ms| format!("+{}", human(ms)))
}

/// The lower-case name of a drill step status.
pub(crate) fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Ok => "ok",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
        StepStatus::Interrupted => "interrupted",
    }
}

/// The lower-case name of a runbook step status.
pub(crate) fn runbook_status(status: RunbookStepStatus) -> &'static str {
    match status {
        RunbookStepStatus::Ok => "ok",
        RunbookStepStatus::Failed => "failed",
        RunbookStepStatus::Skipped => "skipped",
        RunbookStepStatus::Unverified => "unverified",
        RunbookStepStatus::Deviated => "deviated",
    }
}

/// When the `check: idempotent` re-run of the runbook started and ended,
/// from its steps' second runs.
pub(crate) fn rerun_span(journal: &Journal) -> Option<(u64, u64)> {
    let runs = journal.runbook.as_ref()?.steps.iter().filter_map(|step| {
        let start = step.second_run_started_ms?;
        Some((
            start,
            start.saturating_add(step.second_run_duration_ms.unwrap_or(0)),
        ))
    });
    runs.reduce(|(from, to), (start, end)| (from.min(start), to.max(end)))
}

/// When the first fault started, from the most direct record available.
pub(crate) fn first_fault_ms(journal: &Journal) -> Option<u64> {
    journal
        .first_fault_ms
        .or_else(|| {
            journal
                .faults
                .iter()
                .filter_map(|fault| fault_start_ms(journal, fault))
                .min()
        })
        .or_else(|| {
            journal
                .steps
                .iter()
                .filter(|step| step.action == "fault")
                .filter_map(|step| step.started_ms)
                .min()
        })
}

/// When a fault was injected: its own record, else the start of its step.
pub(crate) fn fault_start_ms(
    journal: &Journal,
    fault: &crate::journal::FaultRecord,
) -> Option<u64> {
    fault.started_ms.or_else(|| {
        journal
            .steps
            .iter()
            .find(|step| step.id == fault.step)
            .and_then(|step| step.started_ms)
    })
}

/// When the failure was detected, on the run's clock (TTD counts from the first fault).
pub(crate) fn detection_ms(journal: &Journal) -> Option<u64> {
    Some(first_fault_ms(journal)?.saturating_add(journal.ttd_ms?))
}

/// When the steady state came back for good, on the run's clock.
pub(crate) fn recovery_ms(journal: &Journal) -> Option<u64> {
    Some(first_fault_ms(journal)?.saturating_add(journal.ttr_ms?))
}

/// When the RTO ran out, on the run's clock.
pub(crate) fn rto_deadline_ms(journal: &Journal) -> Option<u64> {
    Some(first_fault_ms(journal)?.saturating_add(journal.rto_ms))
}

/// The first steady-state or guard probe that failed after the first fault.
pub(crate) fn first_failed_probe(journal: &Journal) -> Option<&ProbeSample> {
    let since = first_fault_ms(journal).unwrap_or(0);
    journal
        .health
        .iter()
        .filter(|sample| !sample.ok && sample.at_ms >= since)
        .min_by_key(|sample| sample.at_ms)
}

/// The end of the run's clock: the latest thing the journal knows about.
pub(crate) fn end_ms(journal: &Journal) -> u64 {
    let step_ends = journal.steps.iter().filter_map(|step| {
        step.started_ms
            .map(|start| start.saturating_add(step.duration_ms))
    });
    let marks = [
        recovery_ms(journal),
        detection_ms(journal),
        first_fault_ms(journal),
    ];
    step_ends
        .chain(marks.into_iter().flatten())
        .chain(journal.health.iter().map(|sample| sample.at_ms))
        .chain(journal.faults.iter().filter_map(|fault| fault.started_ms))
        .chain(std::iter::once(journal.duration_ms))
        .max()
        .unwrap_or(0)
}

/// `(ok, executable)` runbook steps as docs/scoring.md counts them for
/// accuracy; `None` without a runbook.
///
/// A prose-only heading is manual and does not count; a step with a command
/// that the operator did by hand (`unverified` with a command) does count,
/// because it did not run as written. The scorer counts executable steps from
/// the runbook itself, so when the journal holds fewer step records than that
/// (steps after a failure that were never recorded), the count is taken from
/// the recorded accuracy so the two numbers never contradict each other.
pub(crate) fn accuracy_counts(journal: &Journal) -> Option<(usize, usize)> {
    let runbook = journal.runbook.as_ref()?;
    let recorded = runbook
        .steps
        .iter()
        .filter(|step| is_executable(step))
        .count();
    let ok = runbook
        .steps
        .iter()
        .filter(|step| crate::score::counts_as_ok(step))
        .count();
    let executable = match journal.runbook_accuracy {
        Some(value) if value.is_finite() && value > 0.0 && ok > 0 => {
            let agrees = |executable: usize| {
                executable > 0 && (100.0 * ok as f64 / executable as f64 - value).abs() < 0.1
            };
            if agrees(recorded) {
                recorded
            } else {
                ((100.0 * ok as f64 / value).round() as usize).max(recorded)
            }
        }
        _ => recorded,
    };
    Some((ok, executable))
}

fn is_executable(step: &RunbookStepRecord) -> bool {
    !step.command.trim().is_empty() || step.status != RunbookStepStatus::Unverified
}

/// The runbook accuracy as recorded, else counted from the steps as the
/// scorer counts it (0 when nothing was executable).
pub(crate) fn accuracy(journal: &Journal) -> Option<f64> {
    let (ok, executable) = accuracy_counts(journal)?;
    match journal.runbook_accuracy {
        Some(value) if value.is_finite() => Some(value),
        _ if executable == 0 => Some(0.0),
        _ => Some(100.0 * ok as f64 / executable as f64),
    }
}

/// Formats a percentage with at most one decimal: `83.3`, `100`.
pub(crate) fn percent(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// The score's parts, each with its numbers filled in.
pub(crate) struct ScoreExplanation {
    /// How the time score came about.
    pub time: String,
    /// How the runbook accuracy came about.
    pub accuracy: String,
    /// The formula with this run's numbers.
    pub formula: String,
    /// The scorer's own statement of it (`score::formula`), raw milliseconds included.
    pub scorer: String,
}

/// Explains the score with this run's numbers: each part and the formula.
pub(crate) fn score_explanation(journal: &Journal) -> ScoreExplanation {
    let rto = human(journal.rto_ms);
    let time = match journal.ttr_ms {
        _ if !journal.recovered => format!("not recovered → time score {}", journal.time_score),
        Some(ttr) if ttr <= journal.rto_ms => {
            format!(
                "TTR {} ≤ RTO {rto} → time score {}",
                human(ttr),
                journal.time_score
            )
        }
        Some(ttr) => {
            let raw = 100.0 * journal.rto_ms as f64 / ttr as f64;
            format!(
                "TTR {} > RTO {rto} → time score = 100 × {rto} / {} = {} → {}",
                human(ttr),
                human(ttr),
                percent(raw),
                journal.time_score
            )
        }
        None => format!("TTR not measured → time score {}", journal.time_score),
    };
    let by_hand = journal
        .runbook
        .as_ref()
        .map_or(0, |runbook| runbook.by_hand.len());
    let accuracy_text = match (accuracy_counts(journal), accuracy(journal)) {
        (_, Some(value)) if by_hand > 0 => {
            let ok = journal
                .marks
                .iter()
                .filter(|m| m.mark == StepMark::Ok && m.step <= by_hand)
                .count();
            format!(
                "{}% ({ok} of {by_hand} runbook steps marked ok by the people who followed it)",
                percent(value)
            )
        }
        (Some((ok, executable)), Some(value)) => {
            format!(
                "{}% ({ok} of {executable} executable runbook steps ran as written and met their expectations)",
                percent(value)
            )
        }
        _ => "no runbook: recovery was a command".to_string(),
    };
    let formula = if !journal.recovered {
        format!("not recovered → score {}", journal.score)
    } else {
        match accuracy(journal) {
            Some(value) => {
                let raw = 0.5 * f64::from(journal.time_score) + 0.5 * value;
                format!(
                    "score = 0.5 × {} + 0.5 × {} = {} → rounded {}",
                    journal.time_score,
                    percent(value),
                    percent(raw),
                    journal.score
                )
            }
            None => format!(
                "no runbook, so score = time score = {} → {}",
                journal.time_score, journal.score
            ),
        }
    };
    ScoreExplanation {
        time,
        accuracy: accuracy_text,
        formula,
        scorer: crate::score::formula(journal),
    }
}

/// One objective against what was measured.
pub(crate) struct Objective {
    /// What is measured.
    pub name: &'static str,
    /// The objective.
    pub target: String,
    /// What the run measured.
    pub measured: String,
    /// Whether it was met; `None` when there is nothing to judge.
    pub met: Option<bool>,
}

/// The objectives of the drill against the run's measurements.
pub(crate) fn objectives(journal: &Journal) -> Vec<Objective> {
    let recovery = match (journal.recovered, journal.ttr_ms) {
        (true, Some(ttr)) => (format!("TTR {}", human(ttr)), Some(ttr <= journal.rto_ms)),
        (true, None) => ("recovered, TTR not measured".to_string(), None),
        (false, _) => ("not recovered".to_string(), Some(false)),
    };
    let data_loss = match (journal.data_loss_ms, journal.rpo_ms) {
        (Some(loss), Some(rpo)) => (human(loss), Some(loss <= rpo)),
        (Some(loss), None) => (human(loss), None),
        (None, Some(_)) => (
            format!(
                "not measured: {}",
                journal
                    .data_loss_detail
                    .as_deref()
                    .map_or("no record of `data.read`".to_string(), one_line)
            ),
            Some(false),
        ),
        (None, None) => match journal.data_loss_detail.as_deref() {
            Some(detail) => (format!("not measured: {}", one_line(detail)), None),
            None => ("not measured (no `data:` section)".to_string(), None),
        },
    };
    let detection = journal.ttd_ms.map_or_else(
        || "not measured (no steady-state probe failed)".to_string(),
        |ttd| format!("TTD {}", human(ttd)),
    );
    let mut objectives = vec![
        Objective {
            name: "Recovery time",
            target: format!("RTO {}", human(journal.rto_ms)),
            measured: recovery.0,
            met: recovery.1,
        },
        Objective {
            name: "Data loss",
            target: journal.rpo_ms.map_or_else(
                || "no RPO set".to_string(),
                |rpo| format!("RPO {}", human(rpo)),
            ),
            measured: data_loss.0,
            met: data_loss.1,
        },
        Objective {
            name: "Time to detect",
            target: "no objective".to_string(),
            measured: detection,
            met: None,
        },
        Objective {
            name: "Score",
            target: format!("≥ {}", journal.min_score),
            measured: journal.score.to_string(),
            met: Some(journal.score >= journal.min_score),
        },
    ];
    if let Some(observed) = journal.outage_observed {
        objectives.push(Objective {
            name: "Outage",
            target: if journal.expect_outage {
                "the faults break the steady state".to_string()
            } else {
                "none required (`expect_outage: false`)".to_string()
            },
            measured: if observed {
                "observed".to_string()
            } else {
                "none observed: no steady-state probe failed after the first fault".to_string()
            },
            met: journal.expect_outage.then_some(observed),
        });
    }
    objectives
}

/// What an entry of the timeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Step,
    Fault,
    Detection,
    Recovery,
    /// What people did: the alert, acknowledgement, notes, runbook marks.
    People,
}

/// One line of the timeline.
pub(crate) struct TimelineEntry {
    /// Offset from the run's start; `None` for steps that never started.
    pub at_ms: Option<u64>,
    /// What it is.
    pub kind: EntryKind,
    /// What happened, plain text.
    pub event: String,
    /// How long it took, for steps.
    pub duration_ms: Option<u64>,
    /// How it ended.
    pub status: String,
}

/// The run in time order: steps, faults, the first failed probe, the recovery.
pub(crate) fn timeline(journal: &Journal) -> Vec<TimelineEntry> {
    let mut entries: Vec<TimelineEntry> = Vec::new();
    for step in &journal.steps {
        let action = if step.action.is_empty() {
            String::new()
        } else {
            format!(" ({})", step.action)
        };
        entries.push(TimelineEntry {
            at_ms: step.started_ms,
            kind: EntryKind::Step,
            event: format!("step {}{action}", step.id),
            duration_ms: step.started_ms.map(|_| step.duration_ms),
            status: step_status(step.status).to_string(),
        });
    }
    for fault in &journal.faults {
        entries.push(TimelineEntry {
            at_ms: fault_start_ms(journal, fault),
            kind: EntryKind::Fault,
            event: format!(
                "fault {}: {} → {}",
                fault.step,
                fault.kind,
                targets(&fault.targets)
            ),
            duration_ms: None,
            status: if fault.reverted {
                "injected, reverted"
            } else {
                "injected"
            }
            .to_string(),
        });
    }
    if let Some(sample) = first_failed_probe(journal) {
        let ttd = journal
            .ttd_ms
            .map_or_else(String::new, |ttd| format!(" (TTD {})", human(ttd)));
        entries.push(TimelineEntry {
            at_ms: Some(sample.at_ms),
            kind: EntryKind::Detection,
            event: format!("first failed probe: {}{ttd}", sample.probe),
            duration_ms: None,
            status: "failed".to_string(),
        });
    }
    if let (Some(at), Some(ttr)) = (recovery_ms(journal), journal.ttr_ms) {
        let status = if journal.recovered {
            "recovered"
        } else {
            "not holding at the end"
        };
        entries.push(TimelineEntry {
            at_ms: Some(at),
            kind: EntryKind::Recovery,
            event: format!("steady state restored (TTR {})", human(ttr)),
            duration_ms: None,
            status: status.to_string(),
        });
    }
    for moment in people(journal) {
        entries.push(TimelineEntry {
            at_ms: Some(moment.at_ms),
            kind: EntryKind::People,
            event: moment.what,
            duration_ms: None,
            status: moment.status,
        });
    }
    // Steps that never started go last; otherwise time order. At the same
    // millisecond the fault comes first: the steps that start with it react to it.
    entries.sort_by_key(|entry| {
        let rank = match entry.kind {
            EntryKind::Fault => 0,
            EntryKind::Detection => 1,
            EntryKind::People => 2,
            EntryKind::Step => 3,
            EntryKind::Recovery => 4,
        };
        (entry.at_ms.is_none(), entry.at_ms, rank)
    });
    entries
}

/// A moment of a game day (docs/game-days.md): the alert, the acknowledgement, a
/// note, a runbook step marked by people.
pub(crate) struct Moment {
    /// Offset from the run's start.
    pub at_ms: u64,
    /// What happened, plain text (people's text with control characters
    /// shown escaped).
    pub what: String,
    /// `alerted`, `acknowledged`, `note`, or the mark.
    pub status: String,
    /// A short label for a mark on a time axis.
    pub label: String,
}

/// A runbook step marked by people, by number and heading.
pub(crate) fn mark_name(mark: &crate::journal::MarkRecord) -> String {
    match &mark.title {
        Some(title) => format!("{} “{}”", mark.step, visible(title)),
        None => mark.step.to_string(),
    }
}

/// What people did, in time order.
pub(crate) fn people(journal: &Journal) -> Vec<Moment> {
    let mut moments = Vec::new();
    let fault = journal.first_fault_ms;
    if let (Some(fault), Some(tta)) = (fault, journal.tta_alert_ms) {
        moments.push(Moment {
            at_ms: fault + tta,
            what: format!(
                "alert fired: a `detect` probe passed (time to alert {})",
                human(tta)
            ),
            status: "alerted".into(),
            label: format!("alert ({})", human(tta)),
        });
    }
    if let (Some(fault), Some(ack)) = (fault, journal.tt_ack_ms) {
        moments.push(Moment {
            at_ms: fault + ack,
            what: format!("acknowledged (time to acknowledge {})", human(ack)),
            status: "acknowledged".into(),
            label: format!("ack ({})", human(ack)),
        });
    }
    for note in &journal.notes {
        moments.push(Moment {
            at_ms: note.at_ms,
            what: format!("note: {}", visible(&note.text)),
            status: "note".into(),
            label: format!("✎ {}", visible(&note.text)),
        });
    }
    for mark in &journal.marks {
        let why = mark
            .note
            .as_deref()
            .map_or_else(String::new, |note| format!(": {}", visible(note)));
        moments.push(Moment {
            at_ms: mark.at_ms,
            what: format!(
                "runbook step {} marked {}{why}",
                mark_name(mark),
                mark.mark.as_str()
            ),
            status: mark.mark.as_str().into(),
            label: format!("step {} {}", mark.step, mark.mark.as_str()),
        });
    }
    moments.sort_by_key(|moment| moment.at_ms);
    moments
}

/// What went well in a game day, for the postmortem draft.
pub(crate) fn went_well(journal: &Journal) -> Vec<String> {
    let mut items = Vec::new();
    if let Some(tta) = journal.tta_alert_ms {
        items.push(format!(
            "The alert fired {} after the first fault.",
            human(tta)
        ));
    }
    if let Some(ack) = journal.tt_ack_ms {
        items.push(format!(
            "Someone acknowledged {} after the first fault.",
            human(ack)
        ));
    }
    if let (true, Some(ttr)) = (journal.recovered, journal.ttr_ms) {
        let within = if ttr <= journal.rto_ms {
            format!(", within the RTO of {}", human(journal.rto_ms))
        } else {
            String::new()
        };
        items.push(format!("The system recovered in {}{within}.", human(ttr)));
    }
    let ok: Vec<String> = journal
        .marks
        .iter()
        .filter(|m| m.mark == StepMark::Ok)
        .map(mark_name)
        .collect();
    if !ok.is_empty() {
        items.push(format!(
            "Runbook steps that worked as written: {}.",
            ok.join(", ")
        ));
    }
    items
}

/// Each step of a runbook followed by hand with its mark (the last one),
/// `None` for a step nobody marked.
pub(crate) fn by_hand(
    journal: &Journal,
) -> Vec<(usize, String, Option<&crate::journal::MarkRecord>)> {
    let Some(runbook) = &journal.runbook else {
        return Vec::new();
    };
    runbook
        .by_hand
        .iter()
        .enumerate()
        .map(|(index, title)| {
            let mark = journal.marks.iter().find(|m| m.step == index + 1);
            (index + 1, visible(title), mark)
        })
        .collect()
}

/// A by-hand step's mark as words for a report: the mark ("not marked" when
/// nobody marked the step) and its note.
pub(crate) fn mark_words(mark: Option<&crate::journal::MarkRecord>) -> (&'static str, String) {
    match mark {
        Some(mark) => (
            mark.mark.as_str(),
            mark.note.as_deref().map(visible).unwrap_or_default(),
        ),
        None => ("not marked", String::new()),
    }
}

/// What a fault hit, as a list.
pub(crate) fn targets(targets: &[String]) -> String {
    if targets.is_empty() {
        "nothing recorded".to_string()
    } else {
        targets.join(", ")
    }
}

/// The things a team should fix after this run, most important first.
pub(crate) fn follow_ups(journal: &Journal) -> Vec<String> {
    let mut items = Vec::new();
    if !journal.recovered && journal.verdict != crate::journal::Verdict::Error {
        let why = journal
            .reason
            .strip_prefix("not recovered: ")
            .unwrap_or("the steady state did not hold after the recovery");
        items.push(format!("The system did not recover: {}.", one_line(why)));
    } else if journal.expect_outage && journal.outage_observed == Some(false) {
        items.push(
            "No outage was observed: the faults broke nothing the steady-state probes see. \
             Make the faults bite, probe more often, or set `objectives.expect_outage: false` \
             for a resilience check."
                .to_string(),
        );
    }
    if let (true, Some(ttr)) = (journal.recovered, journal.ttr_ms)
        && ttr > journal.rto_ms
    {
        items.push(format!(
            "Recovery took {}, over the RTO of {}: make the recovery faster or revisit the objective.",
            human(ttr),
            human(journal.rto_ms)
        ));
    }
    if let (Some(loss), Some(rpo)) = (journal.data_loss_ms, journal.rpo_ms)
        && loss > rpo
    {
        items.push(format!(
            "{} of data were lost, over the RPO of {}: back up more often or revisit the objective.",
            human(loss),
            human(rpo)
        ));
    }
    // A recover step that failed because its runbook did is followed up below,
    // with the runbook step that broke.
    let runbook_failed = journal.runbook.as_ref().is_some_and(|runbook| {
        runbook
            .steps
            .iter()
            .any(|step| step.status == RunbookStepStatus::Failed)
    });
    for step in &journal.steps {
        if step.action == "recover" && step.status == StepStatus::Failed && runbook_failed {
            continue;
        }
        let why = one_line(&step.detail);
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        };
        match step.status {
            StepStatus::Failed => items.push(format!("Drill step “{}” failed{why}.", step.id)),
            StepStatus::Interrupted => {
                items.push(format!("Drill step “{}” was interrupted{why}.", step.id))
            }
            StepStatus::Ok | StepStatus::Skipped => {}
        }
    }
    if let Some(runbook) = &journal.runbook {
        for (index, step) in runbook.steps.iter().enumerate() {
            let name = runbook_step_name(index, step);
            match step.status {
                RunbookStepStatus::Failed => {
                    items.push(format!(
                        "Runbook step {name} failed ({}): fix it so it works as written.",
                        failure_reason(step)
                    ));
                }
                RunbookStepStatus::Unverified if step.command.trim().is_empty() => items.push(
                    format!("Runbook step {name} is manual: add a command firedrill can run and check."),
                ),
                RunbookStepStatus::Unverified => items.push(format!(
                    "Runbook step {name} was done by hand: verify that its command works as written."
                )),
                RunbookStepStatus::Deviated => {
                    let instead = step
                        .deviation
                        .as_deref()
                        .map(one_line)
                        .filter(|text| !text.is_empty())
                        .map_or_else(String::new, |text| format!(" (ran “{text}”)"));
                    items.push(format!(
                        "Runbook step {name} deviated: the operator changed the command{instead}; update the runbook."
                    ));
                }
                RunbookStepStatus::Ok | RunbookStepStatus::Skipped => {}
            }
            if step.idempotent == Some(false) {
                items.push(format!(
                    "Runbook step {name} is not safe to re-run: it failed when the runbook ran a second time."
                ));
            }
        }
    }
    let unmarked: Vec<String> = by_hand(journal)
        .into_iter()
        .filter(|(_, _, mark)| mark.is_none())
        .map(|(n, title, _)| format!("{n} “{title}”"))
        .collect();
    if !unmarked.is_empty() {
        items.push(format!(
            "Runbook steps nobody marked (not counted as working): {}; mark them during the next game day, or check them now.",
            unmarked.join(", ")
        ));
    }
    for mark in &journal.marks {
        let why = mark
            .note
            .as_deref()
            .map_or_else(String::new, |note| format!(" ({})", visible(note)));
        match mark.mark {
            StepMark::Wrong => items.push(format!(
                "Runbook step {} was wrong when people followed it{why}: fix the runbook.",
                mark_name(mark)
            )),
            StepMark::Skipped => items.push(format!(
                "Runbook step {} was skipped when people followed it{why}: drop it or say when it applies.",
                mark_name(mark)
            )),
            StepMark::Ok => {}
        }
    }
    items
}

/// The output of a runbook step's failed `check: idempotent` second run.
pub(crate) fn second_run_failure(step: &RunbookStepRecord) -> Option<&str> {
    if step.idempotent != Some(false) {
        return None;
    }
    step.second_run_output
        .as_deref()
        .filter(|output| !output.trim().is_empty())
}

/// `2 “Restart the members” (line 23)`.
pub(crate) fn runbook_step_name(index: usize, step: &RunbookStepRecord) -> String {
    let line = if step.line > 0 {
        format!(" (line {})", step.line)
    } else {
        String::new()
    };
    format!("{} “{}”{line}", index + 1, one_line(&step.title))
}

/// Why a runbook step failed, in a few words.
pub(crate) fn failure_reason(step: &RunbookStepRecord) -> String {
    let detail = one_line(&step.detail);
    match (detail.is_empty(), step.exit_code) {
        (false, _) => detail,
        (true, Some(code)) => format!("exit code {code}"),
        (true, None) => "no detail recorded".to_string(),
    }
}

/// Collapses whitespace so multi-line text fits a list item or table cell.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The steady state at a stretch of the run's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Every probe passed at its latest poll.
    Healthy,
    /// Some probe failed at its latest poll.
    Unhealthy,
    /// Not every probe has been polled yet, or nothing was polled.
    Unknown,
}

/// A stretch of the health band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthSegment {
    pub from_ms: u64,
    pub to_ms: u64,
    pub health: Health,
}

/// The health band: each probe's latest result holds until it is polled
/// again; the band is red while any probe's latest result failed, green while
/// all passed, grey before every probe has been polled once.
///
/// The last state is carried to `end_ms` (the end of the run), because the
/// monitor polls until the run ends.
pub(crate) fn health_segments(journal: &Journal, end_ms: u64) -> Vec<HealthSegment> {
    let mut samples: Vec<&ProbeSample> = journal.health.iter().collect();
    samples.sort_by_key(|sample| sample.at_ms);
    let probe_count = samples
        .iter()
        .map(|sample| sample.probe.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut latest: BTreeMap<&str, bool> = BTreeMap::new();
    let mut segments: Vec<HealthSegment> = Vec::new();
    let mut index = 0;
    while index < samples.len() {
        let at = samples[index].at_ms;
        while index < samples.len() && samples[index].at_ms == at {
            latest.insert(samples[index].probe.as_str(), samples[index].ok);
            index += 1;
        }
        let health = if latest.values().any(|ok| !ok) {
            Health::Unhealthy
        } else if latest.len() == probe_count {
            Health::Healthy
        } else {
            Health::Unknown
        };
        let until = samples.get(index).map_or(end_ms.max(at), |next| next.at_ms);
        match segments.last_mut() {
            Some(last) if last.health == health => last.to_ms = until,
            _ => segments.push(HealthSegment {
                from_ms: at,
                to_ms: until,
                health,
            }),
        }
    }
    segments
}
