//! Scoring long runs: `score::journal` on synthetic event streams of 1k, 10k
//! and 100k events (mostly probe samples, as a long run's are), and reading
//! the same stream back from `events.jsonl` first, as `firedrill report` and
//! `firedrill history` do.

mod harness;

use firedrill::event::{Event, EventKind, ProbeRole, read_events};
use firedrill::journal::{RunbookStepStatus, StepStatus, Verdict};
use firedrill::score::{self, Ending};
use harness::Bench;

const STEADY: [&str; 2] = ["healthy", "port-open"];

/// A run of exactly `total` events: started, steps with a fault and a
/// runbook-driven recovery among them, monitored steady-state and guard
/// probes throughout (failing between the fault and the recovery), the
/// recovery check, the data-loss read, finished.
fn events(total: usize) -> Vec<Event> {
    assert!(total >= 100, "a synthetic run has at least 100 events");
    let mut kinds = Vec::with_capacity(total);
    kinds.push(EventKind::RunStarted {
        drill: "bench".into(),
        run_id: "20261201T000000Z-bench-0000".into(),
        seed: 7,
        scenario: "scenarios/bench.yaml".into(),
        target: "local".into(),
        run_dir: "/tmp/bench/run".into(),
        workdir: "/tmp/bench/run/work".into(),
        pid: 1,
        pid_started: None,
        boot_id: None,
        rto_ms: 60_000,
        rpo_ms: Some(5_000),
        min_score: 70,
        steady_state: STEADY.iter().map(|s| s.to_string()).collect(),
        has_data: true,
        expect_outage: true,
        options: None,
        files: Vec::new(),
    });
    // The body, minus the fixed events at the start and the end.
    let body = total - 1 - 5;
    let fault_at = body / 4;
    let recovered_at = body / 2;
    let runbook_event = |i: usize| i % 20 == 3 && i > fault_at + 1 && i < recovered_at;
    // Every fourth runbook event is the second run of the step before it,
    // checking that it is idempotent.
    let runbook_events = (0..body).filter(|&i| runbook_event(i)).count();
    let executable = runbook_events - runbook_events / 4;
    let mut step = 0usize;
    let mut runbook_events_so_far = 0usize;
    let mut runbook_steps = 0usize;
    for i in 0..body {
        let kind = if i == fault_at {
            EventKind::FaultInjected {
                step: "break".into(),
                kind: "kill".into(),
                targets: vec!["web".into()],
                detail: "signal SIGKILL".into(),
                undo: None,
                interrupted: false,
            }
        } else if i == fault_at + 1 {
            EventKind::RunbookStarted {
                step: "fix".into(),
                path: "runbooks/restore.md".into(),
                executable,
                total: executable + 3,
                manual: false,
                titles: Vec::new(),
            }
        } else if runbook_event(i) {
            let second = runbook_events_so_far % 4 == 3;
            runbook_events_so_far += 1;
            if !second {
                runbook_steps += 1;
            }
            let index = runbook_steps - 1;
            EventKind::RunbookStep {
                step: "fix".into(),
                index,
                title: format!("Restore part {index}"),
                line: 10 + index,
                status: RunbookStepStatus::Ok,
                duration_ms: 120,
                exit_code: Some(0),
                command: format!("systemctl restart part-{index}"),
                output_tail: "done\n".into(),
                detail: String::new(),
                idempotent: second.then_some(true),
                note: None,
                deviation: None,
            }
        } else if i % 10 == 0 {
            step += 1;
            EventKind::StepStarted {
                step: format!("s{step}"),
                action: "run".into(),
                attempt: 1,
                summary: format!("echo {step}"),
            }
        } else if i % 10 == 1 {
            EventKind::StepFinished {
                step: format!("s{step}"),
                action: if step.is_multiple_of(50) {
                    "recover"
                } else {
                    "run"
                }
                .into(),
                status: StepStatus::Ok,
                duration_ms: 15,
                attempts: 1,
                exit_code: Some(0),
                detail: String::new(),
                output_tail: format!("{step}\n"),
            }
        } else {
            let down = i > fault_at && i < recovered_at;
            let (probe, role) = match i % 3 {
                0 => (STEADY[0], ProbeRole::Steady),
                1 => (STEADY[1], ProbeRole::Steady),
                _ => ("disk-not-full", ProbeRole::Guard),
            };
            let ok = role == ProbeRole::Guard || !down;
            EventKind::Probe {
                probe: probe.into(),
                role,
                ok,
                detail: if ok {
                    String::new()
                } else {
                    "connection refused".into()
                },
            }
        };
        kinds.push(kind);
    }
    kinds.push(EventKind::StepFinished {
        step: "fix".into(),
        action: "recover".into(),
        status: StepStatus::Ok,
        duration_ms: 30_000,
        attempts: 1,
        exit_code: Some(0),
        detail: String::new(),
        output_tail: String::new(),
    });
    kinds.push(EventKind::RecoveryChecked {
        ok: true,
        detail: String::new(),
        after_rerun: false,
    });
    kinds.push(EventKind::DataLoss {
        loss_ms: Some(1_200),
        last_heartbeat_ms: Some(1_764_547_200_000),
        detail: String::new(),
    });
    kinds.push(EventKind::FaultReverted {
        step: "break".into(),
        kind: "kill".into(),
        ok: true,
        detail: String::new(),
    });
    kinds.push(EventKind::RunFinished {
        verdict: Verdict::Passed,
        reason: "recovered".into(),
        interrupted: false,
    });
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            // One event every 10 ms of a run that started at midnight.
            let at_ms = i as u64 * 10;
            Event {
                at_ms,
                time: format!(
                    "2026-12-01T{:02}:{:02}:{:02}.{:03}Z",
                    at_ms / 3_600_000,
                    at_ms / 60_000 % 60,
                    at_ms / 1000 % 60,
                    at_ms % 1000
                ),
                kind,
            }
        })
        .collect()
}

fn main() {
    let mut bench = Bench::from_args("score: events to journal");
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    };
    for total in [1_000usize, 10_000, 100_000] {
        let stream = events(total);
        assert_eq!(stream.len(), total);
        // The stream is a run that recovered: the journal must say so, or
        // the benchmark measures an early exit.
        let journal = score::journal(&stream, &Ending::Completed);
        assert!(journal.recovered, "synthetic run not recovered");
        assert!(journal.ttr_ms.is_some() && journal.ttd_ms.is_some());
        assert!(
            journal
                .runbook
                .as_ref()
                .is_some_and(|r| !r.steps.is_empty())
        );

        let label = format!("{}k", total / 1000);
        bench.run(
            &format!("journal/{label}-events"),
            total as u64,
            "events",
            || score::journal(&stream, &Ending::Completed),
        );

        let path = dir.path().join(format!("events-{total}.jsonl"));
        let mut text = String::new();
        for event in &stream {
            match serde_json::to_string(event) {
                Ok(line) => text.push_str(&line),
                Err(error) => panic!("cannot serialize an event: {error}"),
            }
            text.push('\n');
        }
        if let Err(error) = std::fs::write(&path, text) {
            panic!("cannot write {}: {error}", path.display());
        }
        match read_events(&path) {
            Ok(read) => assert_eq!(read, stream, "events.jsonl does not round-trip"),
            Err(error) => panic!("cannot read {}: {error}", path.display()),
        }
        bench.run(
            &format!("read_events+journal/{label}-events"),
            total as u64,
            "events",
            || read_events(&path).map(|read| score::journal(&read, &Ending::Completed)),
        );
    }
    bench.finish();
}
