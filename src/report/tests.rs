//! Every format on the same runs: a failed runbook step must be named, with
//! its command and its error output, in each of them.

use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

use super::facts::{self, Health};
use super::samples::{aborted, passing_with_runbook, without_runbook};
use super::*;
use crate::journal::{ProbeSample, StepStatus, Verdict};

const FAILED_STEP: &str = "Restore the snapshot on every member";
const FAILED_OUTPUT: &str = "data-dir \"/tmp/firedrill/etcd/2\" exists";
const FAILED_COMMAND: &str = "etcdctl snapshot restore";

#[test]
fn markdown_is_a_retrospective_naming_the_failed_step_and_its_output() {
    let text = markdown(&sample_journal_for_docs());
    for wanted in [
        "# Drill report: etcd-quorum-loss — FAILED",
        "## Score",
        "| Time score | TTR 2m30s > RTO 2m00s → time score = 100 × 2m00s / 2m30s = 79.8 → 80 |",
        "score = 0.5 × 80 + 0.5 × 66.7 = 73.4 → rounded 73",
        "Formula: score = 0.5 × time score + 0.5 × runbook accuracy",
        "As the scorer computed it: score = round(0.5 × time score",
        "## Objectives",
        "| Recovery time | RTO 2m00s | TTR 2m30s | **no** |",
        "| Data loss | RPO 5.0s | 900ms | yes |",
        "| Time to detect | no objective | TTD 640ms | — |",
        "## Timeline",
        "| +3.0s | **fault lose-disks: kill → etcd-2, etcd-3** |",
        "**steady state restored (TTR 2m30s)**",
        "## Faults",
        "| `lose-disks` | kill | +3.0s | etcd-2, etcd-3 | no |",
        "## Runbook `runbooks/etcd-restore.md`",
        &format!("| 2 | {FAILED_STEP} | **failed** | 2.3s | not checked |"),
        &format!("### Step 2 “{FAILED_STEP}” (line 14) — failed"),
        "Failed: exit code 1 (expected 0).",
        FAILED_COMMAND,
        FAILED_OUTPUT,
        "## Follow-ups",
        &format!(
            "- [ ] Runbook step 2 “{FAILED_STEP}” (line 14) failed (exit code 1 (expected 0))"
        ),
        "- [ ] Recovery took 2m30s, over the RTO of 2m00s",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in\n{text}");
    }
    // The failure's output sits in a fenced block, after the command.
    let command_at = text.find(FAILED_COMMAND).unwrap();
    let output_at = text.find(FAILED_OUTPUT).unwrap();
    assert!(command_at < output_at, "{text}");
    // The recover step failed because of the runbook: one follow-up, not two.
    assert!(!text.contains("Drill step “restore” failed"), "{text}");
    // Steps that succeeded do not dump their output.
    assert!(!text.contains("is healthy: committed proposal"), "{text}");
}

#[test]
fn markdown_keeps_table_cells_and_fences_intact() {
    let mut journal = sample_journal_for_docs();
    journal.faults[0].detail = "a | b\nc".into();
    let runbook = journal.runbook.as_mut().unwrap();
    runbook.steps[1].output_tail = "```\nnot the end of the block\n```".into();
    runbook.steps[1].title = "Restore <b>*all*</b> members".into();
    let text = markdown(&journal);
    assert!(text.contains("| a \\| b c |"), "{text}");
    // The output's own ``` cannot close the fence around it.
    assert!(
        text.contains("````text\n```\nnot the end of the block\n```\n````"),
        "{text}"
    );
    // Titles are text, not markup, in the tables and in the headings.
    assert!(!text.contains("Restore <b>"), "{text}");
    assert!(
        text.contains(r"### Step 2 “Restore \<b>\*all\*\</b> members” (line 14)"),
        "{text}"
    );
}

#[test]
fn html_is_self_contained_escaped_and_names_the_failed_step() {
    let text = html(&sample_journal_for_docs());
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    assert!(text.trim_end().ends_with("</html>"));
    for wanted in [
        "<svg id=\"timeline\"",
        "<rect class=\"bar s-failed\" data-step=\"restore\"",
        "<rect class=\"bar s-ok\" data-step=\"lose-disks\"",
        "class=\"mark m-fault\"",
        "class=\"mark m-recover\"",
        "class=\"mark m-rto\"",
        "class=\"mark m-detect\"",
        "<rect class=\"h-failed\"",
        "<rect class=\"h-ok\"",
        FAILED_STEP,
        // Ids in text stay whole: no break at their hyphens.
        "<span class=\"nw\">etcd-2,</span> <span class=\"nw\">etcd-3</span>",
        "score = 0.5 × 80 + 0.5 × 66.7 = 73.4 → rounded 73",
        "As the scorer computed it:",
        "Recovery took 2m30s, over the RTO of 2m00s",
        // Output and command, escaped.
        "Error: data-dir &quot;/tmp/firedrill/etcd/2&quot; exists",
        "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; friends",
        "etcdctl snapshot restore &quot;$WORKDIR/snap.db&quot;",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?}");
    }
    assert!(!text.contains("<script"), "step output must be escaped");
    for external in ["src=", "href=", "@import", "url(", "http://", "https://"] {
        assert!(
            !text.contains(external),
            "{external} makes the page depend on the network"
        );
    }
}

#[test]
fn html_escapes_every_journal_string() {
    let mut journal = sample_journal_for_docs();
    let nasty = "<img src=x onerror=alert(1)>\"'&";
    journal.drill = nasty.into();
    journal.run_id = nasty.into();
    journal.reason = nasty.into();
    journal.steps[0].id = nasty.into();
    journal.steps[0].detail = nasty.into();
    journal.faults[0].targets = vec![nasty.into()];
    journal.health.push(ProbeSample {
        at_ms: 5,
        probe: nasty.into(),
        ok: false,
    });
    let runbook = journal.runbook.as_mut().unwrap();
    runbook.path = nasty.into();
    runbook.steps[1].title = nasty.into();
    runbook.steps[1].note = Some(nasty.into());
    runbook.steps[1].deviation = Some(nasty.into());
    let text = html(&journal);
    assert!(!text.contains("<img"), "unescaped text in the page");
    assert!(text.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
    assert_eq!(escape_html("a\u{1b}[31mb"), "a\u{fffd}[31mb");
}

#[test]
fn junit_parses_back_with_a_case_per_step_and_the_failure_output() {
    let journal = sample_journal_for_docs();
    let xml = junit(&journal);
    let report = Report::deserialize_from_str(&xml).expect("junit.xml parses as JUnit");
    assert_eq!(report.test_suites.len(), 1, "one suite per drill");
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), "etcd-quorum-loss");

    let names: Vec<&str> = suite
        .test_cases
        .iter()
        .map(|case| case.name.as_str())
        .collect();
    for step in &journal.steps {
        assert!(
            names.contains(&step.id.as_str()),
            "no case for step {}: {names:?}",
            step.id
        );
    }
    let runbook_case = |title: &str| {
        suite
            .test_cases
            .iter()
            .find(|case| case.name.as_str().ends_with(title))
            .unwrap_or_else(|| panic!("no case for runbook step {title}: {names:?}"))
    };
    for step in &journal.runbook.as_ref().unwrap().steps {
        runbook_case(&step.title);
    }

    let failed = runbook_case(FAILED_STEP);
    assert_eq!(
        failed.classname.as_ref().map(|c| c.as_str()),
        Some("etcd-quorum-loss.runbook")
    );
    match &failed.status {
        TestCaseStatus::NonSuccess {
            kind,
            message,
            description,
            ..
        } => {
            assert_eq!(*kind, NonSuccessKind::Failure);
            assert_eq!(
                message.as_ref().unwrap().as_str(),
                "exit code 1 (expected 0)"
            );
            let description = description.as_ref().unwrap().as_str();
            assert!(description.contains(FAILED_OUTPUT), "{description}");
            assert!(description.contains(FAILED_COMMAND), "{description}");
            assert!(description.contains("<script>alert('pwned')</script> & friends"));
        }
        other => panic!("failed runbook step reported as {other:?}"),
    }
    // CI viewers read `skipped=` on the suite (and `<skipped/>` in the case),
    // not `disabled=`, which means a test switched off in the source.
    let skipped_count = suite
        .test_cases
        .iter()
        .filter(|case| matches!(case.status, TestCaseStatus::Skipped { .. }));
    assert!(
        xml.contains(&format!(" skipped=\"{}\"", skipped_count.count())),
        "{xml}"
    );
    assert!(xml.contains(" disabled=\"0\""), "{xml}");
    assert!(xml.contains("<skipped"), "{xml}");
    let skipped = suite
        .test_cases
        .iter()
        .find(|case| case.name.as_str() == "check-markers");
    assert!(matches!(
        skipped.unwrap().status,
        TestCaseStatus::Skipped { .. }
    ));
    let ok = suite
        .test_cases
        .iter()
        .find(|case| case.name.as_str() == "snapshot");
    assert!(matches!(ok.unwrap().status, TestCaseStatus::Success { .. }));
    // The drill step, the RTO and the score: each a failure CI can show.
    assert!(suite.failures >= 4, "failures = {}", suite.failures);
    let rto = suite
        .test_cases
        .iter()
        .find(|case| case.name.as_str() == "recovered within RTO");
    assert!(matches!(
        rto.unwrap().status,
        TestCaseStatus::NonSuccess { .. }
    ));
}

#[test]
fn json_is_the_journal() {
    let journal = sample_journal_for_docs();
    let back: Journal = serde_json::from_str(&json(&journal)).unwrap();
    assert_eq!(back, journal);
    assert!(render(&journal, ReportFormat::Json).ends_with("}\n"));
}

#[test]
fn write_all_writes_the_three_reports_and_leaves_the_journal_to_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let journal = sample_journal_for_docs();
    write_all(&run_dir, &journal).unwrap();
    assert_eq!(
        std::fs::read_to_string(run_dir.join("report.md")).unwrap(),
        markdown(&journal)
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("report.html")).unwrap(),
        html(&journal)
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("junit.xml")).unwrap(),
        junit(&journal)
    );
    assert!(!run_dir.join("journal.json").exists());
    let mut left: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["junit.xml", "report.html", "report.md"],
        "no temporary files left"
    );
}

#[test]
fn follow_ups_list_non_idempotent_and_manual_steps() {
    let journal = passing_with_runbook();
    let items = facts::follow_ups(&journal);
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        items[0].contains("“Restore the snapshot on every member” (line 14) is not safe to re-run")
    );
    assert!(items[1].contains("“Tell #incidents the database is back” (line 40) is manual"));
    let md = markdown(&journal);
    assert!(
        md.contains("| 2 | Restore the snapshot on every member | ok | 2.3s | **no** |"),
        "{md}"
    );
    assert!(
        md.contains("| 3 | Tell #incidents the database is back | **unverified** |"),
        "{md}"
    );
    let suite = &Report::deserialize_from_str(&junit(&journal))
        .unwrap()
        .test_suites[0];
    let restore = suite
        .test_cases
        .iter()
        .find(|case| case.name.as_str().ends_with(FAILED_STEP))
        .unwrap();
    match &restore.status {
        TestCaseStatus::NonSuccess { ty, .. } => {
            assert_eq!(ty.as_ref().unwrap().as_str(), "not-idempotent")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_deviation_and_a_note_reach_every_format() {
    let mut journal = passing_with_runbook();
    let step = &mut journal.runbook.as_mut().unwrap().steps[0];
    step.status = crate::journal::RunbookStepStatus::Deviated;
    step.deviation = Some("kill -9 $(pgrep etcd)".into());
    step.note = Some("systemctl is not on this host".into());
    assert!(
        markdown(&journal).contains("The operator ran instead:\n\n```sh\nkill -9 $(pgrep etcd)")
    );
    assert!(markdown(&journal).contains("Operator's note: systemctl is not on this host"));
    assert!(html(&journal).contains("kill -9 $(pgrep etcd)"));
    assert!(junit(&journal).contains("operator ran instead:\nkill -9 $(pgrep etcd)"));
    assert!(
        facts::follow_ups(&journal)
            .iter()
            .any(|item| item.contains("deviated"))
    );
}

#[test]
fn aborted_runs_and_runs_without_a_runbook_render() {
    let journal = aborted();
    let md = markdown(&journal);
    assert!(
        md.contains("# Drill report: payments-db-failover — ABORTED"),
        "{md}"
    );
    assert!(md.contains("not recovered → score 0"), "{md}");
    assert!(
        md.contains("| `restore` | recover | +4.0s | 8.0s | interrupted |"),
        "{md}"
    );
    assert!(html(&journal).contains("<text class=\"not-run\""));
    let suite = &Report::deserialize_from_str(&junit(&journal))
        .unwrap()
        .test_suites[0];
    assert!(
        suite.errors >= 2,
        "interrupted step and the abort are errors"
    );

    let journal = without_runbook();
    let md = markdown(&journal);
    assert!(md.contains("No runbook: recovery was a command."), "{md}");
    assert!(
        md.contains("no runbook, so score = time score = 100 → 100"),
        "{md}"
    );
    assert!(md.contains("None: every step ran as written"), "{md}");
    assert!(html(&journal).contains("<svg id=\"timeline\""));
    Report::deserialize_from_str(&junit(&journal)).unwrap();
}

#[test]
fn an_empty_journal_from_a_dead_run_renders_without_panicking() {
    let journal: Journal = serde_json::from_str(
        r#"{"drill":"","run_id":"","verdict":"error","score":0,"time_score":0,
            "runbook_accuracy":null,"recovered":false,"complete":false,"seed":0,
            "ttd_ms":null,"ttr_ms":null,"rto_ms":0,"data_loss_ms":null,"rpo_ms":null,
            "steps":[],"faults":[],"runbook":null}"#,
    )
    .unwrap();
    assert!(markdown(&journal).contains("Nothing was recorded."));
    assert!(html(&journal).contains("<svg id=\"timeline\""));
    Report::deserialize_from_str(&junit(&journal)).unwrap();
    assert_eq!(journal.verdict, Verdict::Error);
}

#[test]
fn the_health_band_follows_each_probes_latest_result() {
    let mut journal = without_runbook();
    let sample = |at_ms, probe: &str, ok| ProbeSample {
        at_ms,
        probe: probe.into(),
        ok,
    };
    journal.health = vec![
        sample(100, "a", true),
        sample(150, "b", true),
        sample(200, "a", false),
        sample(300, "b", true),
        sample(400, "a", true),
    ];
    let bands: Vec<_> = facts::health_segments(&journal, 1_000)
        .into_iter()
        .map(|segment| (segment.from_ms, segment.to_ms, segment.health))
        .collect();
    assert_eq!(
        bands,
        [
            (100, 150, Health::Unknown),
            (150, 200, Health::Healthy),
            (200, 400, Health::Unhealthy),
            (400, 1_000, Health::Healthy),
        ]
    );
}

#[test]
fn the_timeline_is_in_time_order_with_unstarted_steps_last() {
    let journal = sample_journal_for_docs();
    let entries = facts::timeline(&journal);
    let started: Vec<u64> = entries.iter().filter_map(|entry| entry.at_ms).collect();
    assert!(
        started.windows(2).all(|pair| pair[0] <= pair[1]),
        "{started:?}"
    );
    let last = entries.last().unwrap();
    assert_eq!(
        (last.at_ms, last.event.as_str()),
        (None, "step check-markers (probe)")
    );
    assert!(
        entries
            .iter()
            .any(|entry| entry.event == "first failed probe: cluster-healthy (TTD 640ms)")
    );
    assert_eq!(
        journal
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .count(),
        1
    );
}

#[test]
fn accuracy_counts_agree_with_the_recorded_accuracy() {
    // All three steps recorded: 2 of 3, as the scorer said (66.7%).
    let journal = sample_journal_for_docs();
    assert_eq!(facts::accuracy_counts(&journal), Some((2, 3)));

    // The runbook stopped at its failed 2nd step of 4 and only 2 were recorded:
    // the scorer's 25% means 1 of 4, not 1 of 2.
    let mut journal = sample_journal_for_docs();
    journal.runbook_accuracy = Some(25.0);
    journal.runbook.as_mut().unwrap().steps.truncate(2);
    assert_eq!(facts::accuracy_counts(&journal), Some((1, 4)));
    assert!(markdown(&journal).contains("25% (1 of 4 executable runbook steps"));

    // An old journal without a recorded accuracy: counted from the steps.
    journal.runbook_accuracy = None;
    assert_eq!(facts::accuracy(&journal), Some(50.0));
    assert_eq!(facts::accuracy_counts(&without_runbook()), None);
}

#[test]
fn failed_steps_are_said_in_words_not_rust() {
    let mut journal = sample_journal_for_docs();
    journal.steps[0].status = StepStatus::Failed;
    journal.steps[0].attempts = 2;
    journal.steps[0].exit_code = Some(3);
    let text = failed_steps(&journal);
    let first = format!(
        "step {} ({}): failed after 2 attempts, exit code 3: ",
        journal.steps[0].id, journal.steps[0].action
    );
    assert!(text.starts_with(&first), "{text}");
    // The restore step has no exit code; the runbook step has one.
    assert!(
        text.contains(
            "step restore (recover): failed after 1 attempt, no exit code (ended by a signal): "
        ),
        "{text}"
    );
    assert!(
        text.contains("(Restore the snapshot on every member, line 14): exit code 1: "),
        "{text}"
    );
    for rust in ["Some(", "None", "attempt(s)", "Failed after"] {
        assert!(!text.contains(rust), "{rust} in {text}");
    }
}
