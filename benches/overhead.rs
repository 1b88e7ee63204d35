//! firedrill's own share of a drill's time, from the events of real runs of
//! the shipped local drills through the built binary:
//!
//! - start-up and exit: the process's wall time minus the run clock at
//!   `run_finished` (loading, the runtime, the last records, the exit);
//! - readiness lag: per service, how long before the ready probe's passing
//!   check no check was running (`service_ready`'s `unwatched_ms`): what
//!   the polling can have added to the wait; the largest (services start
//!   together);
//! - recovery-check lag: each `recovery_checked` minus the last event before
//!   it that is not a passing probe (the recovery's last step, or the last
//!   failed check): how late the steady state was seen back;
//! - teardown tail: `run_finished` minus the last measurement
//!   (`recovery_checked` or `data_loss`): evidence, reverts, ending the
//!   services, the sweep.
//!
//! Their sum over the wall time is firedrill's share of the run. A drill
//! whose tools are not installed (`etcd`, `python3`) is skipped with a
//! message. `cargo bench --bench overhead`; `FIREDRILL_BENCH_ROUNDS=N` runs
//! each drill N times (default 5) and reports medians.

mod runs;

use std::path::Path;

use firedrill::event::{Event, EventKind, ProbeRole, read_events};

/// The shipped local drills, and the programs each needs.
const DRILLS: &[(&str, &[&str])] = &[
    ("scenarios/web-restore.yaml", &["python3", "tar"]),
    ("scenarios/etcd-quorum-loss.yaml", &["etcd", "etcdctl"]),
];

/// firedrill's own parts of one run, in ms.
#[derive(Default)]
struct Overhead {
    wall: f64,
    start_exit: f64,
    readiness: f64,
    recovery_check: f64,
    teardown: f64,
}

impl Overhead {
    fn own(&self) -> f64 {
        self.start_exit + self.readiness + self.recovery_check + self.teardown
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// What the events of one run say about firedrill's own time.
fn overhead(events: &[Event], wall_ms: f64) -> Overhead {
    let finished = events
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::RunFinished { .. }))
        .map_or(0, |e| e.at_ms);
    let readiness = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ServiceReady { unwatched_ms, .. } => Some(unwatched_ms),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut recovery_check = 0;
    for (i, event) in events.iter().enumerate() {
        if !matches!(event.kind, EventKind::RecoveryChecked { .. }) {
            continue;
        }
        let before = events[..i].iter().rev().find(|e| {
            !matches!(
                e.kind,
                EventKind::Probe { ok: true, .. }
                    | EventKind::Probe {
                        role: ProbeRole::Guard,
                        ..
                    }
            )
        });
        recovery_check += before.map_or(0, |e| event.at_ms.saturating_sub(e.at_ms));
    }
    let last_measurement = events
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e.kind,
                EventKind::RecoveryChecked { .. } | EventKind::DataLoss { .. }
            )
        })
        .map_or(finished, |e| e.at_ms);
    Overhead {
        wall: wall_ms,
        start_exit: (wall_ms - finished as f64).max(0.0),
        readiness: readiness as f64,
        recovery_check: recovery_check as f64,
        teardown: finished.saturating_sub(last_measurement) as f64,
    }
}

fn main() {
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let rounds = runs::rounds();
    let root = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    };
    let mut rows = Vec::new();
    for (drill, needs) in DRILLS {
        if filter.as_ref().is_some_and(|f| !drill.contains(f.as_str())) {
            continue;
        }
        if let Some(missing) = needs.iter().find(|program| !on_path(program)) {
            println!("{drill}: skipped, `{missing}` is not installed");
            continue;
        }
        let mut measured = Vec::new();
        for round in 0..rounds {
            let run_dir = root.path().join(format!(
                "{}-{round}",
                Path::new(drill).file_stem().unwrap_or_default().display()
            ));
            let (wall, code) = runs::firedrill_run(Path::new(drill), &run_dir);
            if code != 0 {
                let journal = std::fs::read_to_string(run_dir.join("journal.json"))
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
                let reason = journal
                    .as_ref()
                    .and_then(|j| j["reason"].as_str())
                    .unwrap_or("no journal");
                println!("{drill}: exit {code}, not a passing run: {reason}");
            }
            let events = match read_events(&run_dir.join("events.jsonl")) {
                Ok(events) => events,
                Err(error) => panic!("{drill}: cannot read its events: {error}"),
            };
            measured.push(overhead(&events, wall.as_secs_f64() * 1000.0));
        }
        rows.push((drill, measured));
    }
    println!();
    println!("## firedrill's own time in the shipped local drills ({rounds} runs each, medians)");
    println!();
    println!(
        "| drill | wall | start-up + exit | readiness lag | recovery-check lag | teardown tail | own share |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (drill, measured) in rows {
        let pick = |f: fn(&Overhead) -> f64| {
            let mut values: Vec<f64> = measured.iter().map(f).collect();
            runs::median(&mut values)
        };
        let share = pick(|o| 100.0 * o.own() / o.wall.max(1.0));
        println!(
            "| `{drill}` | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {share:.1}% |",
            pick(|o| o.wall),
            pick(|o| o.start_exit),
            pick(|o| o.readiness),
            pick(|o| o.recovery_check),
            pick(|o| o.teardown),
        );
    }
    println!();
}
