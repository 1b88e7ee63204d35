//! The engine on real processes: the real binary runs drills on this host,
//! and after each run the test checks that nothing of it is still alive.

mod common;

use common::{
    AWAIT_OUTAGE, alive, assert_nothing_left, interrupt, read_journal, read_pids, run_command,
    run_drill, step_of, wait_for, write_drill,
};

/// A drill whose "system" is a file: healthy while `$WORKDIR/healthy` exists.
const HEALTH: &str = r#"
probes:
  healthy:
    command: test -f "$WORKDIR/healthy"
    interval: 100ms
    timeout: 2s
steady_state: [healthy]
"#;

#[test]
fn a_passing_drill_recovers_and_leaves_nothing_running() {
    let run = run_drill(
        &format!(
            r#"
version: 1
name: pass
objectives: {{rto: 30s}}
services:
  app:
    run: touch "$WORKDIR/healthy"; echo $$ > "${{T}}/app.pid"; exec sleep 1000
    ready: {{command: 'test -s "${{T}}/app.pid"', interval: 50ms}}
{HEALTH}
steps:
  - id: break
    fault: {{kill: {{service: app}}}}
  - id: sick
    needs: [break]
    run: rm "$WORKDIR/healthy"
  - id: fix
    needs: [sick]
    recover:
      run: |
        {AWAIT_OUTAGE}
        touch "$WORKDIR/healthy"
"#
        ),
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    let journal = run.journal();
    assert_eq!(journal["verdict"], "passed");
    assert_eq!(journal["recovered"], true);
    assert_eq!(journal["faults"][0]["kind"], "kill");
    assert_eq!(journal["faults"][0]["targets"][0], "app");
    assert!(journal["ttr_ms"].as_u64().is_some());
    let app = read_pids(&run.path("app.pid"));
    assert!(!alive(app[0]), "the killed service is alive");
    // WORKDIR is removed without --keep.
    assert!(!run.run_dir.join("work").exists());
    assert_nothing_left(&run);
}

#[test]
fn a_service_that_dies_while_starting_ends_the_run_with_its_exit_status() {
    // Its ready probe never passes and its ready_timeout is long: the exit,
    // watched, ends the wait (a test that waited out the timeout would not
    // see the exit status in the reason).
    let run = run_drill(
        r#"
version: 1
name: crashing-service
objectives: {rto: 30s}
services:
  app:
    run: echo "cannot bind" >&2; exit 3
    ready: {command: "false", interval: 1s}
    ready_timeout: 10m
steps:
  - id: break
    fault: {run: 'touch "${T}/fault-ran"'}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 4, "{}", run.explain());
    let reason = run.journal()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("service `app` exited (exit 3) before it was ready"),
        "{reason}"
    );
    assert!(reason.contains("app.log"), "{reason}");
    assert!(!run.path("fault-ran").exists());
    assert_nothing_left(&run);
}

#[test]
fn an_unhealthy_system_gets_no_fault_and_exit_4() {
    let run = run_drill(
        &format!(
            r#"
version: 1
name: unhealthy
objectives: {{rto: 30s}}
{HEALTH}
steps:
  - id: break
    fault: {{run: 'touch "${{T}}/fault-ran"'}}
  - id: fix
    needs: [break]
    recover: {{run: "true"}}
"#
        ),
        &[],
    );
    assert_eq!(run.code(), 4, "{}", run.explain());
    assert!(
        !run.path("fault-ran").exists(),
        "a fault ran on an unhealthy system"
    );
    let journal = run.journal();
    assert_eq!(journal["verdict"], "error");
    assert!(journal["faults"].as_array().unwrap().is_empty());
    let reason = journal["reason"].as_str().unwrap();
    assert!(reason.contains("not healthy before the drill"), "{reason}");
    assert!(reason.contains("healthy"), "{reason}");
    assert_eq!(run.step("break")["status"], "skipped");
    assert_nothing_left(&run);
}

#[test]
fn a_failing_guard_aborts_reverts_and_stops_later_faults() {
    let run = run_drill(
        r#"
version: 1
name: guarded
objectives: {rto: 30s}
probes:
  healthy:
    command: "true"
  budget:
    command: test -f "$WORKDIR/budget"
    interval: 100ms
steady_state: [healthy]
guards: [budget]
steps:
  - id: setup
    run: touch "$WORKDIR/budget"
  - id: burn
    needs: [setup]
    fault:
      run: rm "$WORKDIR/budget"
      revert: touch "${T}/reverted"
  - id: linger
    needs: [burn]
    wait: 5s
  - id: second
    needs: [linger]
    fault: {run: 'touch "${T}/second-fault"'}
  - id: fix
    needs: [second]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 3, "{}", run.explain());
    assert!(run.path("reverted").exists(), "the revert did not run");
    assert!(
        !run.path("second-fault").exists(),
        "a fault ran after the abort"
    );
    let journal = run.journal();
    assert_eq!(journal["verdict"], "aborted");
    assert!(
        journal["reason"].as_str().unwrap().contains("budget"),
        "{}",
        journal["reason"]
    );
    assert_eq!(journal["faults"][0]["reverted"], true);
    assert_ne!(run.step("second")["status"], "ok");
    assert_nothing_left(&run);
}

#[test]
fn the_halt_file_aborts_a_running_drill() {
    let run = run_drill(
        r#"
version: 1
name: halted
objectives: {rto: 30s}
steps:
  - id: break
    fault:
      run: "true"
      revert: touch "${T}/reverted"
  - id: press-the-button
    needs: [break]
    run: touch "${T}/halt"; sleep 10
  - id: fix
    needs: [press-the-button]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 3, "{}", run.explain());
    assert!(run.path("reverted").exists());
    assert!(run.journal()["reason"].as_str().unwrap().contains("halt"));
    assert_nothing_left(&run);
}

#[test]
fn no_run_starts_while_the_halt_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: halted-before
objectives: {rto: 30s}
steps:
  - id: break
    fault: {run: 'touch "${T}/ran"'}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
    );
    std::fs::write(dir.path().join("halt"), "").unwrap();
    let output = run_command(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("exists, so no drill starts"), "{stderr}");
    // No run: nothing ran, and no run directory for history to count.
    assert!(!dir.path().join("ran").exists());
    assert!(!dir.path().join("run").exists());
}

#[test]
fn a_step_timeout_kills_its_whole_process_group() {
    let run = run_drill(
        r#"
version: 1
name: timeout
objectives: {rto: 30s}
steps:
  - id: slow
    timeout: 500ms
    run: sleep 60 & echo $! > "${T}/child.pid"; sleep 60
  - id: break
    needs: [slow]
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    // A step that fails before the first fault: the drill could not be set up.
    assert_eq!(run.code(), 4, "{}", run.explain());
    let slow = run.step("slow");
    assert_eq!(slow["status"], "failed");
    assert!(
        slow["detail"].as_str().unwrap().contains("timed out"),
        "{slow}"
    );
    let child = read_pids(&run.path("child.pid"));
    assert!(
        !alive(child[0]),
        "the step's background child survived its timeout"
    );
    assert_eq!(run.step("break")["status"], "skipped");
    assert_nothing_left(&run);
}

#[test]
fn retries_run_a_step_again_until_it_passes() {
    let run = run_drill(
        r#"
version: 1
name: retries
objectives: {rto: 30s}
steps:
  - id: flaky
    retries: 3
    retry_delay: 100ms
    run: echo x >> "${T}/attempts"; test $(wc -l < "${T}/attempts") -ge 3
  - id: break
    needs: [flaky]
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    let flaky = run.step("flaky");
    assert_eq!(flaky["status"], "ok");
    assert_eq!(flaky["attempts"], 3);
    assert_nothing_left(&run);
}

#[test]
fn a_failed_step_skips_its_dependents_and_the_rest_goes_on() {
    let run = run_drill(
        r#"
version: 1
name: skips
objectives: {rto: 30s}
steps:
  - id: broken
    run: echo "the script is wrong" >&2; exit 3
  - id: after-broken
    needs: [broken]
    run: touch "${T}/after-broken"
  - id: independent
    run: touch "${T}/independent"
  - id: break
    needs: [independent]
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    let broken = run.step("broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["exit_code"], 3);
    assert!(
        broken["output_tail"]
            .as_str()
            .unwrap()
            .contains("the script is wrong")
    );
    let after = run.step("after-broken");
    assert_eq!(after["status"], "skipped");
    assert!(after["detail"].as_str().unwrap().contains("broken"));
    assert!(!run.path("after-broken").exists());
    assert!(run.path("independent").exists());
    assert_eq!(run.step("fix")["status"], "ok");
    assert_nothing_left(&run);
}

/// Prints 10 MB on one line, with no newline, then `END`.
const HUGE_LINE: &str = "head -c 10000000 /dev/zero | tr -c x x; printf END";

#[test]
fn one_huge_line_of_output_reaches_no_record_whole() {
    let run = run_drill(
        &format!(
            r#"
version: 1
name: huge-output
objectives: {{rto: 30s}}
probes:
  loud:
    command: '{HUGE_LINE}; test ! -f "$WORKDIR/broken"'
    interval: 200ms
    timeout: 30s
steady_state: [loud]
steps:
  - id: break
    fault: {{run: 'touch "$WORKDIR/broken"'}}
  - id: fix
    needs: [break]
    recover:
      run: |
        {AWAIT_OUTAGE}
        rm "$WORKDIR/broken"
  - id: noisy
    needs: [fix]
    run: '{HUGE_LINE}; exit 3'
"#
        ),
        &[],
    );
    let noisy = run.step("noisy");
    assert_eq!(noisy["status"], "failed", "{}", run.explain());
    let tail = noisy["output_tail"].as_str().unwrap();
    assert!(tail.contains("characters cut here]"), "{tail:.200}");
    assert!(tail.ends_with("xxxEND"), "{tail:.200}");
    let failed = run
        .events()
        .into_iter()
        .find(|event| event["event"] == "probe" && event["ok"] == false)
        .map(|event| event["detail"].as_str().unwrap().to_owned())
        .expect("a failed probe check");
    assert!(failed.contains("characters cut here]"), "{failed:.200}");
    assert!(failed.ends_with("xxxEND"), "{failed:.200}");
    // The logs hold what the commands printed (capped); the records and
    // reports hold a bounded part of it.
    for entry in std::fs::read_dir(&run.run_dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_file() {
            let size = path.metadata().unwrap().len();
            assert!(size < 512 * 1024, "{} holds {size} bytes", path.display());
        }
    }
    assert_nothing_left(&run);
}

#[test]
fn step_outputs_reach_dependents() {
    let run = run_drill(
        r#"
version: 1
name: outputs
objectives: {rto: 30s}
steps:
  - id: produce
    run: echo "TOKEN=abc-123" >> "$FIREDRILL_OUTPUT"
  - id: relay
    needs: [produce]
    run: echo "ECHOED=$TOKEN" >> "$FIREDRILL_OUTPUT"
  - id: break
    needs: [relay]
    fault: {run: 'echo "$TOKEN $ECHOED" > "${T}/seen"'}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    assert_eq!(
        std::fs::read_to_string(run.path("seen")).unwrap().trim(),
        "abc-123 abc-123"
    );
}

#[test]
fn processes_that_escape_into_new_sessions_are_ended() {
    let run = run_drill(
        r#"
version: 1
name: escapes
objectives: {rto: 30s}
steps:
  - id: daemons
    run: |
      setsid sleep 1001 > /dev/null 2>&1 < /dev/null & echo $! >> "${T}/pids"
      nohup sleep 1002 > /dev/null 2>&1 & echo $! >> "${T}/pids"
      ( ( sleep 1003 > /dev/null 2>&1 & echo $! >> "${T}/pids" ) & )
      setsid sh -c 'sleep 1004 & echo $! >> "${T}/pids"; wait' > /dev/null 2>&1 &
      sleep 0.3
  - id: break
    needs: [daemons]
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    let pids = read_pids(&run.path("pids"));
    assert_eq!(pids.len(), 4, "{pids:?}");
    for pid in pids {
        assert!(!alive(pid), "escaped process {pid} is still alive");
    }
    assert_nothing_left(&run);
}

#[test]
fn ctrl_c_ends_the_run_with_130_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: interrupted
objectives: {rto: 30s}
services:
  app:
    run: exec sleep 1000
steps:
  - id: long
    run: echo started > "${T}/started"; sleep 1000
  - id: break
    needs: [long]
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
    );
    let mut child = run_command(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(&dir.path().join("started")),
        "the long step never started"
    );
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let journal = read_journal(&dir.path().join("run"));
    assert_eq!(step_of(&journal, "long")["status"], "interrupted");
    let left = common::processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

/// A `delete` fault aimed outside `WORKDIR` through a variable (validation
/// refuses a literal one): a run refuses it.
const REFUSED_FAULT: &str = r#"
version: 1
name: refused
objectives: {rto: 30s}
vars: {OUTSIDE: "${T}"}
steps:
  - id: break
    fault: {delete: {path: "${OUTSIDE}/precious"}}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#;

#[test]
fn faults_outside_workdir_are_refused() {
    let run = run_drill(REFUSED_FAULT, &[]);
    assert_eq!(run.code(), 3, "{}", run.explain());
    assert!(
        run.step("break")["detail"]
            .as_str()
            .unwrap()
            .contains("WORKDIR")
    );
}

#[test]
fn dry_run_of_a_refused_fault_exits_as_the_run_would() {
    let run = run_drill(REFUSED_FAULT, &["--dry-run"]);
    assert_eq!(run.code(), 3, "{}", run.explain());
    let out = run.stdout();
    assert!(out.contains("REFUSED"), "{out}");
    assert!(
        out.contains("the run would refuse break and abort (exit 3)"),
        "{out}"
    );
    assert!(!run.run_dir.exists());
}

#[test]
fn dry_run_of_a_workdir_fault_previews_it_without_refusing() {
    // WORKDIR does not exist before a real run: the preview judges the path
    // as written (inside WORKDIR) instead of refusing it.
    let run = run_drill(
        r#"
version: 1
name: dry-workdir
objectives: {rto: 30s}
steps:
  - id: seed
    run: mkdir -p "$WORKDIR/site" && echo hi > "$WORKDIR/site/index.html"
  - id: wipe
    needs: [seed]
    fault: {delete: {path: "${WORKDIR}/site"}}
  - id: fix
    needs: [wipe]
    recover: {run: 'true'}
"#,
        &["--dry-run"],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    let out = run.stdout();
    assert!(!out.contains("REFUSED"), "{out}");
    assert!(out.contains("wipe: delete → remove "), "{out}");
    assert!(!run.run_dir.exists());
}

#[test]
fn dry_run_starts_nothing() {
    let run = run_drill(
        r#"
version: 1
name: dry
objectives: {rto: 30s}
services:
  app:
    run: touch "${T}/service-started"; exec sleep 1000
steps:
  - id: break
    fault: {kill: {service: app, signal: TERM}}
  - id: fix
    needs: [break]
    recover: {run: 'touch "${T}/recovered"'}
"#,
        &["--dry-run"],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    let out = run.stdout();
    assert!(out.contains("SIGTERM to the process group of app"), "{out}");
    assert!(!run.path("service-started").exists());
    assert!(!run.path("recovered").exists());
    assert!(!run.run_dir.exists());
}

#[test]
fn pause_stops_a_service_and_the_revert_continues_it() {
    let run = run_drill(
        r#"
version: 1
name: paused
objectives: {rto: 30s}
services:
  app:
    run: echo $$ > "${T}/app.pid"; exec sleep 1000
    ready: {command: 'test -s "${T}/app.pid"', interval: 50ms}
steps:
  - id: freeze
    fault: {pause: {service: app}}
  - id: look
    needs: [freeze]
    run: awk '{print $3}' "/proc/$(cat "${T}/app.pid")/stat" > "${T}/state-during"
  - id: fix
    needs: [look]
    recover: {run: "true"}
"#,
        &["--keep"],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    let during = std::fs::read_to_string(run.path("state-during")).unwrap();
    assert_eq!(during.trim(), "T", "the service was not stopped");
    let journal = run.journal();
    assert_eq!(journal["faults"][0]["kind"], "pause");
    assert_eq!(
        journal["faults"][0]["reverted"], true,
        "{}",
        journal["faults"]
    );
    assert!(
        journal["faults"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("SIGCONT")
    );
    assert_nothing_left(&run);
}

#[test]
fn corrupt_overwrites_bytes_at_seeded_offsets() {
    let drill = r#"
version: 1
name: corrupted
objectives: {rto: 30s}
steps:
  - id: data
    run: head -c 4096 /dev/zero > "$WORKDIR/db"; cp "$WORKDIR/db" "$WORKDIR/db.orig"
  - id: damage
    needs: [data]
    fault: {corrupt: {path: "${WORKDIR}/db", bytes: 16}}
  - id: compare
    needs: [damage]
    run: cmp -l "$WORKDIR/db.orig" "$WORKDIR/db" | wc -l > "${T}/changed"
  - id: fix
    needs: [compare]
    recover: {run: 'cp "$WORKDIR/db.orig" "$WORKDIR/db"'}
"#;
    let first = run_drill(drill, &["--seed", "7"]);
    let second = run_drill(drill, &["--seed", "7"]);
    assert_eq!(first.code(), 0, "{}", first.explain());
    let changed: usize = std::fs::read_to_string(first.path("changed"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1..=16).contains(&changed), "{changed} bytes changed");
    let detail = |run: &common::Run| {
        run.journal()["faults"][0]["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(detail(&first).contains("offsets"), "{}", detail(&first));
    assert_eq!(
        detail(&first),
        detail(&second),
        "the same seed hit other bytes"
    );
    assert_eq!(first.journal()["seed"], 7);
}

#[test]
fn ctrl_c_while_waiting_for_a_service_is_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: never-ready
objectives: {rto: 1m}
services:
  app:
    run: echo $$ > "${T}/app.pid.new"; mv "${T}/app.pid.new" "${T}/app.pid"; exec sleep 1000
    ready: {command: "false", interval: 100ms}
steps:
  - id: break
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
    );
    let mut child = run_command(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("app.pid");
    assert!(wait_for(&pid_file), "the service never started");
    let app = read_pids(&pid_file);
    assert_eq!(app.len(), 1, "the service never started");
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!alive(app[0]), "the service survived Ctrl-C");
}

#[test]
fn run_dir_help_shows_the_default_name_whole() {
    let output = common::firedrill()
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains(".firedrill/runs/<UTC time>-<drill>-<id>/"),
        "{help}"
    );
}

#[test]
fn validate_and_dry_run_warn_of_variables_nothing_sets() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        r#"
version: 1
name: unset
objectives: {rto: 30s}
vars: {SITE: "$WORKDIR/site"}
services:
  app:
    run: echo "$PORT $SERVICE_TYPO"; exec sleep 1000
    env: {PORT: "8080"}
steps:
  - id: prepare
    run: |
      mkdir -p "$SITE" && echo "TOKEN=abc" >> "$FIREDRILL_OUTPUT"
  - id: break
    needs: [prepare]
    fault: {run: 'for f in "$SITE"/*; do rm "$f"; done; echo "$TOKEN $HOME"', revert: 'echo "$REVERT_TYPO"'}
  - id: fix
    needs: [break]
    recover:
      run: |
        n=3
        echo "$n ${STIE}"
"#,
    );
    let output = common::firedrill()
        .current_dir(dir.path())
        .args(["validate", "drill.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: drill.yaml: service `app` uses `$SERVICE_TYPO`, which nothing sets: it expands to empty",
            "warning: drill.yaml:14: step `break` uses `$REVERT_TYPO`, which nothing sets: it expands to empty",
            "warning: drill.yaml:17: step `fix` uses `$STIE`, which nothing sets: it expands to empty",
        ],
        "{stderr}"
    );
    let dry = run_command(dir.path()).arg("--dry-run").output().unwrap();
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("step `fix` uses `$STIE`"), "{stdout}");
    // A --var names it: no warning for that one.
    let given = run_command(dir.path())
        .args(["--dry-run", "--var", "STIE=x"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&given.stdout);
    assert!(!stdout.contains("`$STIE`"), "{stdout}");
}
