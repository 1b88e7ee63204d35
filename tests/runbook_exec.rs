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

/// The reason line says which expectation fell short, not only which step.
#[test]
fn a_failed_expectation_is_named_in_the_reason() {
    let runbook = GOOD.replace(
        r#"echo "all fine""#,
        r#"touch "$WORKDIR/healthy"; echo "not yet""#,
    );
    let run = run_with_runbook(&runbook, "", &[]);
    assert_eq!(run.code(), 1, "{}", run.explain());
    let reason = run.journal()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("step 3 (Check, line ")
            && reason.contains("failed: stdout does not contain `fine`"),
        "{reason}"
    );
    assert_nothing_left(&run);
}

/// Runs `runbook` with each step log capped at 64 KiB.
fn run_capped(runbook: &str) -> common::Run {
    let dir = with_runbook(runbook, "");
    let output = common::run_command(dir.path())
        .env("FIREDRILL_LOG_LIMIT", "64K")
        .output()
        .unwrap();
    common::Run {
        run_dir: dir.path().join("run"),
        output,
        dir,
    }
}

/// 10 MB of `x`, a line break, `marker`'s lines, 10 MB of `y`: the marker is
/// in the middle of 20 MB, far from what a 64 KiB log keeps.
fn buried(marker: &str) -> String {
    format!(
        r#"test -f "$WORKDIR/healthy"; head -c 10000000 /dev/zero | tr '\0' x; echo; {marker} head -c 10000000 /dev/zero | tr '\0' y"#
    )
}

/// A marker printed in the middle of a huge output, in the part the capped
/// log dropped, is still seen: every byte that goes through the pipe is
/// searched, kept or not. A line regex is matched on every line the same way.
#[test]
fn an_expectation_holds_on_output_the_log_dropped() {
    let runbook = GOOD
        .replace(
            r#"```sh {stdout_contains="fine"}"#,
            r#"```sh {stdout_contains="all fine" stdout_matches="^members: [0-9]+$"}"#,
        )
        .replace(
            r#"test -f "$WORKDIR/healthy" && echo "all fine""#,
            &buried(r#"echo "all fine"; echo "members: 3";"#),
        );
    let run = run_capped(&runbook);
    assert_eq!(run.code(), 0, "{}", run.explain());
    let steps = runbook_steps(&run);
    assert_eq!(steps[2]["status"], "ok", "{:?}", steps[2]);
    let log = std::fs::read(run.run_dir.join("logs/restore.log")).unwrap();
    assert!(
        log.len() < 300_000 && !String::from_utf8_lossy(&log).contains("all fine"),
        "the log dropped the marker: {} bytes",
        log.len()
    );
    assert_nothing_left(&run);
}

/// A marker that is not in the output fails the step, and the reason says
/// the whole output was searched, not only what the log kept.
#[test]
fn an_absent_marker_fails_after_all_the_output_was_searched() {
    let runbook = GOOD.replace(
        r#"test -f "$WORKDIR/healthy" && echo "all fine""#,
        &buried(r#"echo "not yet";"#),
    );
    let run = run_capped(&runbook);
    assert_eq!(run.code(), 1, "{}", run.explain());
    let reason = run.journal()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains(
            "stdout does not contain `fine` (all 20000009 bytes of the output were searched"
        ),
        "{reason}"
    );
    assert_nothing_left(&run);
}

/// A match across lines longer than the context kept between reads is only
/// seen in what the log kept: when it fails on cut output, the reason says
/// so.
#[test]
fn a_long_match_across_lines_on_cut_output_says_what_was_not_seen() {
    let runbook = GOOD
        .replace(
            r#"```sh {stdout_contains="fine"}"#,
            r#"```sh {stdout_matches="all\n+fine"}"#,
        )
        .replace(
            r#"test -f "$WORKDIR/healthy" && echo "all fine""#,
            &buried(r#"echo "all"; head -c 300000 /dev/zero | tr '\0' '\n'; echo "fine";"#),
        );
    let run = run_capped(&runbook);
    assert_eq!(run.code(), 1, "{}", run.explain());
    let reason = run.journal()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("stdout does not match `all\\n+fine`; every line of the output was searched, but the output was truncated (")
            && reason.contains("this pattern can match across lines"),
        "{reason}"
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

/// `run --interactive` in `dir`, its stdin, stdout and stderr piped.
fn spawn_interactive(dir: &std::path::Path) -> std::process::Child {
    run_command(dir)
        .arg("--interactive")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn interactive_answers_come_from_a_pipe() {
    use std::io::Write;
    let dir = with_runbook(STALE, "");
    let run_dir = dir.path().join("run");
    let mut child = spawn_interactive(dir.path());
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
fn ctrl_c_at_an_interactive_prompt_ends_the_run_without_an_answer() {
    use std::io::{BufRead, BufReader};
    let dir = with_runbook(STALE, "");
    let run_dir = dir.path().join("run");
    let mut child = run_command(dir.path())
        .arg("--interactive")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The operator never answers: stdin stays open and empty.
    let _stdin = child.stdin.take().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (prompted_tx, prompted) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut told = false;
        for line in stderr.split(b'>') {
            let Ok(line) = line else { break };
            seen.push_str(&String::from_utf8_lossy(&line));
            if !told && seen.contains("[r]un it") {
                told = true;
                let _ = prompted_tx.send(());
            }
        }
        seen
    });
    assert!(
        prompted
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_ok(),
        "no prompt came"
    );
    common::interrupt(&child);
    // Liveness, not speed: a run held by the unanswered prompt never ends.
    let mut status = None;
    for _ in 0..1200 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("Ctrl-C at the prompt did not end the run: it waits for an answer");
    }
    assert_eq!(status.unwrap().code(), Some(130));
    let stderr = reader.join().unwrap();
    let journal = read_journal(&run_dir);
    assert_eq!(journal["verdict"], "aborted", "{stderr}");
    let left = common::processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn data_loss_is_the_gap_between_the_last_surviving_write_and_the_fault() {
    let run = run_drill(
        r#"
version: 1
name: rpo
objectives: {rto: 30s, rpo: 10s}
data:
  # Written whole (a new file renamed over the old), so a copy never sees it half-written.
  write: date +%s%3N > "$WORKDIR/hb.new" && mv "$WORKDIR/hb.new" "$WORKDIR/hb"
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
  # Written whole (a new file renamed over the old), so a copy never sees it half-written.
  write: date +%s%3N > "$WORKDIR/hb.new" && mv "$WORKDIR/hb.new" "$WORKDIR/hb"
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

/// Reads a pipe into a buffer on a thread of its own.
fn collect(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = buffer.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}

fn text_of(buffer: &std::sync::Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

/// Polls `until` every 50 ms, up to two minutes (a hang, not a timing).
fn eventually(what: &str, mut until: impl FnMut() -> bool) {
    for _ in 0..2400 {
        if until() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never happened: {what}");
}

#[test]
fn interactive_keeps_the_prompt_on_screen_and_ctrl_c_there_exits_at_once() {
    let dir = with_runbook(STALE, "");
    let run_dir = dir.path().join("run");
    let mut child = spawn_interactive(dir.path());
    // The operator is reading step 1 and types nothing; stdin stays open.
    let _stdin = child.stdin.take();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    eventually("the first prompt", || text_of(&stderr).contains("[r]un it"));
    // Meanwhile the monitor polls the failing probe, again and again.
    let failing_polls = || {
        std::fs::read_to_string(run_dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(r#""event":"probe""#) && line.contains(r#""ok":false"#))
            .count()
    };
    let at_prompt = failing_polls();
    eventually("ten more failing polls", || {
        failing_polls() >= at_prompt + 10
    });
    common::interrupt(&child);
    let mut code = None;
    for _ in 0..2400 {
        if let Some(status) = child.try_wait().unwrap() {
            code = Some(status.code());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the run did not exit after Ctrl-C at the prompt (it waits for Enter):\n{}",
            text_of(&stderr)
        );
    }
    assert_eq!(code, Some(Some(130)), "{}", text_of(&stderr));
    let out = text_of(&stdout);
    // One line said the probe started failing; the polls after it said nothing.
    let failing: Vec<&str> = out
        .lines()
        .filter(|line| line.contains("FAILING"))
        .collect();
    assert_eq!(failing.len(), 1, "{out}");
    assert!(failing[0].contains("health: ○ healthy FAILING"), "{out}");
    assert!(failing[0].contains("● passing, ○ failing"), "{out}");
    // The summary came before the exit.
    assert!(out.contains("records:"), "{out}");
}
