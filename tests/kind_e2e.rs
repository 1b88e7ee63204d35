//! End to end on real kind clusters: the kind target driven directly, and the
//! real binary on the kind drills of `scenarios/`. They need `kind`, `docker`,
//! `kubectl`, `jq` and `curl`, and take minutes, so they are ignored by
//! default; `.github/workflows/kind-e2e.yml` runs them with
//! `cargo test --test kind_e2e -- --ignored --test-threads=1`.
//!
//! With `FIREDRILL_E2E_RUNS` set, run directories go there and are kept
//! (the workflow uploads them when a test fails); otherwise they live in
//! temporary directories. Every cluster a test makes is deleted by a guard,
//! also when the test panics, so one failure does not break the next test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use firedrill::drill::yaml::Located;
use firedrill::drill::{FaultSpec, K8sProbe, NodeSelector, PodKillFault};
use firedrill::event::Emitter;
use firedrill::target::kind::{KindFault, KindTarget, NodeFault};
use firedrill::target::kube::scope::Scope;
use firedrill::target::kube::{KubeDelete, KubeFault, KubeOps};
use firedrill::target::{RunContext, Target, TargetError};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn spec(cluster: &str, config: &str) -> firedrill::drill::KindTarget {
    firedrill::drill::KindTarget {
        cluster: Located::new(cluster.to_owned()),
        config: Some(Located::new(format!("../kind-configs/{config}"))),
        reuse: false,
        keep: false,
    }
}

fn ctx(run_dir: &Path) -> RunContext {
    RunContext {
        run_id: "e2e".into(),
        run_dir: run_dir.to_path_buf(),
        workdir: run_dir.join("work"),
        scenario_dir: repo().join("scenarios"),
        env: BTreeMap::new(),
        seed: 7,
        emitter: Emitter::new(Vec::new()),
    }
}

/// Deletes kind clusters by name when dropped (also on a panic).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for cluster in &self.0 {
            if clusters().contains(cluster) {
                let _ = Command::new("kind")
                    .args(["delete", "cluster", "--name", cluster.as_str()])
                    .status();
            }
        }
    }
}

/// A directory for a run's records: kept under `FIREDRILL_E2E_RUNS` when
/// set, else temporary.
fn run_dir(name: &str) -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("FIREDRILL_E2E_RUNS") {
        Some(root) => {
            let dir = PathBuf::from(root).join(name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            (dir, None)
        }
        None => {
            let temp = tempfile::tempdir().unwrap();
            (temp.path().to_path_buf(), Some(temp))
        }
    }
}

/// Runs kubectl on `kubeconfig` with its cache beside it (never `~/.kube`).
fn kubectl(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("KUBECACHEDIR", kubeconfig.with_file_name("kube-cache-test"))
        .output()
        .unwrap()
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn clusters() -> Vec<String> {
    sh("kind", &["get", "clusters"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn container_status(node: &str) -> String {
    sh("docker", &["inspect", "-f", "{{.State.Status}}", node])
        .trim()
        .to_owned()
}

fn probe(kind: &str, change: impl FnOnce(&mut K8sProbe)) -> K8sProbe {
    let mut probe = K8sProbe {
        kind: Located::new(kind.to_owned()),
        namespace: None,
        name: None,
        selector: None,
        condition: None,
        count: None,
    };
    change(&mut probe);
    probe
}

/// Polls a probe until it passes (at most `attempts` times, 2 s apart).
async fn eventually(target: &KindTarget, probe: &K8sProbe, ctx: &RunContext, attempts: u32) {
    let mut last = String::new();
    for _ in 0..attempts {
        let outcome = target.probe(probe, ctx).await;
        if outcome.ok {
            return;
        }
        last = outcome.detail;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    panic!("probe {} never passed: {last}", probe.kind.value);
}

fn worker() -> NodeSelector {
    NodeSelector {
        node: None,
        role: Some(Located::new("worker".to_owned())),
        count: Some(1),
    }
}

#[tokio::test]
#[ignore = "needs kind"]
async fn the_kind_target_on_a_real_cluster() {
    let _cleanup = Cleanup(vec!["fd-e2e-target".to_owned()]);
    let (dir, _temp) = run_dir("the-kind-target");
    let dir = dir.as_path();
    let ctx = ctx(dir);
    let target = KindTarget::new(&spec("fd-e2e-target", "three-node.yaml"), &ctx.scenario_dir)
        .with_scope(Scope::new(["shop".to_owned()], false, "the test"));
    let env = target.setup(&ctx).await.unwrap();
    let kubeconfig = dir.join("kubeconfig");
    assert_eq!(env["KUBECONFIG"], kubeconfig.display().to_string());
    assert!(clusters().contains(&"fd-e2e-target".to_owned()));

    let applied = target
        .apply(&[PathBuf::from("../manifests/shop.yaml")], &ctx)
        .await
        .unwrap();
    assert!(applied.contains("Deployment/shop/web"), "{applied}");
    eventually(&target, &probe("Node", |p| p.count = Some(3)), &ctx, 90).await;
    let web = probe("Deployment", |p| {
        p.namespace = Some("shop".into());
        p.name = Some("web".into());
    });
    eventually(&target, &web, &ctx, 120).await;

    let injected = target
        .inject(
            "kill",
            &FaultSpec::Kube(KubeFault::PodKill(PodKillFault {
                namespace: "shop".into(),
                selector: "app=web".into(),
                count: Some(1),
                percent: None,
            })),
            &ctx.env,
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(injected.targets.len(), 1);
    eventually(&target, &web, &ctx, 120).await;

    // Container faults, each undone.
    for kind in ["pause_node", "partition_node", "stop_kubelet", "stop_node"] {
        let hit = FaultSpec::Kind(match kind {
            "pause_node" => KindFault::Node(NodeFault::Pause, worker()),
            "partition_node" => KindFault::Node(NodeFault::Partition, worker()),
            "stop_kubelet" => KindFault::Node(NodeFault::StopKubelet, worker()),
            _ => KindFault::Node(NodeFault::Stop, worker()),
        });
        let injected = target.inject(kind, &hit, &ctx.env, &ctx).await.unwrap();
        let node = injected.targets[0].clone();
        assert!(node.starts_with("fd-e2e-target-worker"), "{node}");
        match kind {
            "pause_node" => assert_eq!(container_status(&node), "paused"),
            "stop_node" => assert_eq!(container_status(&node), "exited"),
            "stop_kubelet" => {
                let state = Command::new("docker")
                    .args(["exec", &node, "systemctl", "is-active", "kubelet"])
                    .output()
                    .unwrap();
                assert_ne!(String::from_utf8_lossy(&state.stdout).trim(), "active");
            }
            _ => {
                // Cut off inside the node: its address stays, its traffic drops.
                let rules = sh("docker", &["exec", &node, "iptables", "-S"]);
                assert!(rules.contains("firedrill-partition"), "{rules}");
                let reach = Command::new("docker")
                    .args(["exec", "fd-e2e-target-control-plane", "sh", "-c"])
                    .arg(format!(
                        "curl -sk --max-time 3 https://{node}:10250/healthz"
                    ))
                    .status()
                    .unwrap();
                assert!(!reach.success(), "{node}'s kubelet still answers");
            }
        }
        if kind != "pause_node" {
            // The control plane notices: the node goes NotReady.
            let node_ready = probe("Node", |p| {
                p.name = Some(node.clone());
                p.condition = Some("Ready".into());
            });
            let mut seen_not_ready = false;
            for _ in 0..60 {
                if !target.probe(&node_ready, &ctx).await.ok {
                    seen_not_ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            assert!(seen_not_ready, "{kind}: {node} never went NotReady");
        }
        target
            .revert(injected.undo.as_ref().unwrap(), &ctx)
            .await
            .unwrap();
        assert_eq!(container_status(&node), "running", "{kind}");
    }
    eventually(&target, &probe("Node", |p| p.count = Some(3)), &ctx, 120).await;

    let drained = target
        .inject(
            "drain",
            &FaultSpec::Kube(KubeFault::DrainNode(worker())),
            &ctx.env,
            &ctx,
        )
        .await
        .unwrap();
    let node = drained.targets[0].clone();
    let unschedulable = kubectl(
        &kubeconfig,
        &["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"],
    );
    assert_eq!(String::from_utf8_lossy(&unschedulable.stdout), "true");
    target
        .revert(drained.undo.as_ref().unwrap(), &ctx)
        .await
        .unwrap();

    let down = target
        .inject(
            "cp",
            &FaultSpec::Kind(KindFault::ControlPlaneDown),
            &ctx.env,
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(down.targets, vec!["fd-e2e-target-control-plane"]);
    // The API really goes down (the kubelet stops the static pod).
    let mut api_down = false;
    for _ in 0..60 {
        let out = kubectl(
            &kubeconfig,
            &["get", "--raw", "/readyz", "--request-timeout=2s"],
        );
        if !out.status.success() {
            api_down = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(api_down, "the API server never went down");
    target
        .revert(down.undo.as_ref().unwrap(), &ctx)
        .await
        .unwrap();
    eventually(&target, &probe("Node", |p| p.count = Some(3)), &ctx, 120).await;

    let deleted = target
        .inject(
            "ns",
            &FaultSpec::Kube(KubeFault::Delete(KubeDelete {
                kind: "Namespace".into(),
                namespace: None,
                name: Some("shop".into()),
                selector: None,
            })),
            &ctx.env,
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(deleted.targets, vec!["Namespace/shop"]);

    let evidence = dir.join("evidence");
    target.collect_evidence(&evidence, &ctx).await;
    assert!(
        std::fs::read_to_string(evidence.join("nodes.txt"))
            .unwrap()
            .contains("Ready=True")
    );
    assert!(evidence.join("events.txt").exists());

    target.teardown(&ctx, false).await;
    assert!(!clusters().contains(&"fd-e2e-target".to_owned()));
}

#[tokio::test]
#[ignore = "needs kind"]
async fn the_identity_guard_refuses_another_cluster() {
    let _cleanup = Cleanup(vec!["fd-e2e-guard".to_owned(), "fd-e2e-other".to_owned()]);
    let (dir, _temp) = run_dir("the-identity-guard");
    let dir = dir.as_path();
    let ctx = ctx(dir);
    // In scope: only the identity guard may refuse.
    let target = KindTarget::new(&spec("fd-e2e-guard", "single-node.yaml"), &ctx.scenario_dir)
        .with_scope(Scope::new(["default".to_owned()], false, "the test"));
    target.setup(&ctx).await.unwrap();
    // Another cluster, with a ConfigMap the refused fault would delete.
    let other_config = dir.join("other-kubeconfig");
    let other = other_config.display().to_string();
    sh(
        "kind",
        &[
            "create",
            "cluster",
            "--name",
            "fd-e2e-other",
            "--kubeconfig",
            &other,
            "--wait",
            "3m",
        ],
    );
    let created = kubectl(
        &other_config,
        &["create", "configmap", "sentinel", "-n", "default"],
    );
    assert!(created.status.success());
    // The run's kubeconfig now points at the other cluster.
    std::fs::copy(&other_config, dir.join("kubeconfig")).unwrap();
    let result = target
        .inject(
            "wrong",
            &FaultSpec::Kube(KubeFault::Delete(KubeDelete {
                kind: "ConfigMap".into(),
                namespace: Some("default".into()),
                name: Some("sentinel".into()),
                selector: None,
            })),
            &ctx.env,
            &ctx,
        )
        .await;
    let still_there = kubectl(
        &other_config,
        &["get", "configmap", "sentinel", "-n", "default"],
    )
    .status
    .success();
    sh(
        "kind",
        &[
            "delete",
            "cluster",
            "--name",
            "fd-e2e-other",
            "--kubeconfig",
            &other,
        ],
    );
    assert!(
        matches!(&result, Err(TargetError::Refused(m)) if m.contains("kube-system UID")),
        "{result:?}"
    );
    assert!(
        still_there,
        "the refused fault deleted the other cluster's ConfigMap"
    );
    target.teardown(&ctx, false).await;
    assert!(!clusters().contains(&"fd-e2e-guard".to_owned()));
}

/// Runs a drill with the real binary and a throwaway HOME; returns the journal.
fn run_drill(name: &str) -> serde_json::Value {
    let cluster = format!("fd-{name}");
    let _cleanup = Cleanup(vec![cluster.clone()]);
    let (dir, _temp) = run_dir(name);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run_dir = dir.join("run");
    let output = assert_cmd::Command::cargo_bin("firedrill")
        .unwrap()
        .current_dir(repo())
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        // firedrill sets it for every command itself.
        .env_remove("KUBECACHEDIR")
        .args([
            "run",
            &format!("scenarios/{name}.yaml"),
            "--seed",
            "7",
            "--run-dir",
        ])
        .arg(&run_dir)
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let journal: serde_json::Value = std::fs::read_to_string(run_dir.join("journal.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{name}: stdout {}\nstderr {}\njournal {journal:#}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!home.join(".kube").exists(), "{name}: ~/.kube was created");
    assert!(run_dir.join("kubeconfig").exists());
    assert!(
        run_dir.join("kube-cache").is_dir(),
        "{name}: kubectl's cache is not in the run dir"
    );
    assert_eq!(journal["verdict"], "passed", "{journal:#}");
    assert_eq!(journal["recovered"], true);
    // Detected, recovered by the runbook alone, every step as written.
    assert!(
        journal["ttd_ms"].is_u64(),
        "{name}: the outage was not detected: {journal:#}"
    );
    assert_eq!(journal["complete"], true, "{journal:#}");
    assert_eq!(journal["runbook_accuracy"], 100.0, "{journal:#}");
    let steps = journal["runbook"]["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "ok"), "{steps:#?}");
    assert!(
        !journal["faults"][0]["targets"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{journal:#}"
    );
    assert!(!clusters().contains(&cluster), "{cluster} was left behind");
    journal
}

#[test]
#[ignore = "needs kind"]
fn drill_cluster_deleted() {
    let journal = run_drill("cluster-deleted");
    assert_eq!(journal["faults"][0]["targets"][0], "fd-cluster-deleted");
}

#[test]
#[ignore = "needs kind"]
fn drill_node_loss() {
    let journal = run_drill("node-loss");
    let node = journal["faults"][0]["targets"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(node.starts_with("fd-node-loss-worker"), "{node}");
    // The stopped node was started again (by the runbook, then the revert).
    assert_eq!(journal["faults"][0]["reverted"], true, "{journal:#}");
}

#[test]
#[ignore = "needs kind"]
fn drill_namespace_deleted() {
    let journal = run_drill("namespace-deleted");
    assert_eq!(journal["faults"][0]["targets"][0], "Namespace/shop");
}

#[test]
#[ignore = "needs kind"]
fn drill_control_plane_down() {
    let journal = run_drill("control-plane-down");
    assert_eq!(
        journal["faults"][0]["targets"][0],
        "fd-control-plane-down-control-plane"
    );
    assert_eq!(journal["faults"][0]["reverted"], true, "{journal:#}");
}
