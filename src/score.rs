//! Scoring (docs/scoring.md): pure functions from a run's events to its
//! journal.
//!
//! Nothing here looks at the clock or the system: the same events always give
//! the same verdict, so the score can be tested on recorded runs and a
//! report regenerated from `events.jsonl`.

use std::collections::BTreeMap;

use crate::event::{Event, EventKind, ProbeRole};
use crate::journal::{
    FaultRecord, Journal, MarkRecord, Note, ProbeSample, RunbookRecord, RunbookStepRecord,
    RunbookStepStatus, StepMark, StepRecord, StepStatus, Verdict,
};

/// How the engine ended a run when the score alone does not decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Ran to the end: the score decides passed or failed.
    Completed,
    /// A guard or the halt file stopped it.
    Aborted(String),
    /// It could not be carried out.
    Error(String),
    /// A terminating signal arrived: its name (`SIGINT` for Ctrl-C).
    Interrupted(String),
}

/// Time score: 100 within the RTO, else `100 × rto / ttr`.
pub fn time_score(ttr_ms: Option<u64>, rto_ms: u64) -> u32 {
    match ttr_ms {
        None => 0,
        Some(ttr) if ttr <= rto_ms => 100,
        Some(ttr) => ((100.0 * rto_ms as f64 / ttr as f64).round() as u32).min(100),
    }
}

/// Overall score: half time, half runbook accuracy; the time score alone
/// without a runbook; 0 if not recovered.
pub fn overall_score(recovered: bool, time_score: u32, accuracy: Option<f64>) -> u32 {
    if !recovered {
        return 0;
    }
    match accuracy {
        Some(accuracy) => (0.5 * time_score as f64 + 0.5 * accuracy).round() as u32,
        None => time_score,
    }
}

/// What the events say about the recover steps, for [`recovery_verdict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoverStep {
    /// It ran and succeeded.
    Ok,
    /// It ran and failed: why.
    Failed(String),
    /// It never ran (a step it needs failed): why.
    Skipped(String),
}

/// The recovery checks recorded after the graph (docs/scoring.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks {
    /// The check after the recovery's first pass: held, and why not.
    pub first_pass: Option<(bool, String)>,
    /// The check after the `check: idempotent` re-run, if there was one.
    pub after_rerun: Option<(bool, String)>,
}

/// Why a run is not recovered, or `None` if it is (docs/scoring.md: every
/// recover step ran and succeeded, and the steady state holds after the
/// recovery's first pass and again after any idempotency re-run). Without
/// steady-state probes the recover steps alone decide.
pub fn not_recovered_because(
    fault_injected: bool,
    recover_steps: &[(String, RecoverStep)],
    has_steady_state: bool,
    checks: &Checks,
) -> Option<String> {
    if !fault_injected {
        return Some("no fault was injected".to_owned());
    }
    if recover_steps.is_empty() {
        return Some("no recover step ran".to_owned());
    }
    for (id, step) in recover_steps {
        match step {
            RecoverStep::Ok => {}
            RecoverStep::Skipped(why) => {
                return Some(format!(
                    "recover step `{id}` was skipped ({why}): the recovery was never tested"
                ));
            }
            RecoverStep::Failed(why) => {
                return Some(format!("recover step `{id}` failed: {why}"));
            }
        }
    }
    if !has_steady_state {
        return None;
    }
    match (&checks.first_pass, &checks.after_rerun) {
        (None, _) => Some("the steady state was not checked after the recovery".to_owned()),
        (Some((false, why)), _) => Some(format!(
            "the steady state did not hold after the recovery ({why})"
        )),
        (Some((true, _)), Some((false, why))) => Some(format!(
            "the steady state did not hold again after the idempotency re-run ({why})"
        )),
        (Some((true, _)), _) => None,
    }
}

/// The first step that failed before the first fault started (or at all,
/// when no fault was injected): the drill could not be set up, so the run
/// is an `error`, not a failed recovery (docs/scoring.md, verdict). A fault
/// step that failed or timed out is named as such: its fault was never
/// confirmed injected. `steps` are (finished at, id, action, status, detail).
pub fn setup_failure(
    steps: &[(u64, String, String, StepStatus, String)],
    first_fault_ms: Option<u64>,
) -> Option<String> {
    steps
        .iter()
        .find(|(finished_ms, _, _, status, _)| {
            *status == StepStatus::Failed && first_fault_ms.is_none_or(|fault| *finished_ms < fault)
        })
        .map(|(_, id, action, _, detail)| {
            let detail = crate::text::first_line(detail);
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            };
            if action == "fault" {
                let what = if detail.starts_with(" (timed out") {
                    "timed out"
                } else {
                    "failed"
                };
                format!(
                    "fault step `{id}` {what}{detail}: its fault was never confirmed injected, so \
                     the drill could not be set up"
                )
            } else {
                format!(
                    "step `{id}` failed before the first fault{detail}: the drill could not be set up"
                )
            }
        })
}

/// Why the recovery was not exercised although every recover step succeeded,
/// or `None` if it was (docs/scoring.md, "Recovered"): no outage was
/// observed (and one was expected), or the steady state came back, and held,
/// before the first recover step started (unless no outage was required:
/// then healing by itself is what the drill checks). `streak_start_ms` is when the final
/// streak of healthy steady-state results began.
pub fn not_exercised_because(
    outage_observed: Option<bool>,
    expect_outage: bool,
    first_fault_ms: u64,
    streak_start_ms: Option<u64>,
    first_recover_start_ms: Option<u64>,
) -> Option<String> {
    match outage_observed {
        Some(false) if expect_outage => Some(
            "no outage observed: no steady-state probe failed after the first fault, so the \
             recovery was not exercised (set `objectives.expect_outage: false` if holding \
             through the faults is the point)"
                .to_owned(),
        ),
        // A resilience check (`expect_outage: false`): healing by itself is
        // the point.
        Some(true) if expect_outage => match (streak_start_ms, first_recover_start_ms) {
            (Some(healed), Some(recover)) if healed < recover => Some(format!(
                "the system recovered by itself before the recovery started (the steady state \
                 held again {} s after the first fault, the first recover step started at {} s): \
                 the runbook was not exercised",
                seconds(healed.saturating_sub(first_fault_ms)),
                seconds(recover.saturating_sub(first_fault_ms)),
            )),
            _ => None,
        },
        _ => None,
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

/// The reason line of a run a signal ended, naming the signal.
pub fn interrupted_by(signal: &str) -> String {
    if signal == "SIGINT" {
        "interrupted by SIGINT (Ctrl-C)".to_owned()
    } else {
        format!("interrupted by {signal}")
    }
}

/// Whether an outage was observed: a steady-state probe failed at or after
/// the first fault (docs/scoring.md, "Outage observed").
pub fn outage_observed(health: &[ProbeSample], first_fault_ms: u64) -> bool {
    health
        .iter()
        .any(|sample| sample.at_ms >= first_fault_ms && !sample.ok)
}

/// The runbook steps that failed their `check: idempotent` second run, as
/// the reason line names them.
pub fn not_idempotent(runbook: Option<&RunbookRecord>) -> Vec<String> {
    runbook
        .map(|runbook| {
            runbook
                .steps
                .iter()
                .enumerate()
                .filter(|(_, step)| step.idempotent == Some(false))
                .map(|(index, step)| format!("{} “{}” (line {})", index + 1, step.title, step.line))
                .collect()
        })
        .unwrap_or_default()
}

/// Runbook accuracy: `100 × ok / executable`, one decimal. A step is ok if
/// it ran as written, met its expectations, and (with `check: idempotent`)
/// also succeeded on its second run.
pub fn runbook_accuracy(steps: &[RunbookStepRecord], executable: usize) -> f64 {
    let ok = steps.iter().filter(|s| counts_as_ok(s)).count();
    if executable == 0 {
        0.0
    } else {
        round1(100.0 * ok as f64 / executable as f64)
    }
}

/// Whether a runbook step counts as ok for the accuracy.
pub fn counts_as_ok(step: &RunbookStepRecord) -> bool {
    step.status == RunbookStepStatus::Ok && step.idempotent != Some(false)
}

/// What people did in a game day (docs/game-days.md), gathered from their events.
#[derive(Default)]
struct People {
    /// Headings of the runbook followed by hand.
    titles: Vec<String>,
    /// When a `detect` probe passed.
    alerts: Vec<u64>,
    /// When someone acknowledged.
    acks: Vec<u64>,
    /// Whether a runbook is followed by hand.
    manual: bool,
    notes: Vec<Note>,
    marks: Vec<MarkRecord>,
}

impl People {
    fn record(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Probe {
                role: ProbeRole::Detect,
                ok: true,
                ..
            } => self.alerts.push(event.at_ms),
            EventKind::Acknowledged {} => self.acks.push(event.at_ms),
            EventKind::Note { text } => self.notes.push(Note {
                at_ms: event.at_ms,
                time: event.time.clone(),
                text: text.clone(),
            }),
            EventKind::StepMarked { step, mark, note } => {
                // The last mark of a step counts.
                self.marks.retain(|m| m.step != *step);
                self.marks.push(MarkRecord {
                    step: *step,
                    title: None,
                    mark: *mark,
                    note: note.clone(),
                    at_ms: event.at_ms,
                });
            }
            _ => {}
        }
    }

    /// Notes, marks, time to alert and to acknowledge; for a runbook
    /// followed by hand, its accuracy from the marks: `100 × steps marked
    /// ok / steps in the runbook` (a step nobody marked ok is not counted
    /// as done), and `complete` only when every step was marked ok.
    fn fill(self, journal: &mut Journal) {
        let since_fault = |times: &[u64]| {
            let fault = journal.first_fault_ms?;
            times.iter().find(|t| **t >= fault).map(|t| t - fault)
        };
        journal.tta_alert_ms = since_fault(&self.alerts);
        journal.tt_ack_ms = since_fault(&self.acks);
        journal.notes = self.notes;
        let mut marks = self.marks;
        marks.sort_by_key(|m| m.step);
        for mark in &mut marks {
            mark.title = self.titles.get(mark.step.wrapping_sub(1)).cloned();
        }
        if self.manual {
            let total = self.titles.len();
            let ok = marks
                .iter()
                .filter(|m| m.mark == StepMark::Ok && m.step <= total)
                .count();
            journal.runbook_accuracy =
                (total > 0).then(|| round1(100.0 * ok as f64 / total as f64));
            journal.complete = journal.recovered && ok == total;
        }
        journal.marks = marks;
    }
}

/// Builds the journal from the events of a run.
pub fn journal(events: &[Event], ending: &Ending) -> Journal {
    let mut journal = Journal {
        drill: String::new(),
        run_id: String::new(),
        verdict: Verdict::Error,
        score: 0,
        time_score: 0,
        runbook_accuracy: None,
        recovered: false,
        complete: false,
        outage_observed: None,
        expect_outage: true,
        seed: 0,
        ttd_ms: None,
        ttr_ms: None,
        rto_ms: 0,
        data_loss_ms: None,
        rpo_ms: None,
        data_loss_detail: None,
        min_score: 70,
        reason: String::new(),
        formula: String::new(),
        scenario: String::new(),
        target: String::new(),
        started_at: String::new(),
        duration_ms: events.last().map_or(0, |e| e.at_ms),
        first_fault_ms: None,
        steps: Vec::new(),
        faults: Vec::new(),
        runbook: None,
        health: Vec::new(),
        tta_alert_ms: None,
        tt_ack_ms: None,
        notes: Vec::new(),
        marks: Vec::new(),
        surprise: None,
        workdir_left: Vec::new(),
    };
    let mut steady: Vec<String> = Vec::new();
    let mut has_data = false;
    let mut expect_outage = true;
    let mut step_starts: BTreeMap<String, u64> = BTreeMap::new();
    let mut checks = Checks::default();
    // When the check after the recovery's first pass ended: TTR's horizon.
    let mut first_pass_checked_ms: Option<u64> = None;
    let mut runbook_executable = 0usize;
    let mut runbook_steps: Vec<RunbookStepRecord> = Vec::new();
    // Where each (recover step, runbook step index) is in `runbook_steps`.
    let mut runbook_position: BTreeMap<(String, usize), usize> = BTreeMap::new();
    let mut last_recover_end: Option<u64> = None;
    let mut recover_steps: Vec<(String, RecoverStep)> = Vec::new();
    let mut finished: Vec<(u64, String, String, StepStatus, String)> = Vec::new();
    let mut data_read_failed = false;
    let mut people = People::default();

    for event in events {
        match &event.kind {
            EventKind::RunStarted {
                drill,
                run_id,
                seed,
                scenario,
                target,
                rto_ms,
                rpo_ms,
                min_score,
                steady_state,
                has_data: data,
                expect_outage: expected,
                ..
            } => {
                journal.drill = drill.clone();
                journal.run_id = run_id.clone();
                journal.seed = *seed;
                journal.scenario = scenario.clone();
                journal.target = target.clone();
                journal.rto_ms = *rto_ms;
                journal.rpo_ms = *rpo_ms;
                journal.min_score = *min_score;
                journal.started_at = event.time.clone();
                steady = steady_state.clone();
                has_data = *data;
                expect_outage = *expected;
            }
            EventKind::StepStarted { step, .. } => {
                step_starts.entry(step.clone()).or_insert(event.at_ms);
            }
            EventKind::StepFinished {
                step,
                action,
                status,
                duration_ms,
                attempts,
                exit_code,
                detail,
                output_tail,
            } => {
                journal.steps.push(StepRecord {
                    id: step.clone(),
                    action: action.clone(),
                    status: *status,
                    started_ms: step_starts.get(step).copied(),
                    duration_ms: *duration_ms,
                    attempts: *attempts,
                    exit_code: *exit_code,
                    detail: detail.clone(),
                    output_tail: output_tail.clone(),
                });
                finished.push((
                    event.at_ms,
                    step.clone(),
                    action.clone(),
                    *status,
                    detail.clone(),
                ));
                if action == "recover" {
                    let outcome = match status {
                        StepStatus::Ok => {
                            last_recover_end = Some(
                                last_recover_end.map_or(event.at_ms, |t: u64| t.max(event.at_ms)),
                            );
                            RecoverStep::Ok
                        }
                        StepStatus::Skipped => RecoverStep::Skipped(detail.clone()),
                        StepStatus::Failed | StepStatus::Interrupted => {
                            RecoverStep::Failed(crate::text::first_line(detail).to_owned())
                        }
                    };
                    // A resumed run may finish a step again: the last word counts.
                    recover_steps.retain(|(id, _)| id != step);
                    recover_steps.push((step.clone(), outcome));
                }
            }
            EventKind::FaultInjected {
                step,
                kind,
                targets,
                detail,
                ..
            } => {
                journal
                    .first_fault_ms
                    .get_or_insert(step_starts.get(step).copied().unwrap_or(event.at_ms));
                journal.faults.push(FaultRecord {
                    step: step.clone(),
                    kind: kind.clone(),
                    targets: targets.clone(),
                    reverted: false,
                    started_ms: Some(event.at_ms),
                    detail: detail.clone(),
                });
            }
            EventKind::FaultReverted {
                step, ok, detail, ..
            } => {
                if let Some(fault) = journal.faults.iter_mut().rev().find(|f| &f.step == step) {
                    fault.reverted = *ok;
                    if !detail.is_empty() {
                        if !fault.detail.is_empty() {
                            fault.detail.push_str("; ");
                        }
                        fault.detail.push_str(&format!("revert: {detail}"));
                    }
                }
            }
            EventKind::Probe {
                probe,
                role: ProbeRole::Steady,
                ok,
                ..
            } => {
                journal.health.push(ProbeSample {
                    at_ms: event.at_ms,
                    probe: probe.clone(),
                    ok: *ok,
                });
            }
            EventKind::RunbookStarted {
                path,
                manual: true,
                titles,
                ..
            } => {
                people.titles = titles.clone();
                people.manual = true;
                journal.runbook.get_or_insert(RunbookRecord {
                    path: path.clone(),
                    steps: Vec::new(),
                    by_hand: titles.clone(),
                });
            }
            EventKind::WorkdirLeft { paths, .. } => {
                journal.workdir_left.extend(paths.iter().cloned());
            }
            EventKind::SurpriseFault { window, delay_ms } => {
                journal.surprise = Some(crate::journal::SurpriseRecord {
                    window: window.clone(),
                    delay_ms: *delay_ms,
                });
            }
            EventKind::Note { .. }
            | EventKind::Acknowledged {}
            | EventKind::StepMarked { .. }
            | EventKind::Probe {
                role: ProbeRole::Detect,
                ..
            } => people.record(event),
            EventKind::RunbookStarted {
                path, executable, ..
            } => {
                runbook_executable += executable;
                journal.runbook.get_or_insert(RunbookRecord {
                    path: path.clone(),
                    steps: Vec::new(),
                    by_hand: Vec::new(),
                });
            }
            EventKind::RunbookStep {
                step,
                index,
                title,
                line,
                status,
                duration_ms,
                exit_code,
                command,
                output_tail,
                detail,
                idempotent,
                note,
                deviation,
            } => {
                if let Some(second_run) = idempotent {
                    let position = runbook_position.get(&(step.clone(), *index)).copied();
                    if let Some(record) = position.and_then(|at| runbook_steps.get_mut(at)) {
                        record.idempotent = Some(*second_run);
                        record.second_run_output = Some(output_tail.clone());
                        record.second_run_started_ms =
                            Some(event.at_ms.saturating_sub(*duration_ms));
                        record.second_run_duration_ms = Some(*duration_ms);
                        if !second_run && !detail.is_empty() {
                            record.detail = if record.detail.is_empty() {
                                format!("second run: {detail}")
                            } else {
                                format!("{}; second run: {detail}", record.detail)
                            };
                        }
                    }
                    continue;
                }
                runbook_position.insert((step.clone(), *index), runbook_steps.len());
                runbook_steps.push(RunbookStepRecord {
                    title: title.clone(),
                    line: *line,
                    status: *status,
                    duration_ms: *duration_ms,
                    exit_code: *exit_code,
                    output_tail: output_tail.clone(),
                    idempotent: None,
                    second_run_output: None,
                    command: command.clone(),
                    detail: detail.clone(),
                    note: note.clone(),
                    deviation: deviation.clone(),
                    // The event is emitted when the step ends.
                    started_ms: Some(event.at_ms.saturating_sub(*duration_ms)),
                    second_run_started_ms: None,
                    second_run_duration_ms: None,
                });
            }
            EventKind::DataLoss {
                loss_ms, detail, ..
            } => {
                journal.data_loss_ms = *loss_ms;
                journal.data_loss_detail = Some(detail.clone());
                data_read_failed = loss_ms.is_none();
            }
            EventKind::RecoveryChecked {
                ok,
                detail,
                after_rerun,
            } => {
                if *after_rerun {
                    checks.after_rerun = Some((*ok, detail.clone()));
                } else if checks.first_pass.is_none() {
                    checks.first_pass = Some((*ok, detail.clone()));
                    first_pass_checked_ms = Some(event.at_ms);
                }
            }
            _ => {}
        }
    }
    if let Some(runbook) = journal.runbook.as_mut() {
        runbook.steps = runbook_steps;
    }
    if has_data && journal.data_loss_detail.is_none() {
        journal.data_loss_detail =
            Some("not measured: the run ended before `data.read` ran".to_owned());
    }

    let first_fault = journal.first_fault_ms;
    if let Some(fault_at) = first_fault {
        journal.ttd_ms = journal
            .health
            .iter()
            .find(|sample| sample.at_ms >= fault_at && !sample.ok)
            .map(|sample| sample.at_ms - fault_at);
    }

    journal.expect_outage = expect_outage;
    journal.outage_observed = first_fault
        .filter(|_| !steady.is_empty())
        .map(|at| outage_observed(&journal.health, at));
    let not_recovered = not_recovered_because(
        first_fault.is_some(),
        &recover_steps,
        !steady.is_empty(),
        &checks,
    );
    // The streak that holds through the first pass's check: the
    // idempotency re-run is not part of TTR.
    let streak_start = first_fault.filter(|_| !steady.is_empty()).map(|fault_at| {
        let horizon = first_pass_checked_ms.unwrap_or(u64::MAX);
        let samples: Vec<ProbeSample> = journal
            .health
            .iter()
            .filter(|s| s.at_ms <= horizon)
            .cloned()
            .collect();
        final_streak_start(&samples, &steady, fault_at, first_pass_checked_ms)
    });
    let first_recover_start = journal
        .steps
        .iter()
        .filter(|s| s.action == "recover")
        .filter_map(|s| s.started_ms)
        .min();
    let not_exercised = first_fault.and_then(|fault_at| {
        not_exercised_because(
            journal.outage_observed,
            expect_outage,
            fault_at,
            streak_start,
            first_recover_start,
        )
    });
    journal.recovered = not_recovered.is_none() && not_exercised.is_none();
    if journal.recovered
        && let Some(fault_at) = first_fault
    {
        journal.ttr_ms = match streak_start {
            None => last_recover_end.map(|end| end.saturating_sub(fault_at)),
            Some(start) => Some(start.saturating_sub(fault_at)),
        };
    }

    journal.runbook_accuracy = journal
        .runbook
        .as_ref()
        .map(|runbook| runbook_accuracy(&runbook.steps, runbook_executable));
    journal.complete = journal.recovered
        && match &journal.runbook {
            Some(runbook) => runbook.steps.iter().all(|s| {
                matches!(
                    s.status,
                    RunbookStepStatus::Ok | RunbookStepStatus::Unverified
                )
            }),
            None => true,
        };
    people.fill(&mut journal);
    journal.time_score = time_score(journal.ttr_ms, journal.rto_ms);
    journal.score = overall_score(
        journal.recovered,
        journal.time_score,
        journal.runbook_accuracy,
    );
    journal.formula = formula(&journal);

    let rpo_met = match journal.rpo_ms {
        Some(rpo) => !data_read_failed && journal.data_loss_ms.is_some_and(|loss| loss <= rpo),
        None => true,
    };
    (journal.verdict, journal.reason) = match ending {
        Ending::Aborted(reason) => (Verdict::Aborted, reason.clone()),
        Ending::Error(reason) => (Verdict::Error, reason.clone()),
        Ending::Interrupted(signal) => (Verdict::Aborted, interrupted_by(signal)),
        Ending::Completed => {
            let (verdict, reason) = if let Some(why) = setup_failure(&finished, first_fault) {
                (Verdict::Error, why)
            } else if let Some(why) = not_recovered {
                (Verdict::Failed, format!("not recovered: {why}"))
            } else if let Some(why) = not_exercised {
                (Verdict::Failed, why)
            } else if !rpo_met {
                let loss = match (journal.data_loss_ms, &journal.data_loss_detail) {
                    (Some(loss), _) => format!("data loss {loss} ms exceeds"),
                    (None, Some(detail)) => {
                        format!(
                            "data loss not measured ({}) against",
                            crate::text::first_line(detail)
                        )
                    }
                    (None, None) => "data loss not measured against".to_owned(),
                };
                (
                    Verdict::Failed,
                    format!("{loss} the RPO of {} ms", journal.rpo_ms.unwrap_or(0)),
                )
            } else if journal.score < journal.min_score {
                (
                    Verdict::Failed,
                    format!(
                        "score {} is below min_score {}",
                        journal.score, journal.min_score
                    ),
                )
            } else {
                (
                    Verdict::Passed,
                    format!("recovered, score {} ≥ {}", journal.score, journal.min_score),
                )
            };
            match verdict {
                Verdict::Error => (verdict, reason),
                _ => (
                    verdict,
                    with_notes(reason, &journal, &steady, expect_outage),
                ),
            }
        }
    };
    journal
}

/// What else decided or qualifies the verdict, appended to the reason: the
/// runbook steps that are not safe to re-run, and how the recovery was judged
/// without steady-state probes.
fn with_notes(
    mut reason: String,
    journal: &Journal,
    steady: &[String],
    expect_outage: bool,
) -> String {
    let unsafe_steps = not_idempotent(journal.runbook.as_ref());
    if !unsafe_steps.is_empty() {
        let plural = if unsafe_steps.len() == 1 {
            "step"
        } else {
            "steps"
        };
        reason.push_str(&format!(
            "; runbook {plural} {} not safe to re-run (failed the second run), so not counted as ok",
            unsafe_steps.join(", ")
        ));
    }
    if steady.is_empty() {
        reason.push_str("; no steady state defined: judged by the recover steps alone");
    } else if !expect_outage {
        reason.push_str("; no outage required (`expect_outage: false`)");
    }
    reason
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The start of the final streak in which every steady-state probe holds:
/// for each probe, the first pass after its last failure; the latest of those.
/// A probe whose last sample before the recovery check failed (a background
/// poll that lost the race with the check, in the same millisecond) holds
/// from the check that confirmed it: `confirmed_at`.
fn final_streak_start(
    health: &[ProbeSample],
    steady: &[String],
    fault_at: u64,
    confirmed_at: Option<u64>,
) -> u64 {
    steady
        .iter()
        .map(|probe| {
            let samples: Vec<&ProbeSample> = health
                .iter()
                .filter(|s| &s.probe == probe && s.at_ms >= fault_at)
                .collect();
            match samples.iter().rposition(|s| !s.ok) {
                Some(last_failure) => samples.get(last_failure + 1).map_or_else(
                    || confirmed_at.unwrap_or(samples[last_failure].at_ms),
                    |s| s.at_ms,
                ),
                None => fault_at,
            }
        })
        .max()
        .unwrap_or(fault_at)
}

/// The formula with this run's numbers.
pub fn formula(journal: &Journal) -> String {
    let ttr = journal
        .ttr_ms
        .map_or("not recovered".to_owned(), |t| format!("{t} ms"));
    let time = format!(
        "time score = {} (TTR {ttr} against RTO {} ms: 100 if TTR ≤ RTO, else 100 × RTO / TTR)",
        journal.time_score, journal.rto_ms
    );
    match journal.runbook_accuracy {
        Some(accuracy) if journal.recovered => format!(
            "score = round(0.5 × time score + 0.5 × runbook accuracy) = round(0.5 × {} + 0.5 × {accuracy}) = {}; {time}",
            journal.time_score, journal.score
        ),
        Some(_) | None if !journal.recovered => format!("score = 0 (not recovered); {time}"),
        _ => format!(
            "score = time score = {} (no runbook); {time}",
            journal.score
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_poll_last_before_the_check_counts_from_the_check() {
        // Seen under load: the background poll failed in the same millisecond
        // as the recovery check passed; TTR was u64::MAX - fault time.
        let sample = |at_ms, ok| super::ProbeSample {
            at_ms,
            probe: "up".to_owned(),
            ok,
        };
        let health = [sample(100, false), sample(900, false)];
        let steady = ["up".to_owned()];
        assert_eq!(
            super::final_streak_start(&health, &steady, 50, Some(900)),
            900
        );
        assert_eq!(super::final_streak_start(&health, &steady, 50, None), 900);
        let healed = [sample(100, false), sample(400, true), sample(900, true)];
        assert_eq!(
            super::final_streak_start(&healed, &steady, 50, Some(900)),
            400
        );
    }

    use super::*;

    fn ev(at_ms: u64, kind: EventKind) -> Event {
        Event {
            at_ms,
            time: String::new(),
            kind,
        }
    }

    fn started(steady: &[&str]) -> EventKind {
        EventKind::RunStarted {
            drill: "d".into(),
            run_id: "r".into(),
            seed: 1,
            scenario: "d.yaml".into(),
            target: "local".into(),
            run_dir: String::new(),
            workdir: String::new(),
            pid: 1,
            pid_started: None,
            boot_id: None,
            rto_ms: 10_000,
            rpo_ms: None,
            min_score: 70,
            steady_state: steady.iter().map(|s| s.to_string()).collect(),
            has_data: false,
            expect_outage: true,
            options: None,
            files: Vec::new(),
        }
    }

    fn probe(at: u64, name: &str, ok: bool) -> Event {
        ev(
            at,
            EventKind::Probe {
                probe: name.into(),
                role: ProbeRole::Steady,
                ok,
                detail: String::new(),
            },
        )
    }

    fn fault(at: u64) -> Vec<Event> {
        vec![
            ev(
                at,
                EventKind::StepStarted {
                    step: "f".into(),
                    action: "fault".into(),
                    attempt: 1,
                    summary: String::new(),
                },
            ),
            ev(
                at,
                EventKind::FaultInjected {
                    step: "f".into(),
                    kind: "kill".into(),
                    targets: vec!["web".into()],
                    detail: String::new(),
                    undo: None,
                    interrupted: false,
                },
            ),
        ]
    }

    #[test]
    fn ttd_and_ttr_follow_the_probes() {
        let mut events = vec![ev(0, started(&["a", "b"])), probe(500, "a", true)];
        events.extend(fault(1000));
        events.extend([
            probe(1500, "a", false),
            probe(1600, "b", true),
            probe(2000, "a", true),
            probe(2100, "b", false),
            probe(3000, "a", true),
            probe(3100, "b", true),
            finished(3500, "fix", "recover", StepStatus::Ok, ""),
            probe(4000, "a", true),
            probe(4100, "b", true),
            ev(
                4200,
                EventKind::RecoveryChecked {
                    ok: true,
                    detail: String::new(),
                    after_rerun: false,
                },
            ),
        ]);
        let journal = journal(&events, &Ending::Completed);
        assert_eq!(journal.ttd_ms, Some(500));
        assert_eq!(
            journal.ttr_ms,
            Some(2100),
            "b's final streak starts at 3100"
        );
        assert!(journal.recovered);
        assert_eq!(journal.time_score, 100);
        assert_eq!(journal.score, 100);
        assert_eq!(journal.verdict, Verdict::Passed);
    }

    #[test]
    fn slow_recovery_scales_the_time_score() {
        assert_eq!(time_score(Some(20_000), 10_000), 50);
        assert_eq!(time_score(Some(10_000), 10_000), 100);
        assert_eq!(time_score(None, 10_000), 0);
        assert_eq!(overall_score(true, 50, Some(100.0)), 75);
        assert_eq!(overall_score(false, 100, Some(100.0)), 0);
        assert_eq!(overall_score(true, 80, None), 80);
    }

    #[test]
    fn not_recovered_fails_with_score_zero() {
        let mut events = vec![ev(0, started(&["a"]))];
        events.extend(fault(100));
        events.push(probe(200, "a", false));
        events.push(ev(
            300,
            EventKind::RecoveryChecked {
                ok: false,
                detail: "a failed".into(),
                after_rerun: false,
            },
        ));
        let journal = journal(&events, &Ending::Completed);
        assert!(!journal.recovered);
        assert_eq!(journal.score, 0);
        assert_eq!(journal.verdict, Verdict::Failed);
        assert!(journal.reason.contains("not recovered"));
    }

    #[test]
    fn without_steady_state_recovery_ends_with_the_last_recover_step() {
        let mut events = vec![ev(0, started(&[]))];
        events.extend(fault(100));
        events.push(ev(
            2100,
            EventKind::StepFinished {
                step: "r".into(),
                action: "recover".into(),
                status: StepStatus::Ok,
                duration_ms: 1000,
                attempts: 1,
                exit_code: Some(0),
                detail: String::new(),
                output_tail: String::new(),
            },
        ));
        let journal = journal(&events, &Ending::Completed);
        assert!(journal.recovered);
        assert_eq!(journal.ttr_ms, Some(2000));
    }

    #[test]
    fn aborted_and_error_endings_win_over_the_score() {
        let events = vec![ev(0, started(&[]))];
        assert_eq!(
            journal(&events, &Ending::Aborted("guard".into())).verdict,
            Verdict::Aborted
        );
        assert_eq!(
            journal(&events, &Ending::Error("unhealthy".into())).verdict,
            Verdict::Error
        );
        let terminated = journal(&events, &Ending::Interrupted("SIGTERM".into()));
        assert_eq!(terminated.verdict, Verdict::Aborted);
        assert_eq!(terminated.reason, "interrupted by SIGTERM");
        let ctrl_c = journal(&events, &Ending::Interrupted("SIGINT".into()));
        assert_eq!(ctrl_c.reason, "interrupted by SIGINT (Ctrl-C)");
    }

    fn finished(at: u64, step: &str, action: &str, status: StepStatus, detail: &str) -> Event {
        ev(
            at,
            EventKind::StepFinished {
                step: step.into(),
                action: action.into(),
                status,
                duration_ms: 0,
                attempts: 1,
                exit_code: None,
                detail: detail.into(),
                output_tail: String::new(),
            },
        )
    }

    fn checked(at: u64, ok: bool, after_rerun: bool) -> Event {
        ev(
            at,
            EventKind::RecoveryChecked {
                ok,
                detail: if ok {
                    String::new()
                } else {
                    "`a`: down".into()
                },
                after_rerun,
            },
        )
    }

    /// A run with steady state `a` that breaks at 1000 and recovers by `fix`.
    fn broken_and_fixed() -> Vec<Event> {
        let mut events = vec![ev(0, started(&["a"]))];
        events.extend(fault(1000));
        events.push(probe(1100, "a", false));
        events.push(finished(2000, "fix", "recover", StepStatus::Ok, ""));
        events.push(probe(2100, "a", true));
        events
    }

    #[test]
    fn a_skipped_recover_step_is_not_recovered_even_if_the_steady_state_holds() {
        let mut events = vec![ev(0, started(&["a"]))];
        events.extend(fault(1000));
        events.push(probe(1100, "a", false));
        events.push(finished(
            1200,
            "confirm",
            "run",
            StepStatus::Failed,
            "exit code 1",
        ));
        events.push(finished(
            1200,
            "fix",
            "recover",
            StepStatus::Skipped,
            "needs `confirm`, which failed",
        ));
        events.push(probe(1300, "a", true));
        events.push(checked(1400, true, false));
        let journal = journal(&events, &Ending::Completed);
        assert!(!journal.recovered);
        assert_eq!(journal.score, 0);
        assert_eq!(journal.verdict, Verdict::Failed);
        assert!(
            journal.reason.contains("`fix` was skipped")
                && journal.reason.contains("the recovery was never tested"),
            "{}",
            journal.reason
        );
    }

    #[test]
    fn a_failed_recover_step_is_not_recovered_even_if_the_steady_state_holds() {
        let mut events = broken_and_fixed();
        events.push(finished(
            2000,
            "fix2",
            "recover",
            StepStatus::Failed,
            "exit code 3",
        ));
        events.push(checked(2200, true, false));
        let journal = journal(&events, &Ending::Completed);
        assert!(!journal.recovered);
        assert!(
            journal.reason.contains("`fix2` failed: exit code 3"),
            "{}",
            journal.reason
        );
    }

    #[test]
    fn no_outage_observed_fails_unless_none_is_expected() {
        let mut events = vec![ev(0, started(&["a"]))];
        events.extend(fault(1000));
        events.push(probe(1100, "a", true));
        events.push(finished(1200, "fix", "recover", StepStatus::Ok, ""));
        events.push(checked(1300, true, false));
        let failed = journal(&events, &Ending::Completed);
        assert!(!failed.recovered, "nothing was recovered");
        assert!(!failed.complete);
        assert_eq!(failed.ttr_ms, None, "no outage, no time to recover");
        assert_eq!(failed.score, 0);
        assert_eq!(failed.verdict, Verdict::Failed);
        assert!(
            failed.reason.starts_with("no outage observed"),
            "{}",
            failed.reason
        );

        if let EventKind::RunStarted { expect_outage, .. } = &mut events[0].kind {
            *expect_outage = false;
        }
        let holding = journal(&events, &Ending::Completed);
        assert_eq!(holding.verdict, Verdict::Passed, "{}", holding.reason);
        assert!(
            holding.reason.contains("expect_outage: false"),
            "{}",
            holding.reason
        );
    }

    fn recover_started(at: u64, step: &str) -> Event {
        ev(
            at,
            EventKind::StepStarted {
                step: step.into(),
                action: "recover".into(),
                attempt: 1,
                summary: String::new(),
            },
        )
    }

    #[test]
    fn a_system_that_heals_before_the_recovery_starts_is_not_credited_to_it() {
        let mut events = vec![ev(0, started(&["a"])), probe(500, "a", true)];
        events.extend(fault(1000));
        events.extend([
            probe(1100, "a", false),
            probe(2000, "a", true),
            probe(3000, "a", true),
            recover_started(4000, "fix"),
            finished(4100, "fix", "recover", StepStatus::Ok, ""),
            checked(4200, true, false),
        ]);
        let healed = journal(&events, &Ending::Completed);
        assert!(!healed.recovered, "the recovery was not exercised");
        assert!(!healed.complete);
        assert_eq!(healed.ttr_ms, None);
        assert_eq!(healed.score, 0);
        assert_eq!(healed.verdict, Verdict::Failed);
        let mut resilience = events.clone();
        if let EventKind::RunStarted { expect_outage, .. } = &mut resilience[0].kind {
            *expect_outage = false;
        }
        let resilient = journal(&resilience, &Ending::Completed);
        assert!(resilient.recovered, "{}", resilient.reason);
        assert_eq!(resilient.ttr_ms, Some(1000));
        assert!(
            healed.reason.starts_with(
                "the system recovered by itself before the recovery started (the steady state \
                 held again 1.0 s after the first fault, the first recover step started at 3.0 s)"
            ),
            "{}",
            healed.reason
        );

        // Broken until the recover step has started: the recovery did it.
        events[5] = probe(2000, "a", false);
        events[6] = probe(3000, "a", false);
        events.insert(8, probe(4050, "a", true));
        let recovered = journal(&events, &Ending::Completed);
        assert!(recovered.recovered, "{}", recovered.reason);
        assert_eq!(recovered.ttr_ms, Some(3050));
        assert_eq!(recovered.verdict, Verdict::Passed);
    }

    #[test]
    fn a_failure_before_the_first_fault_does_not_count_as_an_outage() {
        let mut events = vec![ev(0, started(&["a"])), probe(500, "a", false)];
        events.extend(fault(1000));
        events.push(probe(1100, "a", true));
        events.push(finished(1200, "fix", "recover", StepStatus::Ok, ""));
        events.push(checked(1300, true, false));
        assert!(
            journal(&events, &Ending::Completed)
                .reason
                .starts_with("no outage observed")
        );
    }

    #[test]
    fn without_steady_state_the_reason_says_how_it_was_judged() {
        let mut events = vec![ev(0, started(&[]))];
        events.extend(fault(100));
        events.push(finished(200, "fix", "recover", StepStatus::Ok, ""));
        let journal = journal(&events, &Ending::Completed);
        assert_eq!(journal.verdict, Verdict::Passed);
        assert!(
            journal
                .reason
                .contains("no steady state defined: judged by the recover steps alone"),
            "{}",
            journal.reason
        );
    }

    #[test]
    fn a_step_that_fails_before_the_first_fault_is_an_error_naming_it() {
        let mut events = vec![ev(0, started(&["a"]))];
        events.push(finished(
            50,
            "setup",
            "run",
            StepStatus::Failed,
            "exit code 2\nmore",
        ));
        events.push(finished(
            50,
            "break",
            "fault",
            StepStatus::Skipped,
            "needs `setup`",
        ));
        events.push(finished(
            50,
            "fix",
            "recover",
            StepStatus::Skipped,
            "needs `break`",
        ));
        let journal = journal(&events, &Ending::Completed);
        assert_eq!(journal.verdict, Verdict::Error);
        assert_eq!(journal.verdict.exit_code(), 4);
        assert_eq!(
            journal.reason,
            "step `setup` failed before the first fault (exit code 2): the drill could not be set up"
        );
        // A step that fails after the first fault is the recovery's business.
        let mut later = broken_and_fixed();
        later.push(finished(
            1500,
            "observe",
            "run",
            StepStatus::Failed,
            "exit code 1",
        ));
        later.push(checked(2200, true, false));
        assert_ne!(journal_verdict(&later), Verdict::Error);
    }

    #[test]
    fn a_fault_step_that_times_out_is_named_as_such() {
        let events = vec![
            ev(0, started(&["a"])),
            finished(
                5000,
                "break",
                "fault",
                StepStatus::Failed,
                "timed out after 5s; its process group was killed",
            ),
            finished(5000, "fix", "recover", StepStatus::Skipped, "needs `break`"),
        ];
        let journal = journal(&events, &Ending::Completed);
        assert_eq!(journal.verdict, Verdict::Error);
        assert_eq!(
            journal.reason,
            "fault step `break` timed out (timed out after 5s; its process group was killed): \
             its fault was never confirmed injected, so the drill could not be set up"
        );
    }

    fn journal_verdict(events: &[Event]) -> Verdict {
        journal(events, &Ending::Completed).verdict
    }

    fn runbook_step(
        at: u64,
        index: usize,
        status: RunbookStepStatus,
        idempotent: Option<bool>,
        output: &str,
    ) -> Event {
        ev(
            at,
            EventKind::RunbookStep {
                step: "fix".into(),
                index,
                title: format!("step {index}"),
                line: 3 + index,
                status,
                duration_ms: 10,
                exit_code: Some(if status == RunbookStepStatus::Ok {
                    0
                } else {
                    1
                }),
                command: "mkdir d".into(),
                output_tail: output.into(),
                detail: if status == RunbookStepStatus::Ok {
                    String::new()
                } else {
                    "exit code 1".into()
                },
                idempotent,
                note: None,
                deviation: None,
            },
        )
    }

    #[test]
    fn a_step_that_fails_its_second_run_is_not_ok_and_is_named() {
        let mut events = vec![ev(0, started(&["a"]))];
        events.extend(fault(1000));
        events.push(probe(1100, "a", false));
        events.push(ev(
            1200,
            EventKind::RunbookStarted {
                step: "fix".into(),
                path: "rb.md".into(),
                executable: 2,
                total: 2,
                manual: false,
                titles: Vec::new(),
            },
        ));
        events.push(runbook_step(1300, 0, RunbookStepStatus::Ok, None, ""));
        events.push(runbook_step(1400, 1, RunbookStepStatus::Ok, None, ""));
        events.push(finished(1500, "fix", "recover", StepStatus::Ok, ""));
        events.push(probe(1600, "a", true));
        events.push(checked(1700, true, false));
        events.push(runbook_step(
            1800,
            0,
            RunbookStepStatus::Failed,
            Some(false),
            "mkdir: d: File exists",
        ));
        events.push(runbook_step(1900, 1, RunbookStepStatus::Ok, Some(true), ""));
        events.push(checked(2000, true, true));
        let journal = journal(&events, &Ending::Completed);
        assert_eq!(journal.runbook_accuracy, Some(50.0));
        assert_eq!(journal.score, 75);
        let steps = &journal.runbook.as_ref().unwrap().steps;
        assert_eq!(
            steps[0].second_run_output.as_deref(),
            Some("mkdir: d: File exists")
        );
        assert!(
            journal
                .reason
                .contains("runbook step 1 “step 0” (line 3) not safe to re-run"),
            "{}",
            journal.reason
        );
    }

    #[test]
    fn ttr_ends_with_the_first_pass_and_the_rerun_must_hold_again() {
        let mut events = broken_and_fixed();
        events.push(checked(2200, true, false));
        // The re-run takes the system down again, and it comes back.
        events.push(probe(3000, "a", false));
        events.push(probe(5000, "a", true));
        events.push(checked(5100, true, true));
        let journal = journal(&events, &Ending::Completed);
        assert!(journal.recovered);
        assert_eq!(journal.ttr_ms, Some(1100), "the re-run is not part of TTR");

        // It does not come back: not recovered.
        let mut events = broken_and_fixed();
        events.push(checked(2200, true, false));
        events.push(probe(3000, "a", false));
        events.push(checked(5100, false, true));
        let rerun_broke = super::journal(&events, &Ending::Completed);
        assert!(!rerun_broke.recovered);
        assert!(
            rerun_broke
                .reason
                .contains("did not hold again after the idempotency re-run"),
            "{}",
            rerun_broke.reason
        );
    }

    #[test]
    fn a_failed_data_read_is_said_as_it_failed() {
        let mut events = broken_and_fixed();
        if let EventKind::RunStarted {
            has_data, rpo_ms, ..
        } = &mut events[0].kind
        {
            *has_data = true;
            *rpo_ms = Some(5000);
        }
        events.push(checked(2200, true, false));
        events.push(ev(
            2300,
            EventKind::DataLoss {
                loss_ms: None,
                last_heartbeat_ms: None,
                detail: "`data.read` failed (exit Some(1)): connection refused".into(),
            },
        ));
        let journal = journal(&events, &Ending::Completed);
        assert_eq!(journal.verdict, Verdict::Failed);
        assert!(
            journal.reason.contains("connection refused"),
            "{}",
            journal.reason
        );
        assert_eq!(
            journal.data_loss_detail.as_deref(),
            Some("`data.read` failed (exit Some(1)): connection refused")
        );
    }

    #[test]
    fn second_runs_attach_to_their_own_runbook_step_when_runbooks_interleave() {
        let step_of = |at: u64, step: &str, index: usize, idempotent: Option<bool>| {
            let mut event = runbook_step(at, index, RunbookStepStatus::Ok, idempotent, step);
            if let EventKind::RunbookStep { step: id, .. } = &mut event.kind {
                *id = step.into();
            }
            event
        };
        let mut events = vec![ev(0, started(&[]))];
        events.extend(fault(100));
        for (at, step) in [(200, "a"), (210, "b")] {
            events.push(ev(
                at,
                EventKind::RunbookStarted {
                    step: step.into(),
                    path: "rb.md".into(),
                    executable: 2,
                    total: 2,
                    manual: false,
                    titles: Vec::new(),
                },
            ));
        }
        events.push(step_of(300, "a", 0, None));
        events.push(step_of(310, "b", 0, None));
        events.push(step_of(320, "b", 1, None));
        events.push(step_of(330, "a", 1, None));
        events.push(step_of(400, "b", 1, Some(false)));
        let journal = journal(&events, &Ending::Completed);
        let steps = &journal.runbook.as_ref().unwrap().steps;
        // Recorded in event order: a0, b0, b1, a1; b's step 2 is the third.
        let flagged: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.idempotent == Some(false))
            .map(|(at, _)| at)
            .collect();
        assert_eq!(flagged, [2], "{steps:?}");
    }
}
