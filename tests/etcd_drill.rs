//! The flagship drill on a real three-member etcd cluster (Debian's
//! etcd-server and etcd-client): it passes as shipped, and a stale copy of its
//! runbook is reported with the exact step that failed and why.

mod common;

use std::path::Path;

use common::firedrill;

fn ports(base: u16) -> Vec<String> {
    let mut vars = Vec::new();
    for n in 1..=3u16 {
        vars.push(format!("CLIENT_{n}=http://127.0.0.1:{}", base + n));
        vars.push(format!("PEER_{n}=http://127.0.0.1:{}", base + 10 + n));
    }
    vars
}

fn run(drill: &Path, base: u16, dir: &Path) -> (std::process::Output, serde_json::Value) {
    assert!(
        Path::new("/usr/bin/etcd").exists() && Path::new("/usr/bin/etcdctl").exists(),
        "these tests need etcd: apt-get install -y etcd-server etcd-client"
    );
    let run_dir = dir.join("run");
    let mut command = firedrill();
    command
        .current_dir(dir)
        .arg("run")
        .arg(drill)
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--halt-file")
        .arg(dir.join("halt"));
    for var in ports(base) {
        command.arg("--var").arg(var);
    }
    let output = command.output().unwrap();
    let journal = std::fs::read_to_string(run_dir.join("journal.json")).unwrap_or_else(|e| {
        panic!(
            "no journal ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&journal).unwrap())
}

#[test]
fn the_etcd_quorum_loss_drill_passes_with_its_runbook() {
    let dir = tempfile::tempdir().unwrap();
    let drill = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/etcd-quorum-loss.yaml");
    let (output, journal) = run(&drill, 24100, dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(journal["verdict"], "passed");
    assert_eq!(journal["runbook_accuracy"], 100.0);
    assert_eq!(journal["recovered"], true);
    let loss = journal["data_loss_ms"]
        .as_u64()
        .expect("data loss measured");
    assert!(loss <= journal["rpo_ms"].as_u64().unwrap(), "{loss}");
    let steps = journal["runbook"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .filter(|s| s["status"] == "ok")
            .all(|s| s["idempotent"] == true),
        "{steps:?}"
    );
    let left = common::processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_stale_etcd_runbook_is_reported_with_the_failing_step_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stale = root.join("tests/fixtures/runbooks/etcd-restore-stale.md");
    let drill = std::fs::read_to_string(root.join("scenarios/etcd-quorum-loss.yaml"))
        .unwrap()
        .replace("../runbooks/etcd-restore.md", &stale.display().to_string());
    let copy = dir.path().join("etcd-quorum-loss.yaml");
    std::fs::write(&copy, drill).unwrap();
    let (output, journal) = run(&copy, 24200, dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(journal["verdict"], "failed");
    assert_eq!(journal["recovered"], false);
    let steps = journal["runbook"]["steps"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> =
        steps.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{steps:?}");
    assert_eq!(failed[0]["title"], "Restore the snapshot for each member");
    let why = failed[0]["output_tail"].as_str().unwrap();
    assert!(why.contains("2380"), "the error output is kept: {why}");
    let report = std::fs::read_to_string(dir.path().join("run/report.md")).unwrap();
    assert!(report.contains("Restore the snapshot for each member"));
    let left = common::processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}

/// The runner dies right after `wipe-disks` (SIGKILL, the moment picked
/// from the `--json` events). `resume` must not heal the fault itself:
/// etcd-2 and etcd-3 stay down on their wiped disks, so quorum stays lost,
/// the confirm step passes and the runbook restores the cluster; the
/// recorded `--var` ports are used again.
#[test]
fn the_etcd_drill_resumed_after_its_runner_died_past_the_faults_still_exercises_the_runbook() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let drill = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/etcd-quorum-loss.yaml");
    let run_dir = dir.path().join("run");
    let mut command = firedrill();
    command
        .current_dir(dir.path())
        .arg("run")
        .arg(&drill)
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--halt-file")
        .arg(dir.path().join("halt"))
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for var in ports(24300) {
        command.arg("--var").arg(var);
    }
    let mut runner = command.spawn().unwrap();
    let stdout = runner.stdout.take().unwrap();
    let wiped = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(r#""event":"step_finished","step":"wipe-disks""#));
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert!(wiped, "the run never got past wipe-disks");

    let output = firedrill()
        .current_dir(dir.path())
        .arg("resume")
        .arg(&run_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(journal["verdict"], "passed", "{stdout}");
    let status = |id: &str| {
        journal["steps"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|s| s["id"] == id)
            .map(|s| s["status"].clone())
    };
    assert_eq!(status("confirm-quorum-lost").unwrap(), "ok", "{stdout}");
    assert_eq!(status("restore").unwrap(), "ok", "{stdout}");
    assert_eq!(journal["runbook_accuracy"], 100.0, "{stdout}");
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    for (member, outcome) in [
        ("etcd-1", "adopted"),
        ("etcd-2", "left_down"),
        ("etcd-3", "left_down"),
    ] {
        assert!(
            events.contains(&format!(
                r#""event":"service_resumed","service":"{member}","outcome":"{outcome}""#
            )),
            "{member} not {outcome}: {stdout}"
        );
    }
    let left = common::processes_of_run(journal["run_id"].as_str().unwrap());
    assert!(left.is_empty(), "{left:?}");
}
