//! `junit.xml`: CI systems render JUnit natively, so a failed drill shows up
//! as red test cases that say which step broke and which objective was missed.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::facts;
use crate::journal::{Journal, RunbookStepStatus, StepStatus, Verdict};

pub(super) fn render(journal: &Journal) -> String {
    let mut report = Report::new("firedrill");
    let mut suite = TestSuite::new(journal.drill.as_str());
    let started = chrono::DateTime::parse_from_rfc3339(&journal.started_at).ok();
    if let Some(started) = started {
        suite.set_timestamp(started);
        report.set_timestamp(started);
    }
    let total = Duration::from_millis(journal.duration_ms);
    suite.set_time(total);
    report.set_time(total);
    suite.add_properties([
        Property::new("run_id", journal.run_id.as_str()),
        Property::new("verdict", journal.verdict.as_str()),
        Property::new("score", journal.score.to_string()),
        Property::new("seed", journal.seed.to_string()),
        Property::new("scenario", journal.scenario.as_str()),
        Property::new("target", journal.target.as_str()),
    ]);
    if !journal.reason.trim().is_empty() {
        suite.set_system_out(journal.reason.as_str());
    }

    let steps_class = format!("{}.steps", journal.drill);
    for step in &journal.steps {
        let status = match step.status {
            StepStatus::Ok => TestCaseStatus::success(),
            StepStatus::Failed => non_success(
                NonSuccessKind::Failure,
                "step-failed",
                &or(&step.detail, "the step failed"),
                &describe(step.exit_code, &step.detail, &step.output_tail),
            ),
            StepStatus::Interrupted => non_success(
                NonSuccessKind::Error,
                "step-interrupted",
                &or(&step.detail, "the step was interrupted"),
                &describe(step.exit_code, &step.detail, &step.output_tail),
            ),
            StepStatus::Skipped => skipped(&or(&step.detail, "not run")),
        };
        let mut case = TestCase::new(step.id.as_str(), status);
        case.set_classname(steps_class.as_str());
        case.set_time(Duration::from_millis(step.duration_ms));
        suite.add_test_case(case);
    }

    if let Some(runbook) = &journal.runbook {
        let runbook_class = format!("{}.runbook", journal.drill);
        for (index, step) in runbook.steps.iter().enumerate() {
            let name = format!("{}. {}", index + 1, facts::one_line(&step.title));
            let describe_step = || {
                let mut text = String::new();
                if !step.command.trim().is_empty() {
                    text.push_str("command:\n");
                    text.push_str(step.command.trim_end());
                    text.push_str("\n\n");
                }
                text.push_str(&describe(step.exit_code, &step.detail, &step.output_tail));
                text
            };
            let status = match step.status {
                RunbookStepStatus::Ok if step.idempotent == Some(false) => non_success(
                    NonSuccessKind::Failure,
                    "not-idempotent",
                    "not safe to re-run: it failed when the runbook ran a second time, so it does not count as ok",
                    &match facts::second_run_failure(step) {
                        Some(output) => format!(
                            "{}\n\nsecond run output:\n{}",
                            describe_step(),
                            output.trim_end()
                        ),
                        None => describe_step(),
                    },
                ),
                RunbookStepStatus::Ok => TestCaseStatus::success(),
                RunbookStepStatus::Failed => non_success(
                    NonSuccessKind::Failure,
                    "runbook-step-failed",
                    &facts::failure_reason(step),
                    &describe_step(),
                ),
                RunbookStepStatus::Deviated => {
                    let instead = step.deviation.as_deref().unwrap_or("").trim();
                    let mut text = describe_step();
                    if !instead.is_empty() {
                        text = format!("operator ran instead:\n{instead}\n\n{text}");
                    }
                    non_success(
                        NonSuccessKind::Failure,
                        "runbook-step-deviated",
                        "the operator changed the command: the runbook does not work as written",
                        &text,
                    )
                }
                RunbookStepStatus::Skipped => skipped("not run: an earlier runbook step failed"),
                RunbookStepStatus::Unverified if step.command.trim().is_empty() => {
                    skipped("manual step: not verified by firedrill")
                }
                RunbookStepStatus::Unverified => {
                    skipped("done by hand: the command was not verified by firedrill")
                }
            };
            let mut case = TestCase::new(name, status);
            case.set_classname(runbook_class.as_str());
            case.set_time(Duration::from_millis(step.duration_ms));
            if let Some(note) = step.note.as_deref().filter(|note| !note.trim().is_empty()) {
                case.set_system_out(format!("operator's note: {note}"));
            }
            suite.add_test_case(case);
        }
    }

    for case in objective_cases(journal) {
        suite.add_test_case(case);
    }
    // CI viewers (GitLab, Jenkins, GitHub's test reporters) count `skipped=`;
    // quick-junit counts skipped cases as `disabled=`, which they read as
    // tests switched off in the source. Each case carries `<skipped/>`.
    let skipped = std::mem::take(&mut suite.disabled);
    suite
        .extra
        .insert("skipped".into(), skipped.to_string().into());
    report.add_test_suite(suite);
    report.to_string().unwrap_or_else(|error| {
        // Serializing to memory only fails on an I/O error, which a String
        // cannot have; keep a valid, explicit document just in case.
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"firedrill\" tests=\"1\" failures=\"0\" errors=\"1\">\
             <testsuite name=\"firedrill\" tests=\"1\" failures=\"0\" errors=\"1\"><testcase name=\"report\">\
             <error message=\"cannot write junit report\">{}</error></testcase></testsuite></testsuites>\n",
            super::escape_html(&error.to_string())
        )
    })
}

/// The objectives as test cases, so CI says *why* a drill failed.
fn objective_cases(journal: &Journal) -> Vec<TestCase> {
    let class = format!("{}.objectives", journal.drill);
    let mut cases = Vec::new();
    let rto = facts::human(journal.rto_ms);

    // Aborted and errored runs never got to their objectives; say so first.
    let completed = match journal.verdict {
        Verdict::Passed | Verdict::Failed => TestCaseStatus::success(),
        Verdict::Aborted => non_success(
            NonSuccessKind::Error,
            "aborted",
            &or(
                &journal.reason,
                "the run was aborted by a guard or the halt file",
            ),
            &journal.reason,
        ),
        Verdict::Error => non_success(
            NonSuccessKind::Error,
            "error",
            &or(&journal.reason, "the drill could not be carried out"),
            &journal.reason,
        ),
    };
    cases.push(("run completed", completed));

    let recovery = match (journal.recovered, journal.ttr_ms) {
        (false, _) => failure(
            "not-recovered",
            journal
                .reason
                .strip_prefix("not recovered: ")
                .unwrap_or("the steady state did not hold after the recovery"),
        ),
        (true, Some(ttr)) if ttr > journal.rto_ms => failure(
            "rto-missed",
            &format!(
                "recovered in {} (TTR), over the RTO of {rto}",
                facts::human(ttr)
            ),
        ),
        _ => TestCaseStatus::success(),
    };
    cases.push(("recovered within RTO", recovery));

    if let (Some(loss), Some(rpo)) = (journal.data_loss_ms, journal.rpo_ms) {
        let status = if loss > rpo {
            failure(
                "rpo-missed",
                &format!(
                    "lost {} of data, over the RPO of {}",
                    facts::human(loss),
                    facts::human(rpo)
                ),
            )
        } else {
            TestCaseStatus::success()
        };
        cases.push(("data loss within RPO", status));
    }

    if let Some(observed) = journal.outage_observed
        && journal.expect_outage
    {
        let status = if observed {
            TestCaseStatus::success()
        } else {
            failure(
                "no-outage",
                "no outage observed: no steady-state probe failed after the first fault, so the recovery was not exercised",
            )
        };
        cases.push(("outage observed", status));
    }

    let explanation = facts::score_explanation(journal);
    let score = if journal.score >= journal.min_score {
        TestCaseStatus::success()
    } else {
        non_success(
            NonSuccessKind::Failure,
            "score-below-minimum",
            &format!(
                "score {} is below the minimum of {}",
                journal.score, journal.min_score
            ),
            &format!(
                "time score: {}\nrunbook accuracy: {}\n{}\n\nFormula: {}\nAs the scorer computed it: {}",
                explanation.time,
                explanation.accuracy,
                explanation.formula,
                facts::FORMULA,
                explanation.scorer
            ),
        )
    };
    cases.push(("score ≥ min_score", score));

    cases
        .into_iter()
        .map(|(name, status)| {
            let mut case = TestCase::new(name, status);
            case.set_classname(class.as_str());
            case
        })
        .collect()
}

fn failure(ty: &str, message: &str) -> TestCaseStatus {
    non_success(NonSuccessKind::Failure, ty, message, message)
}

fn non_success(kind: NonSuccessKind, ty: &str, message: &str, description: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_type(ty);
    status.set_message(facts::one_line(message));
    if !description.trim().is_empty() {
        status.set_description(description.trim_end());
    }
    status
}

fn skipped(message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(message);
    status
}

/// The failure body: exit code, detail and the output tail a reader needs.
fn describe(exit_code: Option<i32>, detail: &str, output_tail: &str) -> String {
    let mut text = String::new();
    if let Some(code) = exit_code {
        text.push_str(&format!("exit code: {code}\n"));
    }
    // The engine's detail is often just the exit code again.
    let repeats_exit_code =
        exit_code.is_some_and(|code| detail.trim() == format!("exit code {code}"));
    if !detail.trim().is_empty() && !repeats_exit_code {
        text.push_str(&format!("detail: {}\n", detail.trim()));
    }
    if !output_tail.trim().is_empty() {
        text.push_str("output (last lines):\n");
        text.push_str(output_tail.trim_end());
        text.push('\n');
    }
    text
}

fn or(text: &str, fallback: &str) -> String {
    if text.trim().is_empty() {
        fallback.to_string()
    } else {
        text.to_string()
    }
}
