//! Scoring (SPEC §7): pure functions from a run's events to its journal.
//!
//! Nothing here looks at the clock or the system: the same events always give
//! the same verdict, so the score can be tested on recorded runs and a
//! report regenerated from `events.jsonl`.

use std::collections::BTreeMap;

use crate::event::{Event, EventKind, ProbeRole};
use crate::journal::{
    FaultRecord, Journal, ProbeSample, RunbookRecord, RunbookStepRecord, RunbookStepStatus,
    StepRecord, StepStatus, Verdict,
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
    /// Ctrl-C.
    Interrupted,
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
        seed: 0,
        ttd_ms: None,
        ttr_ms: None,
        rto_ms: 0,
        data_loss_ms: None,
        rpo_ms: None,
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
    };
    let mut steady: Vec<String> = Vec::new();
    let mut has_data = false;
    let mut step_starts: BTreeMap<String, u64> = BTreeMap::new();
    let mut recovery_check: Option<bool> = None;
    let mut runbook_executable = 0usize;
    let mut runbook_steps: Vec<RunbookStepRecord> = Vec::new();
    let mut last_recover_end: Option<u64> = None;
    let mut recover_steps_ok = true;
    let mut any_recover = false;
    let mut data_read_failed = false;

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
                if action == "recover" {
                    any_recover = true;
                    if *status == StepStatus::Ok {
                        last_recover_end =
                            Some(last_recover_end.map_or(event.at_ms, |t: u64| t.max(event.at_ms)));
                    } else {
                        recover_steps_ok = false;
                    }
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
                path, executable, ..
            } => {
                runbook_executable += executable;
                journal.runbook.get_or_insert(RunbookRecord {
                    path: path.clone(),
                    steps: Vec::new(),
                });
            }
            EventKind::RunbookStep {
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
                ..
            } => {
                if let Some(second_run) = idempotent {
                    if let Some(record) = runbook_steps.get_mut(*index) {
                        record.idempotent = Some(*second_run);
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
                runbook_steps.push(RunbookStepRecord {
                    title: title.clone(),
                    line: *line,
                    status: *status,
                    duration_ms: *duration_ms,
                    exit_code: *exit_code,
                    output_tail: output_tail.clone(),
                    idempotent: None,
                    command: command.clone(),
                    detail: detail.clone(),
                    note: note.clone(),
                    deviation: deviation.clone(),
                });
            }
            EventKind::DataLoss { loss_ms, .. } => {
                journal.data_loss_ms = *loss_ms;
                data_read_failed = loss_ms.is_none();
            }
            EventKind::RecoveryChecked { ok, .. } => recovery_check = Some(*ok),
            _ => {}
        }
    }
    if let Some(runbook) = journal.runbook.as_mut() {
        runbook.steps = runbook_steps;
    }

    let first_fault = journal.first_fault_ms;
    if let Some(fault_at) = first_fault {
        journal.ttd_ms = journal
            .health
            .iter()
            .find(|sample| sample.at_ms >= fault_at && !sample.ok)
            .map(|sample| sample.at_ms - fault_at);
    }

    let recovered = if steady.is_empty() {
        any_recover && recover_steps_ok
    } else {
        recovery_check == Some(true)
    };
    journal.recovered = recovered && first_fault.is_some();
    if journal.recovered
        && let Some(fault_at) = first_fault
    {
        journal.ttr_ms = if steady.is_empty() {
            last_recover_end.map(|end| end.saturating_sub(fault_at))
        } else {
            Some(final_streak_start(&journal.health, &steady, fault_at).saturating_sub(fault_at))
        };
    }

    journal.runbook_accuracy = journal.runbook.as_ref().map(|runbook| {
        let ok = runbook
            .steps
            .iter()
            .filter(|s| s.status == RunbookStepStatus::Ok)
            .count();
        if runbook_executable == 0 {
            0.0
        } else {
            round1(100.0 * ok as f64 / runbook_executable as f64)
        }
    });
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
    let _ = has_data;
    (journal.verdict, journal.reason) = match ending {
        Ending::Aborted(reason) => (Verdict::Aborted, reason.clone()),
        Ending::Error(reason) => (Verdict::Error, reason.clone()),
        Ending::Interrupted => (Verdict::Aborted, "interrupted (Ctrl-C)".into()),
        Ending::Completed => {
            if !journal.recovered {
                let why = if first_fault.is_none() {
                    "no fault was injected".to_owned()
                } else if steady.is_empty() {
                    "a recover step failed".to_owned()
                } else {
                    "the steady state did not hold after the last recovery step".to_owned()
                };
                (Verdict::Failed, format!("not recovered: {why}"))
            } else if !rpo_met {
                let loss = journal
                    .data_loss_ms
                    .map_or("not measured".to_owned(), |l| format!("{l} ms"));
                (
                    Verdict::Failed,
                    format!(
                        "data loss {loss} exceeds the RPO of {} ms",
                        journal.rpo_ms.unwrap_or(0)
                    ),
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
            }
        }
    };
    journal
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The start of the final streak in which every steady-state probe holds:
/// for each probe, the first pass after its last failure; the latest of those.
fn final_streak_start(health: &[ProbeSample], steady: &[String], fault_at: u64) -> u64 {
    steady
        .iter()
        .map(|probe| {
            let samples: Vec<&ProbeSample> = health
                .iter()
                .filter(|s| &s.probe == probe && s.at_ms >= fault_at)
                .collect();
            match samples.iter().rposition(|s| !s.ok) {
                Some(last_failure) => samples.get(last_failure + 1).map_or(u64::MAX, |s| s.at_ms),
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
            rto_ms: 10_000,
            rpo_ms: None,
            min_score: 70,
            steady_state: steady.iter().map(|s| s.to_string()).collect(),
            has_data: false,
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
            probe(4000, "a", true),
            probe(4100, "b", true),
            ev(
                4200,
                EventKind::RecoveryChecked {
                    ok: true,
                    detail: String::new(),
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
    }
}
