//! End to end on real kind clusters: the kind target driven directly, and the
//! real binary on the kind drills of `scenarios/`. They need `kind`, `docker`,
//! `kubectl`, `jq` and `curl`, and take minutes, so they are ignored by
//! default; `.github/workflows/kind-e2e.yml` runs them with
//! `cargo test --test kind_e2e -- --ignored --test-threads=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use firedrill::drill::yaml::Located;
use firedrill::drill::{FaultSpec, K8sProbe, NodeSelector, PodKillFault};
use firedrill::event::Emitter;
use firedrill::target::kind::{KindFault, KindTarget, NodeFault};
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
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let target = KindTarget::new(&spec("fd-e2e-target", "three-node.yaml"), &ctx.scenario_dir);
    let env = target.setup(&ctx).await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
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
                let networks = sh(
                    "docker",
                    &["inspect", "-f", "{{json .NetworkSettings.Networks}}", &node],
                );
                assert!(!networks.contains("\"kind\""), "{networks}");
            }
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
    let unschedulable = sh(
        "kubectl",
        &[
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.spec.unschedulable}",
        ],
    );
    assert_eq!(unschedulable, "true");
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

    let evidence = dir.path().join("evidence");
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
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let target = KindTarget::new(&spec("fd-e2e-guard", "single-node.yaml"), &ctx.scenario_dir);
    target.setup(&ctx).await.unwrap();
    // Another cluster, with a ConfigMap the refused fault would delete.
    let other_config = dir.path().join("other-kubeconfig");
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
    sh(
        "kubectl",
        &[
            "--kubeconfig",
            &other,
            "create",
            "configmap",
            "sentinel",
            "-n",
            "default",
        ],
    );
    // The run's kubeconfig now points at the other cluster.
    std::fs::copy(&other_config, dir.path().join("kubeconfig")).unwrap();
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
    let still_there = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &other,
            "get",
            "configmap",
            "sentinel",
            "-n",
            "default",
        ])
        .status()
        .unwrap()
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
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run_dir = dir.path().join("run");
    let output = assert_cmd::Command::cargo_bin("firedrill")
        .unwrap()
        .current_dir(repo())
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
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
    assert_eq!(journal["verdict"], "passed", "{journal:#}");
    assert_eq!(journal["recovered"], true);
    assert!(
        !journal["faults"][0]["targets"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{journal:#}"
    );
    let cluster = format!("fd-{name}");
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
}
