//! `firedrill resume`: a run whose runner was killed is continued from its
//! events: finished steps are kept, faults are not injected twice, what the
//! dead runner left running is ended, and the run finishes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    AWAIT_OUTAGE, alive, firedrill, processes_of_run, read_journal, read_pids, run_command,
    step_of, wait_for, write_drill,
};

/// Runs the drill in `dir` until `marker` exists, then kills the runner
/// without any cleanup, as a crash would. Returns the run directory.
fn run_until_then_kill(dir: &Path, marker: &str) -> PathBuf {
    let mut runner = run_command(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(&dir.join(marker)), "`{marker}` never appeared");
    runner.kill().unwrap();
    runner.wait().unwrap();
    dir.join("run")
}

/// `firedrill resume RUN_DIR` from `dir`: its output, and the text to show
/// when an assertion on it fails.
fn resume(dir: &Path, run_dir: &Path) -> (Output, String) {
    let output = firedrill()
        .current_dir(dir)
        .arg("resume")
        .arg(run_dir)
        .output()
        .unwrap();
    let explain = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, explain)
}

#[test]
fn a_run_whose_runner_died_is_resumed_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &r#"
version: 1
name: resumable
objectives: {rto: 5m}
services:
  app:
    run: echo $$ >> "${T}/service-pids"; exec sleep 1000
probes:
  healthy:
    command: test -f "$WORKDIR/healthy"
    interval: 100ms
steady_state: [healthy]
steps:
  - id: setup
    run: echo "KEY=from-setup" >> "$FIREDRILL_OUTPUT"; touch "$WORKDIR/healthy"
  - id: break
    needs: [setup]
    fault: {run: 'rm "$WORKDIR/healthy"; echo injected >> "${T}/faults"'}
  - id: long
    needs: [break]
    run: |
      if [ -f "${T}/resumed" ]; then AWAIT_OUTAGE; exit 0; fi
      sleep 1000 & echo $! > "${T}/orphan.pid"
      touch "${T}/long-started"
      wait
  - id: fix
    needs: [long]
    recover: {run: 'test "$KEY" = from-setup && touch "$WORKDIR/healthy"'}
"#
        .replace("AWAIT_OUTAGE", AWAIT_OUTAGE),
    );
    let run_dir = run_until_then_kill(dir.path(), "long-started");
    let orphan = read_pids(&dir.path().join("orphan.pid"))[0];
    assert!(
        alive(orphan),
        "the test needs the dead runner's step to survive it"
    );

    std::fs::write(dir.path().join("resumed"), "").unwrap();
    let (output, explain) = resume(dir.path(), &run_dir);
    assert_eq!(output.status.code(), Some(0), "{explain}");
    let journal = read_journal(&run_dir);
    assert_eq!(journal["verdict"], "passed", "{explain}");
    // The fault ran once, before the runner died.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("faults"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    for step in ["setup", "break", "long", "fix"] {
        let record = step_of(&journal, step);
        assert_eq!(record["status"], "ok", "{step}: {record}");
    }
    // The fault's time survived the resume: TTR counts from the original fault.
    assert!(journal["first_fault_ms"].as_u64().is_some());
    assert!(
        !alive(orphan),
        "what the dead runner left running was not ended"
    );
    // The service was restarted, then ended at the end.
    let services = read_pids(&dir.path().join("service-pids"));
    assert_eq!(services.len(), 2, "the service was not restarted");
    assert!(services.iter().all(|pid| !alive(*pid)));
    let left = processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
    // A finished run cannot be resumed again.
    let again = firedrill().arg("resume").arg(&run_dir).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("finished"));
}

#[test]
fn a_fault_interrupted_by_the_runner_dying_is_not_injected_again() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: half-fault
objectives: {rto: 5m}
steps:
  - id: break
    fault: {run: 'echo injected >> "${T}/faults"; touch "${T}/in-fault"; sleep 1000'}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
    );
    let run_dir = run_until_then_kill(dir.path(), "in-fault");
    let (output, explain) = resume(dir.path(), &run_dir);
    let journal = read_journal(&run_dir);
    let record = step_of(&journal, "break");
    assert_eq!(record["status"], "interrupted", "{explain}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("faults"))
            .unwrap()
            .lines()
            .count(),
        1,
        "the fault was injected twice"
    );
    assert_ne!(output.status.code(), Some(0));
    let left = processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn clean_ends_what_a_dead_run_left_and_removes_its_workdir() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: abandoned
objectives: {rto: 5m}
steps:
  - id: long
    run: sleep 1000 & echo $! > "${T}/orphan.pid"; touch "${T}/started"; wait
  - id: break
    needs: [long]
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
    );
    let mut runner = run_command(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(&dir.path().join("started")),
        "the step never started"
    );
    let run_dir = dir.path().join("run");
    // While the runner lives, clean refuses.
    let early = firedrill().arg("clean").arg(&run_dir).output().unwrap();
    assert_eq!(early.status.code(), Some(4));
    runner.kill().unwrap();
    runner.wait().unwrap();
    let orphan = read_pids(&dir.path().join("orphan.pid"))[0];
    assert!(alive(orphan));
    let output = firedrill().arg("clean").arg(&run_dir).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!alive(orphan), "clean left the dead run's process alive");
    assert!(!run_dir.join("work").exists(), "clean left WORKDIR");
}

#[test]
fn a_fault_in_when_the_runner_died_is_reverted_from_its_recorded_undo() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: paused-then-died
objectives: {rto: 5m}
services:
  app:
    run: echo $$ >> "${T}/app.pids"; exec sleep 1000
    ready: {command: 'test -s "${T}/app.pids"', interval: 50ms}
steps:
  - id: freeze
    fault: {pause: {service: app}}
  - id: long
    needs: [freeze]
    run: |
      if [ -f "${T}/resumed" ]; then exit 0; fi
      touch "${T}/long-started"
      sleep 1000
  - id: fix
    needs: [long]
    recover: {run: "true"}
"#,
    );
    let run_dir = run_until_then_kill(dir.path(), "long-started");
    // The dead runner recorded how to undo the pause: the target's typed record.
    let paused = read_pids(&dir.path().join("app.pids"))[0];
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    let recorded = format!(r#""undo":{{"local":{{"resume":{{"pgids":[{paused}]}}}}}}"#);
    assert!(events.contains(&recorded), "{events}");

    std::fs::write(dir.path().join("resumed"), "").unwrap();
    let (output, explain) = resume(dir.path(), &run_dir);
    assert_eq!(output.status.code(), Some(0), "{explain}");
    let journal = read_journal(&run_dir);
    assert_eq!(journal["faults"][0]["kind"], "pause", "{explain}");
    assert_eq!(
        journal["faults"][0]["reverted"], true,
        "{}",
        journal["faults"]
    );
    let detail = journal["faults"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("SIGCONT to process groups [{paused}]")),
        "{detail}"
    );
    let left = processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}
