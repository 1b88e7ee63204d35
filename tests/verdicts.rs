//! Verdicts that follow from what was measured (docs/scoring.md,
//! docs/drill-format.md `services`): each rule on a real run of the real
//! binary, with the reason line that says what decided it.

mod common;

use common::{
    AWAIT_OUTAGE, alive, assert_nothing_left, processes_of_run, read_journal, run_command,
    run_drill, write_drill,
};

/// A system that is healthy while `$WORKDIR/healthy` exists, and a fault
/// that removes it; `rest` is appended (more steps, a recover step).
fn drill(name: &str, objectives: &str, rest: &str) -> String {
    format!(
        r#"
version: 1
name: {name}
objectives: {{rto: 30s{objectives}}}
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
{rest}"#
    )
}

fn reason(run: &common::Run) -> String {
    run.journal()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_skipped_recover_step_is_not_recovered_even_when_the_system_heals() {
    let run = run_drill(
        &drill(
            "skipped-recovery",
            "",
            r#"  - id: heal-by-itself
    needs: [detected]
    run: touch "$WORKDIR/healthy"
  - id: confirm
    needs: [detected]
    run: echo "the confirmation is wrong" >&2; exit 1
  - id: restore
    needs: [confirm]
    recover: {run: 'touch "$WORKDIR/healthy"'}
"#,
        ),
        &[],
    );
    assert_eq!(run.code(), 1, "{}", run.explain());
    let journal = run.journal();
    assert_eq!(run.step("restore")["status"], "skipped");
    assert_eq!(journal["recovered"], false);
    assert_eq!(journal["score"], 0);
    let reason = reason(&run);
    assert!(
        reason.contains("`restore` was skipped")
            && reason.contains("the recovery was never tested"),
        "{reason}"
    );
    assert!(run.stdout().contains("the recovery was never tested"));
    assert_nothing_left(&run);
}

#[test]
fn a_system_that_heals_by_itself_before_the_recovery_is_not_credited_to_it() {
    let run = run_drill(
        &drill(
            "self-healing",
            "",
            r#"  - id: heal-by-itself
    needs: [detected]
    run: touch "$WORKDIR/healthy"
  - id: later
    needs: [heal-by-itself]
    wait: 1s
  - id: restore
    needs: [later]
    recover: {run: "true"}
"#,
        ),
        &[],
    );
    assert_eq!(run.code(), 1, "{}", run.explain());
    let journal = run.journal();
    assert_eq!(journal["recovered"], false);
    assert_eq!(journal["complete"], false);
    assert!(journal["ttr_ms"].is_null(), "{journal}");
    let reason = reason(&run);
    assert!(
        reason.starts_with("the system recovered by itself before the recovery started")
            && reason.ends_with("the runbook was not exercised"),
        "{reason}"
    );
    assert_nothing_left(&run);
}

#[test]
fn a_fault_that_breaks_nothing_fails_with_no_outage_observed() {
    let yaml = |objectives: &str| {
        format!(
            r#"
version: 1
name: no-outage
objectives: {{rto: 30s{objectives}}}
probes:
  fine:
    command: "true"
    interval: 100ms
steady_state: [fine]
steps:
  - id: harmless
    fault: {{run: "true"}}
  - id: fix
    needs: [harmless]
    recover: {{run: "true"}}
"#
        )
    };
    let run = run_drill(&yaml(""), &[]);
    assert_eq!(run.code(), 1, "{}", run.explain());
    assert_eq!(run.journal()["verdict"], "failed");
    // Nothing broke, so nothing was recovered: no TTR, no score to trend.
    assert_eq!(run.journal()["recovered"], false);
    assert_eq!(run.journal()["complete"], false);
    assert!(run.journal()["ttr_ms"].is_null(), "{}", run.journal());
    assert_eq!(run.journal()["score"], 0);
    assert!(
        reason(&run).starts_with("no outage observed"),
        "{}",
        reason(&run)
    );
    assert!(
        run.stdout().contains("no outage observed"),
        "{}",
        run.stdout()
    );
    // The reports agree with the verdict.
    let junit = std::fs::read_to_string(run.run_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("no-outage"), "{junit}");
    let markdown = std::fs::read_to_string(run.run_dir.join("report.md")).unwrap();
    assert!(markdown.contains("none observed"), "{markdown}");
    // A resilience check: holding is the point.
    let holding = run_drill(&yaml(", expect_outage: false"), &[]);
    assert_eq!(holding.code(), 0, "{}", holding.explain());
    assert!(reason(&holding).contains("expect_outage: false"));
    assert_nothing_left(&run);
}

#[test]
fn without_steady_state_the_reason_says_the_recover_steps_alone_decided() {
    let run = run_drill(
        r#"
version: 1
name: no-steady-state
objectives: {rto: 30s}
steps:
  - id: harmless
    fault: {run: "true"}
  - id: fix
    needs: [harmless]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    assert!(
        reason(&run).contains("no steady state defined: judged by the recover steps alone"),
        "{}",
        reason(&run)
    );
    // Nothing was checked before the faults, and the output says so.
    assert!(
        run.stdout()
            .contains("no steady state defined, nothing to check: injecting faults")
            && !run.stdout().contains("steady state holds"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_step_that_fails_before_the_first_fault_is_an_error_naming_it() {
    let run = run_drill(
        r#"
version: 1
name: broken-setup
objectives: {rto: 30s}
steps:
  - id: install-tools
    run: echo "tool not found" >&2; exit 3
  - id: break
    needs: [install-tools]
    fault: {run: 'touch "${T}/fault-ran"'}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 4, "{}", run.explain());
    assert_eq!(run.journal()["verdict"], "error");
    let reason = reason(&run);
    assert!(
        reason.contains("step `install-tools` failed before the first fault")
            && reason.contains("could not be set up"),
        "{reason}"
    );
    assert!(!reason.contains("not recovered"), "{reason}");
    assert!(!run.path("fault-ran").exists());
    assert_nothing_left(&run);
}

/// A runbook whose first step cannot run twice.
const NOT_IDEMPOTENT: &str = r#"# Rebuild

## Make the data directory

```sh
mkdir "$WORKDIR/data"
```

## Heal

```sh
touch "$WORKDIR/healthy"
```
"#;

#[test]
fn a_step_that_fails_its_second_run_counts_against_accuracy_and_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runbook.md"), NOT_IDEMPOTENT).unwrap();
    write_drill(
        dir.path(),
        &drill(
            "idempotency",
            "",
            r#"  - id: restore
    needs: [detected]
    recover: {runbook: runbook.md, check: idempotent}
"#,
        ),
    );
    let run = common::run_in(dir, &[]);
    let journal = run.journal();
    assert_eq!(journal["runbook_accuracy"], 50.0, "{}", run.explain());
    assert_eq!(journal["runbook"]["steps"][0]["idempotent"], false);
    let reason = reason(&run);
    assert!(
        reason.contains("“Make the data directory”") && reason.contains("not safe to re-run"),
        "{reason}"
    );
    // Every report shows the second run's output: mkdir's complaint.
    let stdout = run.stdout();
    let summary = &stdout[stdout.rfind("idempotency:").unwrap_or(0)..];
    assert!(
        summary.contains("not safe to re-run") && summary.contains("File exists"),
        "{summary}"
    );
    for file in ["report.md", "junit.xml", "report.html"] {
        let text = std::fs::read_to_string(run.run_dir.join(file)).unwrap();
        assert!(
            text.contains("not safe to re-run") && text.contains("File exists"),
            "{file} does not show the second run"
        );
    }
    assert_nothing_left(&run);
}

/// The second run of "Heal" breaks the system again and waits for the
/// monitor to see it before it heals it.
const BREAKS_ON_RERUN: &str = r#"# Heal

## Heal

```sh
if [ -f "$WORKDIR/healed-once" ]; then
  rm "$WORKDIR/healthy"
  seen=$(grep -c '"role":"steady","ok":false' "$RUN_DIR/events.jsonl")
  until [ "$(grep -c '"role":"steady","ok":false' "$RUN_DIR/events.jsonl")" -gt "$seen" ]; do sleep 0.05; done
fi
touch "$WORKDIR/healed-once" "$WORKDIR/healthy"
```
"#;

#[test]
fn ttr_is_measured_on_the_first_pass_not_the_idempotency_rerun() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runbook.md"), BREAKS_ON_RERUN).unwrap();
    write_drill(
        dir.path(),
        &drill(
            "ttr-first-pass",
            "",
            r#"  - id: restore
    needs: [detected]
    recover: {runbook: runbook.md, check: idempotent}
"#,
        ),
    );
    let run = common::run_in(dir, &[]);
    assert_eq!(run.code(), 0, "{}", run.explain());
    let journal = run.journal();
    let events = run.events();
    let first_check = events
        .iter()
        .find(|e| e["event"] == "recovery_checked" && e["after_rerun"] == false)
        .expect("a check after the first pass");
    let rerun_check = events
        .iter()
        .find(|e| e["event"] == "recovery_checked" && e["after_rerun"] == true)
        .expect("a check after the re-run");
    assert_eq!(rerun_check["ok"], true);
    let first_check_ms = first_check["at_ms"].as_u64().unwrap();
    // The re-run really broke the system after the first pass's check.
    assert!(events.iter().any(|e| e["event"] == "probe"
        && e["ok"] == false
        && e["at_ms"].as_u64().unwrap() > first_check_ms));
    let fault_ms = journal["first_fault_ms"].as_u64().unwrap();
    let ttr = journal["ttr_ms"].as_u64().unwrap();
    assert!(
        fault_ms + ttr <= first_check_ms,
        "TTR {ttr} ms counts past the first pass's check at {first_check_ms} ms (fault at {fault_ms} ms)"
    );
    assert_eq!(journal["recovered"], true);
}

#[test]
fn the_steady_state_must_hold_again_after_the_rerun() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runbook.md"),
        r#"# Heal

## Heal

```sh
if [ -f "$WORKDIR/healed-once" ]; then rm "$WORKDIR/healthy"; exit 0; fi
touch "$WORKDIR/healed-once" "$WORKDIR/healthy"
```
"#,
    )
    .unwrap();
    write_drill(
        dir.path(),
        &drill(
            "rerun-breaks",
            ", settle: 500ms",
            r#"  - id: restore
    needs: [detected]
    recover: {runbook: runbook.md, check: idempotent}
"#,
        ),
    );
    let run = common::run_in(dir, &[]);
    assert_eq!(run.code(), 1, "{}", run.explain());
    let journal = run.journal();
    assert_eq!(journal["recovered"], false);
    assert!(
        reason(&run).contains("did not hold again after the idempotency re-run"),
        "{}",
        reason(&run)
    );
    assert_nothing_left(&run);
}

#[test]
fn a_failed_data_read_says_what_failed() {
    let run = run_drill(
        &drill(
            "data-read-fails",
            ", rpo: 10s",
            r#"  - id: restore
    needs: [detected]
    recover: {run: 'touch "$WORKDIR/healthy"'}
data:
  write: date +%s%3N > "$WORKDIR/hb"
  read: 'echo "etcdserver: no leader" >&2; exit 1'
  every: 100ms
"#,
        ),
        &[],
    );
    assert_eq!(run.code(), 1, "{}", run.explain());
    let journal = run.journal();
    let detail = journal["data_loss_detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("`data.read` failed") && detail.contains("no leader"),
        "{detail}"
    );
    assert!(reason(&run).contains("no leader"), "{}", reason(&run));
    for text in [
        run.stdout(),
        std::fs::read_to_string(run.run_dir.join("report.md")).unwrap(),
    ] {
        assert!(!text.contains("data:` section"), "{text}");
        assert!(
            text.contains("data.read") && text.contains("failed (exit 1): etcdserver: no leader"),
            "{text}"
        );
    }
}

/// The recover step leaves a server that comes back in the background once
/// `until` holds.
fn slow_to_settle(settle: &str, until: &str) -> common::Run {
    run_drill(
        &drill(
            "settle",
            settle,
            &format!(
                r#"  - id: restart
    needs: [detected]
    recover:
      run: |
        ( {until}; touch "$WORKDIR/healthy" ) > /dev/null 2>&1 &
"#
            ),
        ),
        &[],
    )
}

#[test]
fn the_recovery_check_waits_a_settle_window() {
    // A server that needs 1.5s to come back: the default window (10s) sees
    // it; the old check gave up after success_threshold + 2 polls (~300ms).
    let run = slow_to_settle("", "sleep 1.5");
    assert_eq!(run.code(), 0, "{}", run.explain());
    assert_eq!(run.journal()["recovered"], true);
    assert_nothing_left(&run);
    // A server that comes back only after the check has given up: the
    // window bounds the wait, and the reason names it.
    let short = slow_to_settle(
        ", settle: 300ms",
        r#"until grep -q '"event":"recovery_checked"' "$RUN_DIR/events.jsonl"; do sleep 0.05; done"#,
    );
    assert_eq!(short.code(), 1, "{}", short.explain());
    assert!(
        reason(&short).contains("settle window of 300ms"),
        "{}",
        reason(&short)
    );
    assert_nothing_left(&short);
}

#[test]
fn a_service_port_held_by_another_server_stops_the_run_before_any_fault() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let site = tempfile::tempdir().unwrap();
    let mut outsider = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(site.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs");
    let listening = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(listening, "the outside server never listened");

    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &format!(
            r#"
version: 1
name: somebody-elses-server
objectives: {{rto: 30s}}
services:
  web:
    run: echo started > "${{T}}/service-started"; exec python3 -m http.server {port} --bind 127.0.0.1
    ready: {{tcp: {{address: "127.0.0.1:{port}"}}}}
probes:
  up:
    http: {{url: "http://127.0.0.1:{port}/"}}
    interval: 100ms
steady_state: [up]
steps:
  - id: kill-web
    fault: {{kill: {{service: web}}}}
  - id: restart
    needs: [kill-web]
    recover: {{run: 'touch "${{T}}/recovered"'}}
"#
        ),
    );
    let output = run_command(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let still_alive = alive(outsider.id());
    let _ = outsider.kill();
    let _ = outsider.wait();
    assert_eq!(output.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(still_alive, "the run harmed the outside server");
    let journal = read_journal(&dir.path().join("run"));
    let reason = journal["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("port {port}")) && reason.contains("already taken"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("pid {}", outsider.id())) && reason.contains("http.server"),
        "the holder is not named: {reason}"
    );
    assert!(stdout.contains("already taken") || stderr.contains("already taken"));
    assert!(journal["faults"].as_array().unwrap().is_empty());
    assert!(!dir.path().join("service-started").exists());
    assert!(!dir.path().join("recovered").exists());
    let left = processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_service_is_ready_only_while_its_own_process_lives() {
    // The service exits at once; its ready probe passes only once it is
    // dead, as a probe answered by another server on its port would.
    let run = run_drill(
        r#"
version: 1
name: dead-service
objectives: {rto: 30s}
services:
  web:
    run: echo $$ > "${T}/web.pid"; exit 0
    ready:
      command: >-
        p=$(cat "${T}/web.pid") || exit 1;
        s=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null);
        [ -z "$s" ] || [ "$s" = Z ]
      interval: 50ms
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
    let reason = reason(&run);
    assert!(
        reason.contains("service `web` answered its ready probe, but its own process has exited"),
        "{reason}"
    );
    assert!(!run.path("fault-ran").exists());
    assert_nothing_left(&run);
}

#[test]
fn a_service_that_died_while_another_server_took_its_port_stops_the_run() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // The setup step plays the accident: the service dies, and another
    // server starts on its port.
    let run = run_drill(
        &format!(
            r#"
version: 1
name: replaced-server
objectives: {{rto: 30s}}
services:
  web:
    run: echo $$ > "${{T}}/web.pid"; exec python3 -m http.server {port} --bind 127.0.0.1
    ready: {{tcp: {{address: "127.0.0.1:{port}"}}}}
probes:
  up:
    tcp: {{address: "127.0.0.1:{port}"}}
    interval: 100ms
steady_state: [up]
steps:
  - id: replace
    timeout: 1m
    run: |
      kill "$(cat "${{T}}/web.pid")"
      while python3 -c 'import socket; socket.create_connection(("127.0.0.1", {port}), 1)' 2>/dev/null; do sleep 0.05; done
      python3 -m http.server {port} --bind 127.0.0.1 > /dev/null 2>&1 &
      echo $! > "${{T}}/outsider.pid"
      until python3 -c 'import socket; socket.create_connection(("127.0.0.1", {port}), 1)' 2>/dev/null; do sleep 0.05; done
  - id: break
    needs: [replace]
    fault: {{kill: {{service: web}}}}
  - id: fix
    needs: [break]
    recover: {{run: 'touch "${{T}}/recovered"'}}
"#
        ),
        &[],
    );
    assert_eq!(run.code(), 4, "{}", run.explain());
    let reason = reason(&run);
    let outsider = common::read_pids(&run.path("outsider.pid"));
    assert!(
        reason.contains("service `web` has exited")
            && reason.contains(&format!("port {port}"))
            && reason.contains(&format!("pid {}", outsider[0])),
        "{reason}"
    );
    assert!(run.journal()["faults"].as_array().unwrap().is_empty());
    assert!(!run.path("recovered").exists());
    assert_nothing_left(&run);
}
