//! `firedrill resume`: a run whose runner was killed is continued from its
//! events: finished steps are kept, faults are not injected twice, what the
//! dead runner left running is ended, and the run finishes.

mod common;

use std::time::Duration;

use common::{alive, firedrill, processes_of_run, read_pids};

#[test]
fn a_run_whose_runner_died_is_resumed_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("drill.yaml"),
        format!(
            r#"
version: 1
name: resumable
objectives: {{rto: 5m}}
services:
  app:
    run: echo $$ >> "{t}/service-pids"; exec sleep 1000
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
    fault: {{run: 'rm "$WORKDIR/healthy"; echo injected >> "{t}/faults"'}}
  - id: long
    needs: [break]
    run: |
      if [ -f "{t}/resumed" ]; then exit 0; fi
      sleep 1000 & echo $! > "{t}/orphan.pid"
      touch "{t}/long-started"
      wait
  - id: fix
    needs: [long]
    recover: {{run: 'test "$KEY" = from-setup && touch "$WORKDIR/healthy"'}}
"#
        ),
    )
    .unwrap();
    let run_dir = dir.path().join("run");
    let mut runner = firedrill()
        .current_dir(dir.path())
        .args(["run", "drill.yaml", "--run-dir"])
        .arg(&run_dir)
        .arg("--halt-file")
        .arg(dir.path().join("halt"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = dir.path().join("long-started");
    for _ in 0..200 {
        if started.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.exists(), "the long step never started");
    // The runner dies without any cleanup.
    runner.kill().unwrap();
    runner.wait().unwrap();
    let orphan = read_pids(&dir.path().join("orphan.pid"))[0];
    assert!(
        alive(orphan),
        "the test needs the dead runner's step to survive it"
    );

    std::fs::write(dir.path().join("resumed"), "").unwrap();
    let output = firedrill()
        .current_dir(dir.path())
        .arg("resume")
        .arg(&run_dir)
        .output()
        .unwrap();
    let explain = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{explain}");
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("journal.json")).unwrap())
            .unwrap();
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
        let record = journal["steps"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|s| s["id"] == step)
            .cloned()
            .unwrap_or_else(|| panic!("no record of {step}"));
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
    let t = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("drill.yaml"),
        format!(
            r#"
version: 1
name: half-fault
objectives: {{rto: 5m}}
steps:
  - id: break
    fault: {{run: 'echo injected >> "{t}/faults"; touch "{t}/in-fault"; sleep 1000'}}
  - id: fix
    needs: [break]
    recover: {{run: "true"}}
"#
        ),
    )
    .unwrap();
    let run_dir = dir.path().join("run");
    let mut runner = firedrill()
        .current_dir(dir.path())
        .args(["run", "drill.yaml", "--run-dir"])
        .arg(&run_dir)
        .arg("--halt-file")
        .arg(dir.path().join("halt"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if dir.path().join("in-fault").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    runner.kill().unwrap();
    runner.wait().unwrap();
    let output = firedrill().arg("resume").arg(&run_dir).output().unwrap();
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("journal.json")).unwrap())
            .unwrap();
    let record = journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "break")
        .cloned()
        .unwrap();
    assert_eq!(
        record["status"],
        "interrupted",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
