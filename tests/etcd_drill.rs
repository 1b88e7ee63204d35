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
