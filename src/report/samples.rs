//! Sample journals: one for documentation and the browser check, and the
//! shapes of run the unit tests render (passing, failed, aborted, no runbook).

use crate::journal::{
    FaultRecord, Journal, ProbeSample, RunbookRecord, RunbookStepRecord, RunbookStepStatus,
    StepRecord, StepStatus, Verdict,
};

/// A realistic failed run for documentation, screenshots and tests: an etcd
/// quorum loss where the 2nd of 3 runbook steps failed (its output contains
/// `<script>` to prove escaping), recovery took longer than the RTO, and the
/// score fell below the minimum.
pub fn sample_journal_for_docs() -> Journal {
    let step = |id: &str, action: &str, status, started_ms, duration_ms, detail: &str| StepRecord {
        id: id.to_string(),
        action: action.to_string(),
        status,
        started_ms,
        duration_ms,
        attempts: 1,
        exit_code: (action == "run").then_some(0),
        detail: detail.to_string(),
        output_tail: String::new(),
    };
    let mut health = Vec::new();
    // Background monitoring starts at the first fault (3.0s) and polls every second.
    for at_ms in (3_000..=160_000).step_by(1_000) {
        // markers-readable is first polled half a second later, so the band starts grey.
        let recovered = at_ms >= 153_300;
        health.push(ProbeSample {
            at_ms: at_ms + 640,
            probe: "cluster-healthy".into(),
            ok: recovered,
        });
        if at_ms == 3_000 {
            health.push(ProbeSample {
                at_ms: 3_000,
                probe: "cluster-healthy".into(),
                ok: true,
            });
        }
        health.push(ProbeSample {
            at_ms: at_ms + 800,
            probe: "markers-readable".into(),
            ok: recovered,
        });
    }
    health.sort_by_key(|sample| sample.at_ms);
    let mut restore = step(
        "restore",
        "recover",
        StepStatus::Failed,
        Some(4_000),
        149_000,
        "runbook step 2 “Restore the snapshot on every member” failed",
    );
    restore.exit_code = None;
    Journal {
        drill: "etcd-quorum-loss".into(),
        run_id: "20250314T101500Z-etcd-quorum-loss".into(),
        verdict: Verdict::Failed,
        score: 73,
        time_score: 80,
        runbook_accuracy: Some(66.7),
        recovered: true,
        complete: true,
        outage_observed: Some(true),
        expect_outage: true,
        seed: 42,
        ttd_ms: Some(640),
        ttr_ms: Some(150_300),
        rto_ms: 120_000,
        data_loss_ms: Some(900),
        rpo_ms: Some(5_000),
        data_loss_detail: Some("last heartbeat 1741947302100, first fault at 1741947303000".into()),
        min_score: 80,
        reason: "score 73 is below the minimum of 80".into(),
        formula: "0.5 × 80 + 0.5 × 66.7 = 73.3 → 73".into(),
        scenario: "scenarios/etcd-quorum-loss.yaml".into(),
        target: "local".into(),
        started_at: "2025-03-14T10:15:00Z".into(),
        duration_ms: 161_200,
        first_fault_ms: Some(3_000),
        steps: vec![
            step("start-cluster", "run", StepStatus::Ok, Some(0), 2_100, ""),
            step("write-markers", "run", StepStatus::Ok, Some(2_100), 400, ""),
            step("snapshot", "run", StepStatus::Ok, Some(2_500), 310, ""),
            step("lose-disks", "fault", StepStatus::Ok, Some(3_000), 120, "killed etcd-2, etcd-3"),
            step("wait-for-alarm", "probe", StepStatus::Ok, Some(3_120), 700, ""),
            restore,
            step("check-markers", "probe", StepStatus::Skipped, None, 0, "needs `restore`, which failed"),
            step("final-health", "probe", StepStatus::Ok, Some(153_200), 6_000, ""),
        ],
        faults: vec![FaultRecord {
            step: "lose-disks".into(),
            kind: "kill".into(),
            targets: vec!["etcd-2".into(), "etcd-3".into()],
            reverted: false,
            started_ms: Some(3_000),
            detail: "signal KILL; data dirs deleted".into(),
        }],
        runbook: Some(RunbookRecord {
            path: "runbooks/etcd-restore.md".into(),
            by_hand: Vec::new(),
            steps: vec![
                RunbookStepRecord {
                    title: "Stop the surviving member".into(),
                    line: 5,
                    status: RunbookStepStatus::Ok,
                    duration_ms: 820,
                    exit_code: Some(0),
                    output_tail: "etcd-1 stopped".into(),
                    idempotent: None,
                    second_run_output: None,
                    command: "systemctl --user stop etcd-1 || kill \"$(cat \"$DATA/1.pid\")\"".into(),
                    detail: String::new(),
                    note: None,
                    deviation: None,
                    started_ms: Some(4_100),
                    second_run_started_ms: None,
                    second_run_duration_ms: None,
                },
                RunbookStepRecord {
                    title: "Restore the snapshot on every member".into(),
                    line: 14,
                    status: RunbookStepStatus::Failed,
                    duration_ms: 2_310,
                    exit_code: Some(1),
                    output_tail: "restoring snapshot to /tmp/firedrill/etcd/1\n\
                        Error: data-dir \"/tmp/firedrill/etcd/2\" exists\n\
                        <script>alert('pwned')</script> & friends"
                        .into(),
                    idempotent: None,
                    second_run_output: None,
                    command: "for n in 1 2 3; do\n  etcdctl snapshot restore \"$WORKDIR/snap.db\" --data-dir \"$DATA/$n\"\ndone"
                        .into(),
                    detail: "exit code 1 (expected 0)".into(),
                    note: None,
                    deviation: None,
                    started_ms: Some(4_920),
                    second_run_started_ms: None,
                    second_run_duration_ms: None,
                },
                RunbookStepRecord {
                    title: "Start the members and wait for quorum".into(),
                    line: 27,
                    status: RunbookStepStatus::Ok,
                    duration_ms: 145_400,
                    exit_code: Some(0),
                    output_tail: "http://127.0.0.1:23791 is healthy: committed proposal".into(),
                    idempotent: None,
                    second_run_output: None,
                    command: "etcdctl --endpoints \"$ENDPOINTS\" endpoint health --cluster".into(),
                    detail: String::new(),
                    note: None,
                    deviation: None,
                    started_ms: Some(7_230),
                    second_run_started_ms: None,
                    second_run_duration_ms: None,
                },
            ],
        }),
        health,
        tta_alert_ms: None,
        tt_ack_ms: None,
        notes: Vec::new(),
        marks: Vec::new(),
        surprise: None,
        workdir_left: Vec::new(),
    }
}

/// A passing run whose runbook has a manual step and a step that is not safe to re-run.
#[cfg(test)]
pub(crate) fn passing_with_runbook() -> Journal {
    let mut journal = sample_journal_for_docs();
    journal.drill = "web-failover".into();
    journal.run_id = "20250301T090000Z-web-failover".into();
    journal.verdict = Verdict::Passed;
    // Step 2 failed its second run, so only step 1 counts as ok: 1 of 2.
    journal.score = 75;
    journal.time_score = 100;
    journal.runbook_accuracy = Some(50.0);
    journal.ttr_ms = Some(41_200);
    journal.min_score = 70;
    journal.reason = "recovered within the RTO with an accurate runbook".into();
    journal.started_at = "2025-03-01T09:00:00Z".into();
    journal.duration_ms = 50_000;
    journal.health.retain(|sample| sample.at_ms < 50_000);
    for sample in &mut journal.health {
        sample.ok = sample.at_ms < 3_640 || sample.at_ms >= 44_200;
    }
    journal.steps.retain(|step| step.id != "check-markers");
    for step in &mut journal.steps {
        step.status = StepStatus::Ok;
        step.detail.clear();
        if step.id == "restore" {
            step.duration_ms = 39_000;
        }
        if step.id == "final-health" {
            step.started_ms = Some(44_300);
            step.duration_ms = 5_000;
        }
    }
    if let Some(runbook) = &mut journal.runbook {
        runbook.path = "runbooks/web-failover.md".into();
        runbook.steps[1].status = RunbookStepStatus::Ok;
        runbook.steps[1].exit_code = Some(0);
        runbook.steps[1].detail.clear();
        runbook.steps[1].output_tail = "restored".into();
        runbook.steps[1].idempotent = Some(false);
        runbook.steps[1].second_run_output =
            Some("Error: data-dir \"/tmp/firedrill/etcd/1\" exists".into());
        // The idempotency re-run, after the recovery was checked.
        runbook.steps[1].second_run_started_ms = Some(44_400);
        runbook.steps[1].second_run_duration_ms = Some(1_500);
        runbook.steps[2] = RunbookStepRecord {
            title: "Tell #incidents the database is back".into(),
            line: 40,
            status: RunbookStepStatus::Unverified,
            duration_ms: 0,
            exit_code: None,
            output_tail: String::new(),
            idempotent: None,
            second_run_output: None,
            command: String::new(),
            detail: String::new(),
            note: None,
            deviation: None,
            started_ms: None,
            second_run_started_ms: None,
            second_run_duration_ms: None,
        };
    }
    journal
}

/// A run aborted by a guard: nothing recovered, the runbook never ran.
#[cfg(test)]
pub(crate) fn aborted() -> Journal {
    let mut journal = sample_journal_for_docs();
    journal.drill = "payments-db-failover".into();
    journal.run_id = "20250302T120000Z-payments-db-failover".into();
    journal.verdict = Verdict::Aborted;
    journal.score = 0;
    journal.time_score = 0;
    journal.runbook_accuracy = Some(0.0);
    journal.recovered = false;
    journal.complete = false;
    journal.ttr_ms = None;
    journal.data_loss_ms = None;
    journal.reason = "guard `payments-up` failed at +12.0s; faults reverted".into();
    journal.duration_ms = 13_000;
    journal.health.retain(|sample| sample.at_ms < 12_000);
    journal.health.push(ProbeSample {
        at_ms: 12_000,
        probe: "payments-up".into(),
        ok: false,
    });
    for step in &mut journal.steps {
        if step.id == "restore" {
            step.status = StepStatus::Interrupted;
            step.duration_ms = 8_000;
            step.detail = "aborted by guard `payments-up`".into();
        } else if step.started_ms.is_none_or(|start| start > 4_000) {
            step.status = StepStatus::Skipped;
            step.started_ms = None;
            step.duration_ms = 0;
        }
    }
    journal.faults[0].reverted = true;
    if let Some(runbook) = &mut journal.runbook {
        for step in &mut runbook.steps[1..] {
            step.status = RunbookStepStatus::Skipped;
            step.exit_code = None;
            step.output_tail.clear();
            step.detail.clear();
            step.duration_ms = 0;
        }
    }
    journal
}

/// A run whose recovery was a command (`recover: {run: ...}`), without data or a detection.
#[cfg(test)]
pub(crate) fn without_runbook() -> Journal {
    let mut journal = passing_with_runbook();
    journal.drill = "cache-restart".into();
    journal.run_id = "20250303T080000Z-cache-restart".into();
    journal.runbook = None;
    journal.runbook_accuracy = None;
    journal.ttd_ms = None;
    journal.data_loss_ms = None;
    journal.rpo_ms = None;
    journal.health.clear();
    journal.score = 100;
    journal
}
