//! Runbooks executed exactly as written: accuracy, stop at the first failure,
//! --runbook-continue, the idempotency check, --interactive, and data loss.

mod common;

use common::{
    AWAIT_OUTAGE, assert_nothing_left, firedrill, read_journal, run_command, run_drill, run_in,
    write_drill,
};

/// A directory with a drill whose recovery follows `runbook.md` (with
/// `check` appended to its `recover:`), and that runbook.
fn with_runbook(runbook: &str, check: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runbook.md"), runbook).unwrap();
    write_drill(
        dir.path(),
        &format!(
            r#"
version: 1
name: rb
objectives: {{rto: 30s}}
probes:
  healthy:
    command: test -f "$WORKDIR/healthy"
    interval: 100ms
steady_state: [healthy]
steps:
  - id: setup
    run: touch "$WORKDIR/healthy"
  - id: break
    needs: [setup]
    fault: {{run: 'rm "$WORKDIR/healthy"'}}
  - id: detected
    needs: [break]
    timeout: 1m
    run: |
      {AWAIT_OUTAGE}
  - id: restore
    needs: [detected]
    recover: {{runbook: runbook.md{check}}}
"#
        ),
    );
    dir
}

fn run_with_runbook(runbook: &str, check: &str, args: &[&str]) -> common::Run {
    run_in(with_runbook(runbook, check), args)
}

const GOOD: &str = r#"# Restore health

## Look at the damage

```sh
ls "$WORKDIR"
```

## Put the file back

```sh {exit=0}
touch "$WORKDIR/healthy"
```

## Check

```sh {stdout_contains="fine"}
test -f "$WORKDIR/healthy" && echo "all fine"
```
"#;

const STALE: &str = r#"# Restore health

## Look at the damage

```sh
ls "$WORKDIR"
```

## Put the file back

The old tool was renamed; this runbook was never updated.

```sh
restore-health-tool --all
```

## Check

```sh
touch "$WORKDIR/healthy"
```
"#;

fn runbook_steps(run: &common::Run) -> Vec<serde_json::Value> {
    run.journal()["runbook"]["steps"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_correct_runbook_scores_100() {
    let run = run_with_runbook(GOOD, "", &[]);
    assert_eq!(run.code(), 0, "{}", run.explain());
    let journal = run.journal();
    assert_eq!(journal["runbook_accuracy"], 100.0);
    assert_eq!(journal["complete"], true);
    assert_eq!(journal["runbook"]["path"], "runbook.md");
    let steps = runbook_steps(&run);
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|s| s["status"] == "ok"), "{steps:?}");
    assert_eq!(steps[1]["title"], "Put the file back");
    assert_nothing_left(&run);
}

#[test]
fn a_stale_step_scores_33_and_stops_the_runbook() {
    let run = run_with_runbook(STALE, "", &[]);
    assert_eq!(run.code(), 1, "{}", run.explain());
    let journal = run.journal();
    assert_eq!(journal["runbook_accuracy"], 33.3);
    assert_eq!(journal["recovered"], false);
    let steps = runbook_steps(&run);
    let statuses: Vec<&str> = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "failed", "skipped"]);
    assert_eq!(steps[1]["title"], "Put the file back");
    assert_eq!(steps[1]["exit_code"], 127);
    assert!(
        steps[1]["output_tail"]
            .as_str()
            .unwrap()
            .contains("restore-health-tool"),
        "the error output is kept: {}",
        steps[1]
    );
    assert!(
        steps[1]["command"]
            .as_str()
            .unwrap()
            .contains("restore-health-tool --all")
    );
    let restore = run.step("restore");
    assert!(
        restore["detail"]
            .as_str()
            .unwrap()
            .contains("Put the file back"),
        "{restore}"
    );
    assert_nothing_left(&run);
}

#[test]
fn runbook_continue_runs_the_steps_after_a_failure() {
    let run = run_with_runbook(STALE, "", &["--runbook-continue"]);
    let steps = runbook_steps(&run);
    let statuses: Vec<&str> = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "failed", "ok"]);
    assert_eq!(run.journal()["runbook_accuracy"], 66.7);
    // The third step restored health, but the runbook did not run as written.
    assert_eq!(run.journal()["complete"], false);
}

#[test]
fn the_idempotency_check_flags_steps_that_cannot_run_twice() {
    let runbook = r#"# Rebuild

## Make the data directory

```sh
mkdir "$WORKDIR/data"
```

## Make the state directory safely

```sh
mkdir -p "$WORKDIR/state"
```

## Heal

```sh
touch "$WORKDIR/healthy"
```
"#;
    let run = run_with_runbook(runbook, ", check: idempotent", &[]);
    assert_eq!(run.code(), 0, "{}", run.explain());
    let steps = runbook_steps(&run);
    assert_eq!(steps[0]["idempotent"], false, "{steps:?}");
    assert_eq!(steps[1]["idempotent"], true);
    assert_eq!(steps[2]["idempotent"], true);
    assert!(steps[0]["detail"].as_str().unwrap().contains("second run"));
    // Not checked without `check: idempotent`.
    let plain = run_with_runbook(runbook, "", &[]);
    assert!(runbook_steps(&plain)[0]["idempotent"].is_null());
}

#[test]
fn manual_steps_are_unverified_and_do_not_count() {
    let runbook = r#"# Restore

## Tell the incident channel

Post in #incidents that the restore is starting.

## Heal

```sh
touch "$WORKDIR/healthy"
```
"#;
    let run = run_with_runbook(runbook, "", &[]);
    assert_eq!(run.code(), 0, "{}", run.explain());
    let steps = runbook_steps(&run);
    assert_eq!(steps[0]["status"], "unverified");
    assert_eq!(run.journal()["runbook_accuracy"], 100.0);
}

#[test]
fn interactive_answers_come_from_a_pipe() {
    use std::io::Write;
    let dir = with_runbook(STALE, "");
    let run_dir = dir.path().join("run");
    let mut child = run_command(dir.path())
        .arg("--interactive")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Step 1: run it. Step 2: note, then edit (the tool was renamed). Step 3: run it.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"r\nn\nthe tool was renamed last quarter\ne\ntouch \"$WORKDIR/healthy\"\nr\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let journal = read_journal(&run_dir);
    let steps = journal["runbook"]["steps"].as_array().unwrap();
    let statuses: Vec<&str> = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ok", "deviated", "ok"],
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(steps[1]["note"], "the tool was renamed last quarter");
    assert_eq!(steps[1]["deviation"], "touch \"$WORKDIR/healthy\"");
    assert!(String::from_utf8_lossy(&output.stderr).contains("restore-health-tool --all"));
}

#[test]
fn data_loss_is_the_gap_between_the_last_surviving_write_and_the_fault() {
    let run = run_drill(
        r#"
version: 1
name: rpo
objectives: {rto: 30s, rpo: 10s}
data:
  write: date +%s%3N > "$WORKDIR/hb"
  read: cat "$WORKDIR/hb"
  every: 100ms
steps:
  - id: warm-up
    wait: 500ms
  - id: backup
    needs: [warm-up]
    run: cp "$WORKDIR/hb" "$WORKDIR/hb.backup"
  - id: writes-go-on
    needs: [backup]
    wait: 1s
  - id: lose-it
    needs: [writes-go-on]
    fault: {delete: {path: "${WORKDIR}/hb"}}
  - id: restore
    needs: [lose-it]
    recover: {run: 'cp "$WORKDIR/hb.backup" "$WORKDIR/hb" && cp "$WORKDIR/hb.backup" "${T}/restored"'}
"#,
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    let restored: u64 = std::fs::read_to_string(run.path("restored"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let fault_started = run
        .events()
        .into_iter()
        .find(|e| e["event"] == "step_started" && e["step"] == "lose-it")
        .unwrap();
    let fault_ms = chrono::DateTime::parse_from_rfc3339(fault_started["time"].as_str().unwrap())
        .unwrap()
        .timestamp_millis() as u64;
    let true_gap = fault_ms - restored;
    let measured = run.journal()["data_loss_ms"].as_u64().unwrap();
    assert!(
        measured.abs_diff(true_gap) < 300,
        "measured {measured} ms, true gap {true_gap} ms"
    );
    assert!(measured >= 1000, "{measured}");
    assert_eq!(run.journal()["rpo_ms"], 10000);
}

#[test]
fn data_loss_above_the_rpo_fails_the_drill() {
    let run = run_drill(
        r#"
version: 1
name: rpo-missed
objectives: {rto: 30s, rpo: 200ms}
data:
  write: date +%s%3N > "$WORKDIR/hb"
  read: cat "$WORKDIR/hb"
  every: 100ms
steps:
  - id: backup
    run: sleep 0.3; cp "$WORKDIR/hb" "$WORKDIR/hb.backup"
  - id: writes-go-on
    needs: [backup]
    wait: 1s
  - id: lose-it
    needs: [writes-go-on]
    fault: {delete: {path: "${WORKDIR}/hb"}}
  - id: restore
    needs: [lose-it]
    recover: {run: 'cp "$WORKDIR/hb.backup" "$WORKDIR/hb"'}
"#,
        &[],
    );
    assert_eq!(run.code(), 1, "{}", run.explain());
    let journal = run.journal();
    assert_eq!(journal["verdict"], "failed");
    assert!(
        journal["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("rpo"),
        "{}",
        journal["reason"]
    );
}

#[test]
fn every_report_of_a_failed_run_names_the_failed_step_and_its_error() {
    let run = run_with_runbook(STALE, "", &[]);
    assert_eq!(run.code(), 1, "{}", run.explain());
    for file in ["report.md", "report.html", "junit.xml", "journal.json"] {
        let text = std::fs::read_to_string(run.run_dir.join(file)).unwrap();
        assert!(
            text.contains("Put the file back"),
            "{file} does not name the failed step"
        );
        assert!(
            text.contains("restore-health-tool"),
            "{file} does not show the failed command's error"
        );
    }
    for format in ["md", "html", "json", "junit"] {
        let output = firedrill()
            .args(["report", "--format", format])
            .arg(&run.run_dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "report --format {format}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Put the file back"), "--format {format}");
        assert!(
            text.contains("not found"),
            "--format {format} lacks the error output"
        );
    }
}
