//! `firedrill resume`: a run whose runner was killed is continued from its
//! events against the world as it is: finished steps are kept, faults are
//! not injected twice and stay in until the runbook fixes them, what the run
//! left running is adopted (only the processes of unfinished steps are
//! ended), and the run finishes.

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
    // The service, alive when the runner died, was adopted (not killed and
    // restarted), then ended at the end.
    let services = read_pids(&dir.path().join("service-pids"));
    assert_eq!(services.len(), 1, "the service was restarted");
    assert!(services.iter().all(|pid| !alive(*pid)));
    let left = processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
    // A finished run cannot be resumed again.
    let again = firedrill().arg("resume").arg(&run_dir).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("finished"));
}

#[test]
fn a_fault_interrupted_by_the_runner_dying_counts_as_injected_and_is_reverted() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: half-fault
objectives: {rto: 5m}
steps:
  - id: break
    fault:
      run: 'echo injected >> "${T}/faults"; touch "${T}/in-fault"; sleep 1000'
      revert: 'echo reverted >> "${T}/reverts"'
  - id: fix
    needs: [break]
    recover: {run: 'touch "${T}/fixed"'}
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
    // The tool's death is not blamed on the system: the recovery ran.
    assert_eq!(step_of(&journal, "fix")["status"], "ok", "{explain}");
    assert!(dir.path().join("fixed").exists());
    assert_eq!(output.status.code(), Some(0), "{explain}");
    assert_eq!(journal["faults"][0]["step"], "break", "{explain}");
    assert_eq!(journal["faults"][0]["reverted"], true, "{explain}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("reverts"))
            .unwrap_or_default()
            .lines()
            .count(),
        1,
        "the interrupted fault was not reverted once"
    );
    assert!(journal["first_fault_ms"].as_u64().is_some(), "{explain}");
    let left = processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

/// A drill whose `long` step holds the run until `${T}/go` exists.
const HELD: &str = r#"
version: 1
name: held
objectives: {rto: 5m}
steps:
  - id: long
    run: 'touch "${T}/long-started"; until [ -f "${T}/go" ]; do sleep 0.05; done'
  - id: break
    needs: [long]
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#;

#[test]
fn a_service_printing_while_no_runner_reads_its_log_is_adopted_and_its_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &HELD.replace(
            "steps:",
            r#"services:
  loud:
    run: |
      echo $$ >> "${T}/service-pids"
      while :; do
        if [ -f "${T}/resumed" ]; then echo after-resume; else echo before; fi
        sleep 0.02
      done
steps:"#,
        ),
    );
    let run_dir = run_until_then_kill(dir.path(), "long-started");
    // It prints with nobody reading its log: a closed pipe would kill it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let service = read_pids(&dir.path().join("service-pids"))[0];
    assert!(alive(service), "the service died with the runner");
    std::fs::write(dir.path().join("resumed"), "").unwrap();
    std::fs::write(dir.path().join("go"), "").unwrap();
    let (output, explain) = resume(dir.path(), &run_dir);
    assert_eq!(output.status.code(), Some(0), "{explain}");
    assert_eq!(
        read_pids(&dir.path().join("service-pids")),
        vec![service],
        "the service was restarted; {explain}"
    );
    assert!(!alive(service), "the adopted service was not ended");
    let log = std::fs::read_to_string(run_dir.join("logs/loud.log")).unwrap();
    assert!(log.contains("before"), "{log}");
    assert!(log.contains("after-resume"), "{log}");
}

#[test]
fn a_drill_or_runbook_changed_since_the_start_is_refused() {
    for edited in ["drill.yaml", "runbook.md"] {
        let dir = tempfile::tempdir().unwrap();
        write_drill(
            dir.path(),
            &HELD.replace(
                r#"recover: {run: "true"}"#,
                "recover: {runbook: runbook.md}",
            ),
        );
        std::fs::write(
            dir.path().join("runbook.md"),
            "# Fix\n\n## Fix it\n\n```sh\ntrue\n```\n",
        )
        .unwrap();
        let run_dir = run_until_then_kill(dir.path(), "long-started");
        let path = dir.path().join(edited);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("true", "false")).unwrap();
        std::fs::write(dir.path().join("go"), "").unwrap();
        let (output, explain) = resume(dir.path(), &run_dir);
        assert_eq!(output.status.code(), Some(2), "{explain}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{edited} (edited)")), "{explain}");
        // Put back as it was, the run goes on.
        std::fs::write(&path, text).unwrap();
        let (output, explain) = resume(dir.path(), &run_dir);
        assert_eq!(output.status.code(), Some(0), "{explain}");
    }
}

#[test]
fn a_second_resume_while_one_runs_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), HELD);
    let run_dir = run_until_then_kill(dir.path(), "long-started");
    std::fs::remove_file(dir.path().join("long-started")).unwrap();
    let mut first = firedrill()
        .current_dir(dir.path())
        .arg("resume")
        .arg(&run_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(&dir.path().join("long-started")));
    let (second, explain) = resume(dir.path(), &run_dir);
    assert_eq!(second.status.code(), Some(2), "{explain}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&format!("pid {}", first.id())), "{explain}");
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
    // The refused resume wrote nothing: one resume in the record.
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert_eq!(events.matches(r#""event":"run_resumed""#).count(), 1);
}

#[test]
fn a_cleaned_run_is_not_resumed_and_report_says_it_was_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), HELD);
    let run_dir = run_until_then_kill(dir.path(), "long-started");
    let clean = firedrill().arg("clean").arg(&run_dir).output().unwrap();
    assert_eq!(clean.status.code(), Some(0));
    let (output, explain) = resume(dir.path(), &run_dir);
    assert_eq!(output.status.code(), Some(2), "{explain}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("was cleaned"),
        "{explain}"
    );
    assert!(!run_dir.join("work").exists(), "resume recreated WORKDIR");
    let report = firedrill().arg("report").arg(&run_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert!(stderr.contains("was cleaned"), "{stderr}");
    assert!(!stderr.contains("resume` it"), "{stderr}");
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

/// The drill the runner is killed in at every step boundary: a service and
/// a file of data, a `kill` fault on the service and a `run` fault on the
/// data, a check that both faults are in, and a runbook that brings both
/// back. It passes only with `--var MARK=given`. Each step and runbook step
/// starts at a gate (`gate NAME` waits for `go-NAME`), so that the runner
/// can be held and killed exactly there: events alone run ahead of a reader.
const BOUNDARIES: &str = r#"
version: 1
name: boundaries
objectives: {rto: 5m}
vars:
  MARK: default
services:
  app:
    run: echo "service $$" >> "${T}/app.pids"; exec sleep 1000
    ready: {command: '"${T}/app-up"', interval: 50ms}
probes:
  up:
    command: '"${T}/app-up" && test -f "$WORKDIR/data"'
    interval: 100ms
steady_state: [up]
steps:
  - id: prepare
    run: |
      "${T}/gate" prepare
      test "$MARK" = given
      echo ok > "$WORKDIR/data"
      echo "KEY=from-prepare" >> "$FIREDRILL_OUTPUT"
  - id: kill-app
    needs: [prepare]
    fault: {kill: {service: app}}
  - id: between
    needs: [kill-app]
    run: '"${T}/gate" between'
  - id: lose-data
    needs: [between]
    fault:
      run: echo injected >> "${T}/injections"; rm "$WORKDIR/data"
      revert: echo reverted >> "${T}/reverts"
  - id: confirm
    needs: [lose-data]
    run: '"${T}/gate" confirm; ! "${T}/app-up" && ! test -f "$WORKDIR/data"'
  - id: restore
    needs: [confirm]
    recover: {runbook: runbook.md}
"#;

const BOUNDARIES_RUNBOOK: &str = r#"# Restore the app

## Check that the outage is still there

```sh
"${T}/gate" runbook-1
AWAIT_OUTAGE
if "${T}/app-up" || test -f "$WORKDIR/data"; then echo healed >> "${T}/healed"; fi
```

## Bring the data back

```sh
"${T}/gate" runbook-2
test "$KEY" = from-prepare && test "$MARK" = given
echo ok > "$WORKDIR/data"
```

## Start the app again

```sh
"${T}/gate" runbook-3
sleep 1000 </dev/null >/dev/null 2>&1 &
echo "runbook $!" >> "${T}/app.pids"
```
"#;

/// Whether the app's last pid lives (a zombie does not).
const APP_UP: &str = r#"#!/bin/sh
p=$(tail -n1 "${T}/app.pids" | cut -d' ' -f2)
s=$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)
[ -n "$s" ] && [ "$s" != Z ]
"#;

/// Says it has reached gate `$1`, then waits until it may pass.
const GATE: &str = r#"#!/bin/sh
touch "${T}/at-$1"
until [ -f "${T}/go-$1" ]; do sleep 0.02; done
"#;

/// The gates, in the order the run reaches them.
const GATES: &[&str] = &[
    "prepare",
    "between",
    "confirm",
    "runbook-1",
    "runbook-2",
    "runbook-3",
];

fn write_boundaries(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    write_drill(dir, BOUNDARIES);
    let t = dir.display().to_string();
    std::fs::write(
        dir.join("runbook.md"),
        BOUNDARIES_RUNBOOK
            .replace("AWAIT_OUTAGE", AWAIT_OUTAGE)
            .replace("${T}", &t),
    )
    .unwrap();
    for (name, text) in [("app-up", APP_UP), ("gate", GATE)] {
        let path = dir.join(name);
        std::fs::write(&path, text.replace("${T}", &t)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn open_gate(dir: &Path, gate: &str) {
    std::fs::write(dir.join(format!("go-{gate}")), "").unwrap();
}

/// The pids the app file records, as `(who, pid)`.
fn app_pids(dir: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(dir.join("app.pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (who, pid) = line.split_once(' ')?;
            Some((who.to_owned(), pid.parse().ok()?))
        })
        .collect()
}

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// The event on the run's stream that says the runner reached `gate`.
fn reached(event: &serde_json::Value, gate: &str) -> bool {
    let kind = event["event"].as_str().unwrap_or_default();
    match gate.strip_prefix("runbook-") {
        Some("1") => kind == "runbook_started",
        Some(n) => {
            kind == "runbook_step"
                && event["index"].as_u64() == n.parse::<u64>().ok().map(|n| n - 2)
        }
        None => kind == "step_started" && event["step"] == gate,
    }
}

/// Runs the boundaries drill with every gate before `gate` open, picks the
/// moment the runner reaches `gate` from the events it prints, and kills it
/// there (SIGKILL).
fn kill_at_gate(dir: &Path, gate: &str) {
    use std::io::BufRead;
    for open in GATES.iter().take_while(|g| **g != gate) {
        open_gate(dir, open);
    }
    let mut runner = run_command(dir)
        .args(["--var", "MARK=given", "--parallel", "3", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = runner.stdout.take().unwrap();
    let mut seen = false;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|e| reached(&e, gate)) {
            seen = true;
            break;
        }
    }
    assert!(seen, "the run never reached {gate}");
    assert!(
        wait_for(&dir.join(format!("at-{gate}"))),
        "{gate} never held the run"
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    // The rest of the run may go on.
    for open in GATES {
        open_gate(dir, open);
    }
}

fn ttr_of(journal: &serde_json::Value) -> u64 {
    journal["ttr_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no TTR: {journal}"))
}

#[test]
fn a_runner_killed_at_any_step_boundary_is_resumed_to_the_verdict_of_an_uninterrupted_run() {
    // The run as it goes when nothing kills it.
    let dir = tempfile::tempdir().unwrap();
    write_boundaries(dir.path());
    for gate in GATES {
        open_gate(dir.path(), gate);
    }
    let whole = run_command(dir.path())
        .args(["--var", "MARK=given"])
        .output()
        .unwrap();
    let journal = read_journal(&dir.path().join("run"));
    assert_eq!(
        journal["verdict"],
        "passed",
        "{}",
        String::from_utf8_lossy(&whole.stdout)
    );
    let ttr = ttr_of(&journal);

    for gate in GATES {
        let dir = tempfile::tempdir().unwrap();
        write_boundaries(dir.path());
        kill_at_gate(dir.path(), gate);
        let run_dir = dir.path().join("run");
        let (output, explain) = resume(dir.path(), &run_dir);
        let explain = format!("killed at {gate}:\n{explain}");
        assert_eq!(output.status.code(), Some(0), "{explain}");
        let journal = read_journal(&run_dir);
        assert_eq!(journal["verdict"], "passed", "{explain}");

        // No fault was injected twice, and each is recorded once.
        assert_eq!(lines_of(&dir.path().join("injections")), 1, "{explain}");
        let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
        for fault in ["kill-app", "lose-data"] {
            let injected = events
                .lines()
                .filter(|l| {
                    l.contains(r#""event":"fault_injected""#)
                        && l.contains(&format!(r#""step":"{fault}""#))
                })
                .count();
            assert_eq!(injected, 1, "{fault} recorded {injected} times; {explain}");
        }
        // The service was never started again: adopted, or left down after
        // the fault, until the runbook brought the app back; the faults held
        // until then.
        let services = app_pids(dir.path())
            .into_iter()
            .filter(|(who, _)| who == "service")
            .count();
        assert_eq!(services, 1, "the service was restarted; {explain}");
        assert!(
            !dir.path().join("healed").exists(),
            "a fault was healed before the runbook ran; {explain}"
        );
        assert_eq!(lines_of(&dir.path().join("reverts")), 1, "{explain}");

        // TTR runs from the original fault, across the runner's death.
        let lines: Vec<serde_json::Value> = events
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let resumed = lines
            .iter()
            .position(|e| e["event"] == "run_resumed")
            .unwrap();
        let at_ms = |e: &serde_json::Value| e["at_ms"].as_u64().unwrap();
        let dead = at_ms(&lines[resumed]) - at_ms(&lines[resumed - 1]);
        let resumed_ttr = ttr_of(&journal);
        if journal["first_fault_ms"]
            .as_u64()
            .is_some_and(|fault| fault < at_ms(&lines[resumed]))
        {
            assert!(
                resumed_ttr >= dead,
                "TTR {resumed_ttr} ms does not count the {dead} ms the runner was dead; {explain}"
            );
        }
        assert!(
            resumed_ttr <= ttr + dead + 3000,
            "TTR {resumed_ttr} ms, uninterrupted {ttr} ms, dead {dead} ms; {explain}"
        );

        // Nothing of the run is left.
        let left = processes_of_run(journal["run_id"].as_str().unwrap());
        assert!(left.is_empty(), "{left:?}; {explain}");
        for (who, pid) in app_pids(dir.path()) {
            assert!(!alive(pid), "{who} {pid} left running; {explain}");
        }
    }
}
