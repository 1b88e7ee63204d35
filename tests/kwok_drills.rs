//! The real binary on kwok drills, against a real kube-apiserver (the
//! control plane `.ci/install-k8s` builds): the four kwok scenarios of
//! `scenarios/` pass with their runbooks, and the run owns its kwok cluster
//! however it ends (passed, failed, interrupted, unhealthy before the drill,
//! its runner killed): afterwards no process of the cluster is left (checked
//! in /proc, by the run's marker and by the run's kwok directory).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::kwok::{self, KwokCluster};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `firedrill ARGS…` with the control plane's tools first on PATH, the run
/// directory and halt file in `dir`.
fn firedrill_run(dir: &Path, drill: &Path, args: &[&str]) -> Command {
    let mut command = common::firedrill();
    command
        .current_dir(dir)
        .env("PATH", kwok::path_with_tools())
        .env("NO_COLOR", "1")
        .arg("run")
        .arg(drill)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--halt-file")
        .arg(dir.join("halt"))
        .args(args)
        .stdin(Stdio::null());
    command
}

/// What a finished run left: its exit, output and journal.
struct Finished {
    code: Option<i32>,
    output: String,
    journal: serde_json::Value,
}

impl Finished {
    fn explain(&self) -> String {
        format!(
            "exit {:?}\n{}\nreason: {}",
            self.code, self.output, self.journal["reason"]
        )
    }
}

fn finished(output: std::process::Output, run_dir: &Path) -> Finished {
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let journal = std::fs::read_to_string(run_dir.join("journal.json"))
        .unwrap_or_else(|e| panic!("no journal.json ({e})\n{text}"));
    Finished {
        code: output.status.code(),
        output: text,
        journal: serde_json::from_str(&journal).unwrap(),
    }
}

/// Nothing of the run's kwok cluster is left: no process with the run's
/// marker, none naming its kwok directory, and (unless kept) no files.
fn assert_cluster_gone(run_dir: &Path, cluster: &str, run_id: &str, files_kept: bool) {
    let left = common::processes_of_run(run_id);
    assert!(left.is_empty(), "processes of the run left: {left:?}");
    let home = run_dir.join("kwok");
    let left = kwok::processes_mentioning(&home.display().to_string());
    assert!(left.is_empty(), "processes of the cluster left: {left:?}");
    let pids = kwok::component_pids(&home, cluster);
    assert!(
        pids.iter().all(|pid| !kwok::running(*pid)),
        "components still running: {pids:?}"
    );
    assert_eq!(
        home.join("clusters").join(cluster).exists(),
        files_kept,
        "the cluster's files in {}",
        home.display()
    );
}

/// Runs a scenario of `scenarios/` to its end.
fn run_scenario(name: &str, cluster: &str) -> (tempfile::TempDir, Finished) {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    // Deletes the cluster if the run leaves it (and fails the test then).
    let guard = KwokCluster::adopt(cluster, &run_dir);
    let drill = repo().join("scenarios").join(format!("{name}.yaml"));
    let output = firedrill_run(dir.path(), &drill, &[]).output().unwrap();
    let run = finished(output, &run_dir);
    assert_eq!(run.code, Some(0), "{}", run.explain());
    let journal = &run.journal;
    assert_eq!(journal["verdict"], "passed", "{}", run.explain());
    assert_eq!(journal["target"], format!("kwok:{cluster}"));
    assert_eq!(journal["outage_observed"], true, "{}", run.explain());
    assert!(journal["ttd_ms"].is_u64(), "nothing detected");
    assert_eq!(journal["runbook_accuracy"], 100.0, "{}", run.explain());
    assert_eq!(journal["recovered"], true);
    assert_eq!(journal["complete"], true, "{}", run.explain());
    assert_cluster_gone(
        &run_dir,
        cluster,
        journal["run_id"].as_str().unwrap(),
        false,
    );
    guard.delete().unwrap();
    (dir, run)
}

fn faults(journal: &serde_json::Value) -> Vec<serde_json::Value> {
    journal["faults"].as_array().unwrap().clone()
}

#[test]
fn the_namespace_deleted_drill_passes_with_its_runbook() {
    let (_dir, run) = run_scenario("kwok-namespace-deleted", "fd-kwok-ns");
    let faults = faults(&run.journal);
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["kind"], "delete");
    assert_eq!(faults[0]["targets"], serde_json::json!(["Namespace/shop"]));
}

#[test]
fn the_cluster_rebuild_drill_passes_with_its_runbook() {
    let (_dir, run) = run_scenario("kwok-cluster-rebuild", "fd-kwok-rebuild");
    let faults = faults(&run.journal);
    assert_eq!(faults[0]["kind"], "delete_cluster");
    assert_eq!(faults[0]["targets"], serde_json::json!(["fd-kwok-rebuild"]));
    // The rebuild step (`repin: true`) pinned the new cluster, naming both
    // kube-system UIDs.
    let rebuild = run.journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "rebuild")
        .expect("the rebuild step");
    let detail = rebuild["detail"].as_str().unwrap();
    assert!(
        detail.contains("identity of the kwok cluster fd-kwok-rebuild this run set up re-pinned: kube-system UID "),
        "{rebuild}"
    );
    let (old, new) = detail
        .rsplit_once("kube-system UID ")
        .unwrap()
        .1
        .split_once(" -> ")
        .unwrap();
    assert_ne!(old, new.trim(), "{detail}");
}

#[test]
fn the_control_plane_down_drill_passes_with_its_runbook() {
    let (_dir, run) = run_scenario("kwok-control-plane-down", "fd-kwok-cpd");
    let faults = faults(&run.journal);
    assert_eq!(faults[0]["kind"], "control_plane_down");
    let target = faults[0]["targets"][0].as_str().unwrap();
    assert!(target.starts_with("kube-apiserver (pid "), "{target}");
    assert_eq!(faults[0]["reverted"], true, "{}", faults[0]);
}

#[test]
fn the_node_loss_drill_passes_with_its_runbook() {
    let (_dir, run) = run_scenario("kwok-node-loss", "fd-kwok-node-loss");
    let faults = faults(&run.journal);
    assert_eq!(faults[0]["kind"], "stop_node");
    let node = faults[0]["targets"][0].as_str().unwrap();
    assert!(node.starts_with("node-"), "{node}");
    assert_eq!(faults[0]["reverted"], true, "{}", faults[0]);
}

/// A small kwok drill: one node, a fault, and a recovery step `recover`.
fn small_drill(dir: &Path, cluster: &str, keep: bool, recover: &str) -> PathBuf {
    let yaml = format!(
        r#"version: 1
name: kwok-ending
target:
  kwok: {{cluster: {cluster}, nodes: 1, keep: {keep}}}
scope: {{namespaces: [default]}}
objectives: {{rto: 2m, min_score: 70}}
probes:
  marker:
    k8s: {{kind: ConfigMap, namespace: default, name: marker}}
    interval: 200ms
    timeout: 2s
steady_state: [marker]
steps:
  - id: setup
    run: kubectl create configmap marker
  - id: hit
    needs: [setup]
    fault:
      delete: {{kind: ConfigMap, namespace: default, name: marker}}
  - id: mend
    needs: [hit]
    timeout: 1m
    recover:
      run: |
        {recover}
"#
    );
    let path = dir.join("drill.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_failed_run_collects_the_clusters_evidence_and_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let guard = KwokCluster::adopt("fd-kwok-failed", &run_dir);
    let drill = small_drill(dir.path(), "fd-kwok-failed", false, "exit 1");
    let output = firedrill_run(dir.path(), &drill, &[]).output().unwrap();
    let run = finished(output, &run_dir);
    assert_eq!(run.code, Some(1), "{}", run.explain());
    assert_eq!(run.journal["verdict"], "failed");
    // The broken state, before anything was reverted, and the components' logs.
    let evidence = run_dir.join("evidence");
    assert!(
        evidence.join("kwok-logs/kube-apiserver.log").is_file(),
        "{:?}",
        std::fs::read_dir(&evidence)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert_cluster_gone(
        &run_dir,
        "fd-kwok-failed",
        run.journal["run_id"].as_str().unwrap(),
        false,
    );
    guard.delete().unwrap();
}

#[test]
fn an_unhealthy_start_stops_before_the_fault_and_deletes_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let guard = KwokCluster::adopt("fd-kwok-unhealthy", &run_dir);
    // The marker is never created: the steady state fails before the fault.
    let drill = small_drill(dir.path(), "fd-kwok-unhealthy", false, "true");
    let yaml = std::fs::read_to_string(&drill)
        .unwrap()
        .replace("run: kubectl create configmap marker", "run: 'true'");
    std::fs::write(&drill, yaml).unwrap();
    let output = firedrill_run(dir.path(), &drill, &[]).output().unwrap();
    let run = finished(output, &run_dir);
    assert_eq!(run.code, Some(4), "{}", run.explain());
    assert_eq!(run.journal["verdict"], "error");
    assert_eq!(faults(&run.journal).len(), 0, "a fault ran");
    assert_cluster_gone(
        &run_dir,
        "fd-kwok-unhealthy",
        run.journal["run_id"].as_str().unwrap(),
        false,
    );
    guard.delete().unwrap();
}

/// Starts the drill and waits until its recovery step runs (the cluster up,
/// the fault in).
fn start_until_mending(dir: &Path, cluster: &str, keep: bool) -> std::process::Child {
    let started = dir.join("mending");
    let drill = small_drill(
        dir,
        cluster,
        keep,
        &format!("touch {}; sleep 300", started.display()),
    );
    let mut child = firedrill_run(dir, &drill, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..1200 {
        if started.exists() {
            return child;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if child.try_wait().unwrap().is_none() {
        common::interrupt(&child);
    }
    let status = child.wait().unwrap();
    let journal = std::fs::read_to_string(dir.join("run/journal.json")).unwrap_or_default();
    panic!("the drill never reached its recovery step ({status}): {journal}");
}

/// Ctrl-C or SIGTERM in the middle of the drill: the run ends its cluster
/// (and deletes it, unless `keep`).
#[test]
fn an_interrupted_run_ends_its_cluster() {
    use nix::sys::signal::Signal;
    for (signal, cluster, keep) in [
        (Signal::SIGINT, "fd-kwok-int", false),
        (Signal::SIGTERM, "fd-kwok-term", false),
        (Signal::SIGINT, "fd-kwok-keep", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("run");
        let guard = KwokCluster::adopt(cluster, &run_dir);
        let mut child = start_until_mending(dir.path(), cluster, keep);
        let pids = kwok::component_pids(&run_dir.join("kwok"), cluster);
        assert_eq!(pids.len(), 5, "{pids:?}");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(130), "{signal}");
        let journal = common::read_journal(&run_dir);
        assert_eq!(common::step_of(&journal, "mend")["status"], "interrupted");
        assert_cluster_gone(&run_dir, cluster, journal["run_id"].as_str().unwrap(), keep);
        guard.delete().unwrap();
    }
}

#[test]
fn the_cluster_of_a_killed_runner_is_ended_by_clean() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let guard = KwokCluster::adopt("fd-kwok-killed", &run_dir);
    let mut child = start_until_mending(dir.path(), "fd-kwok-killed", false);
    let pids = kwok::component_pids(&run_dir.join("kwok"), "fd-kwok-killed");
    assert_eq!(pids.len(), 5, "{pids:?}");
    // The runner dies without a chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let output = common::firedrill()
        .env("PATH", kwok::path_with_tools())
        .arg("clean")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for _ in 0..100 {
        if pids.iter().all(|pid| !kwok::running(*pid)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left: Vec<_> = pids.iter().filter(|pid| kwok::running(**pid)).collect();
    assert!(left.is_empty(), "components left after clean: {left:?}");
    let left = kwok::processes_mentioning(&run_dir.join("kwok").display().to_string());
    assert!(left.is_empty(), "{left:?}");
    guard.delete().unwrap();
}

/// `validate` and `--dry-run` need none of the tools: PATH without them.
#[test]
fn validate_and_dry_run_work_without_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "kwok-namespace-deleted",
        "kwok-cluster-rebuild",
        "kwok-control-plane-down",
        "kwok-node-loss",
    ] {
        let drill = repo().join("scenarios").join(format!("{name}.yaml"));
        let output = common::firedrill()
            .env("PATH", "/nonexistent")
            .env("NO_COLOR", "1")
            .arg("validate")
            .arg(&drill)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = common::firedrill()
            .current_dir(dir.path())
            .env("PATH", "/nonexistent")
            .env("NO_COLOR", "1")
            .arg("run")
            .arg(&drill)
            .arg("--dry-run")
            .arg("--run-dir")
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("faults would hit:"), "{stdout}");
        assert!(
            !dir.path().join(name).join("kwok").exists(),
            "a dry run made a cluster"
        );
    }
}
