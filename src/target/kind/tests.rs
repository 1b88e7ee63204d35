//! The kind target against a recording runner and a mock API server: every
//! `kind`/`docker` argv and every Kubernetes request is asserted exactly.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::runner::{FakeRunner, Output};
use super::*;
use crate::event::Emitter;
use crate::located::{Located, OneOrMany};
use crate::target::ProbeOutcome;
use crate::target::kube::KubeDelete;
use crate::target::kube::PodKillFault;
use crate::target::local::KillFault;
use crate::target::local::LocalUndo;

use crate::target::kube::mock::{Exchange, Handle, assert_no_more, ex, identity, namespace, serve};

fn spec(cluster: &str) -> KindSpec {
    KindSpec {
        cluster: Located::new(cluster.to_owned()),
        config: Some(Located::new("../kind-configs/three-node.yaml".to_owned())),
        reuse: false,
        keep: false,
    }
}

fn ctx(run_dir: &Path) -> RunContext {
    RunContext {
        run_id: "r1".into(),
        run_dir: run_dir.to_path_buf(),
        workdir: run_dir.join("work"),
        scenario_dir: PathBuf::from("/drills/scenarios"),
        env: BTreeMap::from([("NS".to_owned(), "shop".to_owned())]),
        seed: 42,
        emitter: Emitter::new(Vec::new()),
    }
}

const NODES: &str = "drill-control-plane\ndrill-worker\ndrill-worker2\n";

/// A runner where kind and docker exist, the cluster `drill` does not exist
/// yet, and every command succeeds.
fn runner() -> FakeRunner {
    FakeRunner::new(&["kind", "docker"], |argv| match argv {
        "kind get clusters" => Output::ok("other\n"),
        "kind get kubeconfig --name drill" => Output::ok("apiVersion: v1\nkind: Config\n"),
        "kind get nodes --name drill" => Output::ok(NODES),
        "docker info --format {{.ServerVersion}}" => Output::ok("27.0.1\n"),
        _ => Output::ok(""),
    })
}

/// A target that went through setup against the fake runner and the mock.
async fn set_up(runner: &FakeRunner, dir: &Path) -> (KindTarget, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let target = KindTarget::with_runner(
        &spec("drill"),
        Path::new("/drills/scenarios"),
        Arc::new(runner.clone()),
    )
    .with_client(client)
    .with_scope(Scope::new(["shop".to_owned()], false, "`scope`"));
    let server = serve(handle, vec![identity("uid-1")]);
    target.setup(&ctx(dir)).await.unwrap();
    let handle = server.await.unwrap();
    (target, handle)
}

fn worker(count: u32) -> NodeSelector {
    NodeSelector {
        node: None,
        role: Some(Located::new("worker".to_owned())),
        count: Some(count),
    }
}

fn pod(name: &str, extra: Value) -> Value {
    let mut pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"}});
    if let (Some(pod), Some(extra)) = (pod.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            pod.insert(key.clone(), value.clone());
        }
    }
    pod
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {}, "items": items})
}

#[tokio::test]
async fn setup_creates_the_cluster_with_its_own_kubeconfig_and_records_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner();
    let (target, handle) = set_up(&runner, dir.path()).await;
    let kubeconfig = dir.path().join("kubeconfig");
    let k = kubeconfig.display().to_string();
    assert_eq!(
        runner.argvs(),
        vec![
            "docker info --format {{.ServerVersion}}".to_owned(),
            "kind get clusters".to_owned(),
            format!(
                "kind create cluster --name drill --config /drills/scenarios/../kind-configs/three-node.yaml --kubeconfig {k} --wait 5m"
            ),
            "kind get kubeconfig --name drill".to_owned(),
        ]
    );
    for call in runner.calls() {
        assert_eq!(
            call.env,
            BTreeMap::from([
                ("KUBECONFIG".to_owned(), k.clone()),
                (
                    "KUBECACHEDIR".to_owned(),
                    dir.path().join("kube-cache").display().to_string()
                ),
            ]),
            "{}",
            call.argv()
        );
    }
    assert_eq!(
        std::fs::read_to_string(&kubeconfig).unwrap(),
        "apiVersion: v1\nkind: Config\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(target.conn.pinned().as_deref(), Some("uid-1"));
    assert_eq!(target.describe(), "kind:drill");

    // The cluster this run created is deleted at the end, through its own kubeconfig.
    target.teardown(&ctx(dir.path()), false).await;
    assert_eq!(
        runner.argvs().last().unwrap(),
        &format!("kind delete cluster --name drill --kubeconfig {k}")
    );
    drop(target);
    let server = tokio::spawn(async move { handle });
    assert_no_more(server).await;
}

#[tokio::test]
async fn setup_returns_kubeconfig_kube_cache_and_cluster_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner.clone()))
        .with_client(Client::new(service, "default"));
    let server = serve(handle, vec![identity("uid-1")]);
    let env = target.setup(&ctx(dir.path())).await.unwrap();
    assert_eq!(
        env,
        BTreeMap::from([
            ("CLUSTER".to_owned(), "drill".to_owned()),
            (
                "KUBECONFIG".to_owned(),
                dir.path().join("kubeconfig").display().to_string()
            ),
            (
                "KUBECACHEDIR".to_owned(),
                dir.path().join("kube-cache").display().to_string()
            ),
            ("CONTAINER_ENGINE".to_owned(), "docker".to_owned()),
        ])
    );
    // The run records that it made the cluster (for resume and clean).
    let marker = std::fs::read_to_string(dir.path().join(CREATED_MARKER)).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&marker).unwrap(),
        json!({"cluster": "drill", "uid": "uid-1"})
    );
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn a_create_that_lost_the_race_for_the_name_does_not_delete_the_winners_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // Not there when listed; made by another run before this create.
    let runner = FakeRunner::new(&["kind", "docker"], |argv| match argv {
        "kind get clusters" => Output::ok(""),
        a if a.starts_with("kind create cluster") => Output::failed(
            1,
            "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"drill\"",
        ),
        _ => Output::ok(""),
    });
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner.clone()));
    assert!(target.setup(&ctx(dir.path())).await.is_err());
    target.teardown(&ctx(dir.path()), false).await;
    assert!(
        !runner.argvs().iter().any(|a| a.starts_with("kind delete")),
        "{:?}",
        runner.argvs()
    );
    assert!(!dir.path().join(CREATED_MARKER).exists());
}

#[tokio::test]
async fn a_resumed_run_deletes_the_cluster_it_created_and_refuses_another_of_its_name() {
    for (recorded, deleted) in [("uid-1", true), ("uid-of-another", false)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CREATED_MARKER),
            json!({"cluster": "drill", "uid": recorded}).to_string(),
        )
        .unwrap();
        let existing = FakeRunner::new(&["kind", "docker"], |argv| match argv {
            "kind get clusters" => Output::ok("drill\n"),
            _ => Output::ok(""),
        });
        let mut resumed = spec("drill");
        resumed.reuse = true;
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let target = KindTarget::with_runner(&resumed, Path::new("/d"), Arc::new(existing.clone()))
            .with_client(Client::new(service, "default"));
        let server = serve(handle, vec![identity("uid-1")]);
        let setup = target.setup(&ctx(dir.path())).await;
        if deleted {
            setup.unwrap();
        } else {
            // Another cluster under the run's name: nothing is done to it.
            assert!(
                matches!(&setup, Err(TargetError::Refused(m)) if m.contains("UID uid-of-another recorded") && m.contains("uid-1 now")),
                "{setup:?}"
            );
        }
        target.teardown(&ctx(dir.path()), false).await;
        let kubeconfig = dir.path().join("kubeconfig").display().to_string();
        assert_eq!(
            existing.argvs().contains(&format!(
                "kind delete cluster --name drill --kubeconfig {kubeconfig}"
            )),
            deleted,
            "recorded {recorded}: {:?}",
            existing.argvs()
        );
        drop(target);
        assert_no_more(server).await;
    }
}

#[tokio::test]
async fn kept_clusters_and_reused_clusters_are_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner();
    let (target, _handle) = set_up(&runner, dir.path()).await;
    let before = runner.calls().len();
    target.teardown(&ctx(dir.path()), true).await;
    assert_eq!(runner.calls().len(), before, "--keep must not delete");

    let existing = FakeRunner::new(&["kind", "docker"], |argv| match argv {
        "kind get clusters" => Output::ok("drill\n"),
        "kind get kubeconfig --name drill" => Output::ok("apiVersion: v1\n"),
        _ => Output::ok(""),
    });
    let mut reuse = spec("drill");
    reuse.reuse = true;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let target = KindTarget::with_runner(&reuse, Path::new("/d"), Arc::new(existing.clone()))
        .with_client(Client::new(service, "default"));
    let server = serve(handle, vec![identity("uid-9")]);
    // Another run, which did not make the cluster.
    let dir = tempfile::tempdir().unwrap();
    target.setup(&ctx(dir.path())).await.unwrap();
    target.teardown(&ctx(dir.path()), false).await;
    assert_eq!(
        existing.argvs(),
        vec![
            "docker info --format {{.ServerVersion}}",
            "kind get clusters",
            "kind get kubeconfig --name drill"
        ]
    );
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn an_existing_cluster_without_reuse_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let existing = FakeRunner::new(&["kind", "docker"], |argv| match argv {
        "kind get clusters" => Output::ok("drill\n"),
        _ => Output::ok(""),
    });
    let target =
        KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(existing.clone()));
    let error = target.setup(&ctx(dir.path())).await.unwrap_err();
    assert!(
        matches!(&error, TargetError::Unavailable(m) if m.contains("already exists") && m.contains("reuse")),
        "{error}"
    );
    target.teardown(&ctx(dir.path()), false).await;
    assert_eq!(
        existing.argvs(),
        vec![
            "docker info --format {{.ServerVersion}}",
            "kind get clusters"
        ]
    );
}

#[tokio::test]
async fn podman_is_used_when_docker_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let runner = FakeRunner::new(&["kind", "podman"], |argv| match argv {
        "kind get clusters" => Output::ok(""),
        _ => Output::ok(""),
    });
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner.clone()))
        .with_client(Client::new(service, "default"));
    let server = serve(handle, vec![identity("u")]);
    let vars = target.setup(&ctx(dir.path())).await.unwrap();
    // Steps and runbooks get the engine and kind's switch too.
    assert_eq!(vars["CONTAINER_ENGINE"], "podman");
    assert_eq!(vars["KIND_EXPERIMENTAL_PROVIDER"], "podman");
    let calls = runner.calls();
    // podman's info has no .ServerVersion: `--format json`, as kind asks it.
    assert_eq!(calls[0].argv(), "podman info --format json");
    for call in &calls {
        assert_eq!(
            call.env
                .get("KIND_EXPERIMENTAL_PROVIDER")
                .map(String::as_str),
            Some("podman")
        );
    }
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn missing_tools_are_unavailable_with_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let no_kind = FakeRunner::new(&["docker"], |_| Output::ok(""));
    let target =
        KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(no_kind.clone()));
    let error = target.setup(&ctx(dir.path())).await.unwrap_err();
    assert!(
        matches!(&error, TargetError::Unavailable(m) if m.contains("`kind` is not installed")),
        "{error}"
    );
    assert!(no_kind.calls().is_empty());

    let no_engine = FakeRunner::new(&["kind"], |_| Output::ok(""));
    let target =
        KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(no_engine.clone()));
    let error = target.setup(&ctx(dir.path())).await.unwrap_err();
    assert!(
        matches!(&error, TargetError::Unavailable(m) if m.contains("docker") && m.contains("podman")),
        "{error}"
    );
    assert!(no_engine.calls().is_empty());

    let stopped = FakeRunner::new(&["kind", "docker"], |_| {
        Output::failed(1, "Cannot connect to the Docker daemon")
    });
    let target =
        KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(stopped.clone()));
    let error = target.setup(&ctx(dir.path())).await.unwrap_err();
    assert!(
        matches!(&error, TargetError::Unavailable(m) if m.contains("Cannot connect")),
        "{error}"
    );
}

/// Sets up, then injects `fault` with `exchanges` served after the identity check.
async fn inject_with(
    fault: &FaultSpec,
    runner: &FakeRunner,
    exchanges: Vec<Exchange>,
) -> (
    Result<Injected, TargetError>,
    KindTarget,
    tokio::task::JoinHandle<Handle>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let (target, handle) = set_up(runner, dir.path()).await;
    let server = serve(handle, exchanges);
    let env = ctx(dir.path()).env;
    let result = target.inject("hit", fault, &env, &ctx(dir.path())).await;
    (result, target, server, dir)
}

#[tokio::test]
async fn node_faults_run_the_container_engine_on_the_chosen_nodes_and_revert() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("stop_node", "docker stop {n}", Some("docker start {n}")),
        ("kill_node", "docker kill {n}", None),
        ("pause_node", "docker pause {n}", Some("docker unpause {n}")),
        (
            "stop_kubelet",
            "docker exec {n} systemctl stop kubelet",
            Some("docker exec {n} systemctl start kubelet"),
        ),
    ];
    for (kind, inject, revert) in cases {
        let selector = worker(2);
        let fault = FaultSpec::Kind(match *kind {
            "stop_node" => KindFault::Node(NodeFault::Stop, selector),
            "kill_node" => KindFault::Node(NodeFault::Kill, selector),
            "pause_node" => KindFault::Node(NodeFault::Pause, selector),
            _ => KindFault::Node(NodeFault::StopKubelet, selector),
        });
        let runner = runner();
        let (result, target, server, dir) =
            inject_with(&fault, &runner, vec![identity("uid-1")]).await;
        let injected = result.unwrap();
        assert_eq!(
            injected.targets,
            vec!["drill-worker", "drill-worker2"],
            "{kind}"
        );
        let argvs = runner.argvs();
        let after_setup = &argvs[4..];
        let expected: Vec<String> = std::iter::once("kind get nodes --name drill".to_owned())
            .chain(injected.targets.iter().map(|n| inject.replace("{n}", n)))
            .collect();
        assert_eq!(after_setup, expected.as_slice(), "{kind}");
        match (revert, &injected.undo) {
            (Some(revert), Some(undo)) => {
                let done = target.revert(undo, &ctx(dir.path())).await.unwrap();
                let argvs = runner.argvs();
                let reverted: Vec<String> = injected
                    .targets
                    .iter()
                    .map(|n| revert.replace("{n}", n))
                    .collect();
                assert_eq!(&argvs[argvs.len() - 2..], reverted.as_slice(), "{kind}");
                assert!(done.contains(&reverted[0]), "{done}");
            }
            (None, None) => {}
            other => panic!("{kind}: undo {other:?}"),
        }
        drop(target);
        assert_no_more(server).await;
    }
}

#[tokio::test]
async fn nodes_are_chosen_by_name_or_by_role_with_the_seed() {
    let nodes: Vec<String> = NODES.lines().map(str::to_owned).collect();
    let env = BTreeMap::from([("N".to_owned(), "drill-worker2".to_owned())]);
    let by_name = NodeSelector {
        node: Some("${N}".to_owned()),
        role: None,
        count: None,
    };
    assert_eq!(
        choose_nodes("drill", &nodes, &by_name, &env, 1).unwrap(),
        vec!["drill-worker2"]
    );
    let missing = NodeSelector {
        node: Some("drill-worker9".to_owned()),
        role: None,
        count: None,
    };
    assert!(choose_nodes("drill", &nodes, &missing, &env, 1).is_err());
    let one = worker(1);
    let picks: std::collections::BTreeSet<Vec<String>> = (0..32)
        .map(|seed| choose_nodes("drill", &nodes, &one, &env, seed).unwrap())
        .collect();
    assert_eq!(
        picks.len(),
        2,
        "both workers get chosen by some seed: {picks:?}"
    );
    assert_eq!(
        choose_nodes("drill", &nodes, &one, &env, 7).unwrap(),
        choose_nodes("drill", &nodes, &one, &env, 7).unwrap()
    );
    let control = NodeSelector {
        node: None,
        role: Some(Located::new("control-plane".to_owned())),
        count: None,
    };
    assert_eq!(
        choose_nodes("drill", &nodes, &control, &env, 3).unwrap(),
        vec!["drill-control-plane"]
    );
    assert!(choose_nodes("drill", &nodes, &worker(3), &env, 3).is_err());
    assert_eq!(node_role("drill", "drill-external-load-balancer"), None);
    assert_eq!(node_role("drill", "other-worker"), None);
}

#[tokio::test]
async fn control_plane_down_moves_the_apiserver_manifest_and_back() {
    let fault = FaultSpec::Kind(KindFault::ControlPlaneDown);
    let runner = runner();
    let (result, target, server, dir) = inject_with(&fault, &runner, vec![identity("uid-1")]).await;
    let injected = result.unwrap();
    assert_eq!(injected.targets, vec!["drill-control-plane"]);
    assert_eq!(
        &runner.argvs()[4..],
        &[
            "kind get nodes --name drill".to_owned(),
            "docker exec drill-control-plane mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/kube-apiserver.yaml.firedrill".to_owned()
        ]
    );
    target
        .revert(injected.undo.as_ref().unwrap(), &ctx(dir.path()))
        .await
        .unwrap();
    assert_eq!(
        runner.argvs().last().unwrap(),
        "docker exec drill-control-plane sh -c if [ -f /etc/kubernetes/kube-apiserver.yaml.firedrill ]; then mv /etc/kubernetes/kube-apiserver.yaml.firedrill /etc/kubernetes/manifests/kube-apiserver.yaml; fi; test -f /etc/kubernetes/manifests/kube-apiserver.yaml"
    );
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn delete_cluster_deletes_it_through_its_own_kubeconfig() {
    let fault = FaultSpec::Kind(KindFault::DeleteCluster);
    let runner = runner();
    let (result, target, server, dir) = inject_with(&fault, &runner, vec![identity("uid-1")]).await;
    let injected = result.unwrap();
    assert_eq!(injected.targets, vec!["drill"]);
    assert_eq!(injected.undo, None);
    assert_eq!(
        runner.argvs()[4..],
        [format!(
            "kind delete cluster --name drill --kubeconfig {}",
            dir.path().join("kubeconfig").display()
        )]
    );
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn pod_kill_deletes_the_pods_the_seed_chooses() {
    let fault = FaultSpec::Kube(KubeFault::PodKill(PodKillFault {
        namespace: "${NS}".into(),
        selector: "app=web".into(),
        count: Some(2),
        percent: None,
    }));
    let pods = list(
        "Pod",
        vec![
            pod("web-a", json!({})),
            pod("web-b", json!({})),
            pod("web-c", json!({})),
            pod(
                "web-gone",
                json!({"metadata": {"name": "web-gone", "namespace": "shop", "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            ),
        ],
    );
    // Which two: the seed decides, and the same seed always decides the same.
    let expected = api::choose(
        vec!["web-a".into(), "web-b".into(), "web-c".into()],
        2,
        step_seed(42, "hit"),
    );
    let mut exchanges = vec![
        identity("uid-1"),
        ex(
            "GET",
            "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb",
            pods,
        ),
    ];
    for name in &expected {
        exchanges.push(
            ex(
                "DELETE",
                format!("/api/v1/namespaces/shop/pods/{name}?"),
                pod(name, json!({})),
            )
            // No grace period: a pod killed, not asked to stop.
            .body(json!({"gracePeriodSeconds": 0})),
        );
    }
    let runner = runner();
    let (result, target, server, _dir) = inject_with(&fault, &runner, exchanges).await;
    let injected = result.unwrap();
    assert_eq!(
        injected.targets,
        expected
            .iter()
            .map(|n| format!("shop/{n}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(injected.detail, format!("seed {}", step_seed(42, "hit")));
    assert_eq!(injected.undo, None);
    assert_eq!(runner.argvs().len(), 4, "pod_kill runs no command");
    drop(target);
    assert_no_more(server).await;
}

#[test]
fn pod_kill_counts_and_percentages() {
    let f = |count, percent| PodKillFault {
        namespace: "n".into(),
        selector: "s".into(),
        count,
        percent,
    };
    assert_eq!(api::pod_kill_count(&f(None, None), 5), 1);
    assert_eq!(api::pod_kill_count(&f(Some(3), None), 5), 3);
    assert_eq!(api::pod_kill_count(&f(Some(9), None), 5), 5);
    assert_eq!(api::pod_kill_count(&f(None, Some(50)), 5), 3);
    assert_eq!(api::pod_kill_count(&f(None, Some(1)), 5), 1);
    assert_eq!(api::pod_kill_count(&f(None, Some(100)), 4), 4);
}

#[tokio::test]
async fn the_identity_guard_refuses_a_different_cluster() {
    let fault = FaultSpec::Kube(KubeFault::Delete(KubeDelete {
        kind: "Namespace".into(),
        namespace: None,
        name: Some("shop".into()),
        selector: None,
    }));
    let runner = runner();
    // The kubeconfig now points at another cluster: kube-system has another UID.
    let (result, target, server, _dir) =
        inject_with(&fault, &runner, vec![identity("uid-OTHER")]).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, TargetError::Refused(m) if m.contains("uid-OTHER") && m.contains("uid-1") && m.contains("kind cluster drill")),
        "{error}"
    );
    drop(target);
    // No DELETE (nor anything else) followed the identity check.
    assert_no_more(server).await;

    // A node fault is refused before any container is touched.
    let fault = FaultSpec::Kind(KindFault::Node(NodeFault::Stop, worker(1)));
    let runner = super::tests::runner();
    let (result, target, server, _dir) =
        inject_with(&fault, &runner, vec![identity("uid-OTHER")]).await;
    assert!(matches!(result, Err(TargetError::Refused(_))));
    assert_eq!(
        runner.argvs().len(),
        4,
        "only setup's commands ran: {:?}",
        runner.argvs()
    );
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn an_unreachable_api_server_refuses_destructive_faults() {
    let fault = FaultSpec::Kind(KindFault::DeleteCluster);
    let runner = runner();
    let unreachable = ex("GET", "/api/v1/namespaces/kube-system", json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "unavailable", "reason": "ServiceUnavailable", "code": 503})).status(503);
    let (result, target, server, _dir) = inject_with(&fault, &runner, vec![unreachable]).await;
    assert!(
        matches!(&result, Err(TargetError::Refused(m)) if m.contains("cannot confirm")),
        "{result:?}"
    );
    assert_eq!(runner.argvs().len(), 4);
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn an_api_fault_outside_the_scope_is_refused_after_the_identity_check_and_sends_nothing() {
    for fault in [
        KubeFault::PodKill(PodKillFault {
            namespace: "billing".into(),
            selector: "app=web".into(),
            count: None,
            percent: None,
        }),
        // Expanded first: `${NS}` is shop, `${NS}-db` is not in scope.
        KubeFault::Delete(KubeDelete {
            kind: "Namespace".into(),
            namespace: None,
            name: Some("${NS}-db".into()),
            selector: None,
        }),
    ] {
        let runner = runner();
        let (result, target, server, _dir) =
            inject_with(&FaultSpec::Kube(fault), &runner, vec![identity("uid-1")]).await;
        assert!(
            matches!(&result, Err(TargetError::Refused(m)) if m.contains("outside the drill's scope") && m.contains("not one of shop")),
            "{result:?}"
        );
        drop(target);
        assert_no_more(server).await;
    }
}

#[tokio::test]
async fn delete_by_name_and_by_selector() {
    let by_name = FaultSpec::Kube(KubeFault::Delete(KubeDelete {
        kind: "Namespace".into(),
        namespace: None,
        name: Some("${NS}".into()),
        selector: None,
    }));
    let runner = runner();
    let exchanges = vec![
        identity("uid-1"),
        ex("DELETE", "/api/v1/namespaces/shop?", namespace("x"))
            .body(json!({"propagationPolicy": "Background"})),
    ];
    let (result, target, server, _dir) = inject_with(&by_name, &runner, exchanges).await;
    assert_eq!(result.unwrap().targets, vec!["Namespace/shop"]);
    drop(target);
    assert_no_more(server).await;

    let by_selector = FaultSpec::Kube(KubeFault::Delete(KubeDelete {
        kind: "ConfigMap".into(),
        namespace: Some("shop".into()),
        name: None,
        selector: Some("tier=config".into()),
    }));
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"}});
    let exchanges = vec![
        identity("uid-1"),
        ex(
            "GET",
            "/api/v1/namespaces/shop/configmaps?&labelSelector=tier%3Dconfig",
            list("ConfigMap", vec![cm("b"), cm("a")]),
        ),
        ex("DELETE", "/api/v1/namespaces/shop/configmaps/a?", cm("a"))
            .body(json!({"propagationPolicy": "Background"})),
        ex("DELETE", "/api/v1/namespaces/shop/configmaps/b?", cm("b"))
            .body(json!({"propagationPolicy": "Background"})),
    ];
    let (result, target, server, _dir) = inject_with(&by_selector, &runner, exchanges).await;
    assert_eq!(
        result.unwrap().targets,
        vec!["ConfigMap/shop/a", "ConfigMap/shop/b"]
    );
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn drain_cordons_evicts_and_reverts_by_uncordoning() {
    let fault = FaultSpec::Kube(KubeFault::DrainNode(NodeSelector {
        node: Some("drill-worker".into()),
        role: None,
        count: None,
    }));
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "drill-worker"}});
    let pods = list(
        "Pod",
        vec![
            pod("web-a", json!({})),
            pod(
                "kube-proxy-x",
                json!({"metadata": {"name": "kube-proxy-x", "namespace": "kube-system", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy", "uid": "d"}]}}),
            ),
            pod(
                "etcd-x",
                json!({"metadata": {"name": "etcd-x", "namespace": "kube-system", "annotations": {"kubernetes.io/config.mirror": "m"}}}),
            ),
            pod("done", json!({"status": {"phase": "Succeeded"}})),
        ],
    );
    let exchanges = vec![
        identity("uid-1"),
        ex("PATCH", "/api/v1/nodes/drill-worker?", node.clone())
            .content_type("application/merge-patch+json")
            .body(json!({"spec": {"unschedulable": true}})),
        ex("GET", "/api/v1/pods?&fieldSelector=spec.nodeName%3Ddrill-worker", pods),
        ex("POST", "/api/v1/namespaces/shop/pods/web-a/eviction?", json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
            .body(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-a", "namespace": "shop"}})),
        // Evicted is not gone: the drain waits until the pods left the node.
        ex("GET", "/api/v1/pods?&fieldSelector=spec.nodeName%3Ddrill-worker", list("Pod", vec![])),
    ];
    let runner = runner();
    let (result, target, server, dir) = inject_with(&fault, &runner, exchanges).await;
    let injected = result.unwrap();
    assert_eq!(injected.targets, vec!["drill-worker"]);
    assert_eq!(
        injected.detail,
        "drill-worker: evicted 1 pod(s): shop/web-a"
    );
    let handle = server.await.unwrap();
    let server = serve(
        handle,
        vec![
            ex("PATCH", "/api/v1/nodes/drill-worker?", node)
                .content_type("application/merge-patch+json")
                .body(json!({"spec": {"unschedulable": false}})),
        ],
    );
    let done = target
        .revert(injected.undo.as_ref().unwrap(), &ctx(dir.path()))
        .await
        .unwrap();
    assert_eq!(done, "uncordoned drill-worker");
    drop(target);
    assert_no_more(server).await;
}

fn k8s_probe(kind: &str, change: impl FnOnce(&mut K8sProbe)) -> K8sProbe {
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

async fn probe_with(probe: &K8sProbe, exchanges: Vec<Exchange>) -> ProbeOutcome {
    let dir = tempfile::tempdir().unwrap();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner()))
        .with_client(Client::new(service, "default"));
    let server = serve(handle, exchanges);
    let outcome = target.probe(probe, &ctx(dir.path())).await;
    drop(target);
    assert_no_more(server).await;
    outcome
}

fn node_with(name: &str, ready: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]}})
}

#[tokio::test]
async fn node_ready_probe_counts_ready_nodes() {
    let nodes = list(
        "Node",
        vec![
            node_with("a", "True"),
            node_with("b", "True"),
            node_with("c", "Unknown"),
        ],
    );
    let three = k8s_probe("Node", |p| {
        p.condition = Some("Ready".into());
        p.count = Some(3);
    });
    let outcome = probe_with(&three, vec![ex("GET", "/api/v1/nodes?", nodes.clone())]).await;
    assert_eq!(
        outcome,
        ProbeOutcome::fail("2 Node Ready (want 3; 3 match)")
    );
    let two = k8s_probe("Node", |p| p.count = Some(2));
    assert!(
        probe_with(&two, vec![ex("GET", "/api/v1/nodes?", nodes.clone())])
            .await
            .ok
    );
    let all = k8s_probe("Node", |_| {});
    assert_eq!(
        probe_with(&all, vec![ex("GET", "/api/v1/nodes?", nodes)]).await,
        ProbeOutcome::fail("2/3 Node Ready")
    );
}

#[tokio::test]
async fn deployment_available_probe_reads_the_condition() {
    let deployment = |available: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}},
               "status": {"conditions": [{"type": "Progressing", "status": "True"}, {"type": "Available", "status": available}]}})
    };
    let probe = k8s_probe("Deployment", |p| {
        p.namespace = Some("${NS}".into());
        p.name = Some("web".into());
        p.condition = Some("Available".into());
    });
    let path = "/apis/apps/v1/namespaces/shop/deployments/web";
    assert_eq!(
        probe_with(&probe, vec![ex("GET", path, deployment("True"))]).await,
        ProbeOutcome::pass("1/1 Deployment Available")
    );
    assert!(
        !probe_with(&probe, vec![ex("GET", path, deployment("False"))])
            .await
            .ok
    );
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
    assert_eq!(
        probe_with(&probe, vec![ex("GET", path, not_found).status(404)]).await,
        ProbeOutcome::fail("0/0 Deployment Available")
    );
}

#[tokio::test]
async fn statefulset_and_pod_probes() {
    let set = |ready: i32| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
               "spec": {"replicas": 3, "selector": {}, "serviceName": "db", "template": {}},
               "status": {"replicas": 3, "readyReplicas": ready}})
    };
    let probe = k8s_probe("StatefulSet", |p| {
        p.namespace = Some("shop".into());
        p.name = Some("db".into());
    });
    let path = "/apis/apps/v1/namespaces/shop/statefulsets/db";
    assert!(probe_with(&probe, vec![ex("GET", path, set(3))]).await.ok);
    assert!(!probe_with(&probe, vec![ex("GET", path, set(2))]).await.ok);

    let ready_pod = |name: &str, ready: &str| {
        pod(
            name,
            json!({"status": {"conditions": [{"type": "Ready", "status": ready}]}}),
        )
    };
    let pods = list(
        "Pod",
        vec![ready_pod("web-a", "True"), ready_pod("web-b", "False")],
    );
    let probe = k8s_probe("Pod", |p| {
        p.namespace = Some("shop".into());
        p.selector = Some("app=web".into());
        p.count = Some(1);
    });
    assert_eq!(
        probe_with(
            &probe,
            vec![ex(
                "GET",
                "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb",
                pods
            )]
        )
        .await,
        ProbeOutcome::pass("1 Pod Ready (want 1; 2 match)")
    );
}

#[tokio::test]
async fn exists_probe_for_any_known_kind() {
    let probe = k8s_probe("Secret", |p| {
        p.namespace = Some("shop".into());
        p.name = Some("db-credentials".into());
        p.condition = Some("Exists".into());
    });
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials", "namespace": "shop"}});
    assert_eq!(
        probe_with(
            &probe,
            vec![ex(
                "GET",
                "/api/v1/namespaces/shop/secrets/db-credentials",
                secret
            )]
        )
        .await,
        ProbeOutcome::pass("1 Secret Exists (want 1; 1 match)")
    );
    let namespace_probe = k8s_probe("Namespace", |p| p.name = Some("shop".into()));
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
    assert!(
        !probe_with(
            &namespace_probe,
            vec![ex("GET", "/api/v1/namespaces/shop", not_found).status(404)]
        )
        .await
        .ok
    );
    // A kind not built in is looked up by discovery: served by nobody here.
    let unknown = k8s_probe("Widget", |p| p.name = Some("w".into()));
    let none = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "items": []});
    let detail = probe_with(
        &unknown,
        vec![ex("GET", "/apis", none.clone()), ex("GET", "/api", none)],
    )
    .await
    .detail;
    assert!(detail.contains("serves no kind `Widget`"), "{detail}");
}

#[tokio::test]
async fn apply_is_server_side_with_namespaces_first() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("web.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: shop\ndata:\n  greeting: hello\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    )
    .unwrap();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner()))
        .with_client(Client::new(service, "default"));
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "shop"}, "data": {"greeting": "hello"}});
    let server = serve(
        handle,
        vec![
            ex(
                "PATCH",
                "/api/v1/namespaces/shop?&force=true&fieldManager=firedrill",
                ns.clone(),
            )
            .content_type("application/apply-patch+yaml")
            .body(ns),
            ex(
                "PATCH",
                "/api/v1/namespaces/shop/configmaps/web-config?&force=true&fieldManager=firedrill",
                cm.clone(),
            )
            .content_type("application/apply-patch+yaml")
            .body(cm),
        ],
    );
    let mut run = ctx(dir.path());
    run.scenario_dir = dir.path().to_path_buf();
    let done = target
        .apply(&[PathBuf::from("manifests")], &run)
        .await
        .unwrap();
    assert_eq!(
        done,
        "applied 2 object(s): Namespace/shop, ConfigMap/shop/web-config"
    );
    drop(target);
    assert_no_more(server).await;
}

#[test]
fn manifests_without_kind_or_name_are_rejected_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "apiVersion: v1\nmetadata: {name: x}\n").unwrap();
    let error = api::read_manifests(&file).unwrap_err();
    assert!(
        error.to_string().contains("bad.yaml") && error.to_string().contains("`kind`"),
        "{error}"
    );
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n").unwrap();
    assert!(
        api::read_manifests(&file)
            .unwrap_err()
            .to_string()
            .contains("metadata.name")
    );
    std::fs::write(&file, "a: [\n").unwrap();
    assert!(
        api::read_manifests(&file)
            .unwrap_err()
            .to_string()
            .contains("bad.yaml")
    );
}

#[tokio::test]
async fn evidence_holds_events_node_conditions_and_logs_of_unready_pods() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner();
    let (target, handle) = set_up(&runner, dir.path()).await;
    let events = list(
        "Event",
        vec![
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "shop"},
                    "involvedObject": {"kind": "Pod", "name": "web-b"}, "reason": "BackOff",
                    "message": "Back-off restarting failed container", "type": "Warning",
                    "lastTimestamp": "2026-01-01T00:00:00Z"}),
        ],
    );
    let nodes = list("Node", vec![node_with("drill-worker", "False")]);
    let ready = |ready: &str| json!({"conditions": [{"type": "Ready", "status": ready}]});
    let pods = list(
        "Pod",
        vec![
            pod(
                "web-a",
                json!({"spec": {"containers": [{"name": "web"}]}, "status": ready("True")}),
            ),
            pod(
                "web-b",
                json!({"spec": {"containers": [{"name": "web"}]},
                       "status": {"conditions": [{"type": "Ready", "status": "False"}],
                                  "containerStatuses": [{"name": "web", "restartCount": 3, "ready": false, "image": "nginx", "imageID": ""}]}}),
            ),
        ],
    );
    let server = serve(
        handle,
        vec![
            ex("GET", "/api/v1/events?", events),
            ex("GET", "/api/v1/nodes?", nodes),
            ex("GET", "/api/v1/pods?", pods),
            Exchange {
                reply: Value::String("boom\n".into()),
                ..ex(
                    "GET",
                    "/api/v1/namespaces/shop/pods/web-b/log?&container=web&tailLines=500",
                    Value::Null,
                )
            },
            Exchange {
                reply: Value::String("crashed\n".into()),
                ..ex(
                    "GET",
                    "/api/v1/namespaces/shop/pods/web-b/log?&container=web&previous=true&tailLines=500",
                    Value::Null,
                )
            },
        ],
    );
    let evidence = dir.path().join("evidence");
    target.collect_evidence(&evidence, &ctx(dir.path())).await;
    let read = |name: &str| std::fs::read_to_string(evidence.join(name)).unwrap();
    assert_eq!(
        read("events.txt"),
        "2026-01-01T00:00:00Z shop Warning Pod/web-b BackOff: Back-off restarting failed container\n"
    );
    assert!(read("nodes.txt").contains("drill-worker\n  MemoryPressure=False"));
    assert!(read("nodes.txt").contains("Ready=False"));
    assert_eq!(read("pods/shop_web-b_web.log"), "boom\n");
    assert_eq!(read("pods/shop_web-b_web-previous.log"), "crashed\n");
    assert!(!evidence.join("pods/shop_web-a_web.log").exists());
    // The nodes' own logs (kubelet, containerd, static pods) too.
    assert_eq!(
        runner.argvs()[4..],
        [
            "docker ps --all --filter label=io.x-k8s.kind.cluster=drill --format {{.Names}}\t{{.Status}}".to_owned(),
            format!("kind export logs {} --name drill", evidence.join("kind-logs").display()),
        ]
    );
    drop(target);
    assert_no_more(server).await;
}

#[test]
fn preview_names_what_would_be_hit_without_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner.clone()));
    let stop = FaultSpec::Kind(KindFault::Node(NodeFault::Stop, worker(1)));
    assert_eq!(
        target.preview(&stop, &ctx(dir.path())),
        "`docker stop` on 1 worker node(s) chosen with the run's seed (kind cluster drill; its kube-system UID is checked first)"
    );
    let kill = FaultSpec::Kube(KubeFault::PodKill(PodKillFault {
        namespace: "${NS}".into(),
        selector: "app=web".into(),
        count: None,
        percent: Some(50),
    }));
    assert!(
        target
            .preview(&kill, &ctx(dir.path()))
            .starts_with("delete 50% of the pods matching `app=web` in namespace shop")
    );
    assert!(runner.calls().is_empty());
}

/// A tiny API server on loopback that answers every request with the
/// `kube-system` namespace of `uid` and records the request lines.
async fn loopback_api(uid: &'static str) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            record
                .lock()
                .unwrap()
                .push(text.lines().next().unwrap_or_default().to_owned());
            let body = namespace(uid).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (format!("http://{address}"), seen)
}

fn kubeconfig_for(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
    )
}

#[tokio::test]
async fn the_client_is_built_from_the_runs_kubeconfig_and_follows_it() {
    let (first, first_seen) = loopback_api("uid-first").await;
    let (second, second_seen) = loopback_api("uid-second").await;
    let kubeconfig = kubeconfig_for(&first);
    let runner = FakeRunner::new(&["kind", "docker"], move |argv| match argv {
        "kind get kubeconfig --name drill" => Output::ok(kubeconfig.clone()),
        "kind get nodes --name drill" => Output::ok(NODES),
        _ => Output::ok(""),
    });
    let dir = tempfile::tempdir().unwrap();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner.clone()));
    target.setup(&ctx(dir.path())).await.unwrap();
    assert_eq!(target.conn.pinned().as_deref(), Some("uid-first"));
    assert_eq!(
        *first_seen.lock().unwrap(),
        vec!["GET /api/v1/namespaces/kube-system HTTP/1.1"]
    );

    // The file now names another API server (say, a cluster recreated by hand
    // elsewhere): the client follows the file, and the guard refuses.
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig_for(&second)).unwrap();
    let stop = FaultSpec::Kind(KindFault::Node(NodeFault::Stop, worker(1)));
    let result = target
        .inject("hit", &stop, &BTreeMap::new(), &ctx(dir.path()))
        .await;
    assert!(
        matches!(&result, Err(TargetError::Refused(m)) if m.contains("uid-second")),
        "{result:?}"
    );
    assert_eq!(second_seen.lock().unwrap().len(), 1);
    assert_eq!(runner.argvs().len(), 4, "no container was touched");
}

#[tokio::test]
async fn a_missing_or_broken_kubeconfig_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let Err(error) = client_from_file(&missing).await else {
        panic!("a missing file gave a client")
    };
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );
    let broken = dir.path().join("kubeconfig");
    std::fs::write(&broken, "apiVersion: v1\nkind: Config\n").unwrap();
    let Err(error) = client_from_file(&broken).await else {
        panic!("a kubeconfig without a cluster gave a client")
    };
    assert!(
        error.to_string().contains(&broken.display().to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn run_faults_are_checked_against_the_identity_too() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner();
    let (target, handle) = set_up(&runner, dir.path()).await;
    let server = serve(handle, vec![identity("uid-1"), identity("uid-2")]);
    let what = "run the `run` fault";
    target
        .confirm_cluster(what, &ctx(dir.path()))
        .await
        .unwrap();
    let refused = target.confirm_cluster(what, &ctx(dir.path())).await;
    assert!(
        matches!(&refused, Err(TargetError::Refused(m)) if m.contains("run the `run` fault")),
        "{refused:?}"
    );
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn custom_resources_are_found_by_discovery_then_applied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("widget.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n",
    )
    .unwrap();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner()))
        .with_client(Client::new(service, "default"));
    let resources = json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "example.com/v1",
        "resources": [{"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
                       "verbs": ["get", "list", "patch", "create", "delete"]}]
    });
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}});
    let server = serve(
        handle,
        vec![
            ex("GET", "/apis/example.com/v1", resources),
            ex(
                "PATCH",
                "/apis/example.com/v1/namespaces/default/widgets/w?&force=true&fieldManager=firedrill",
                widget.clone(),
            )
            .content_type("application/apply-patch+yaml")
            .body(widget),
        ],
    );
    let mut run = ctx(dir.path());
    run.scenario_dir = dir.path().to_path_buf();
    let done = target
        .apply(&[PathBuf::from("widget.yaml")], &run)
        .await
        .unwrap();
    assert_eq!(done, "applied 1 object(s): Widget/default/w");
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn control_plane_down_takes_every_control_plane_of_an_ha_cluster() {
    let fault = FaultSpec::Kind(KindFault::ControlPlaneDown);
    let runner = FakeRunner::new(&["kind", "docker"], |argv| match argv {
        "kind get nodes --name drill" => Output::ok(
            "drill-external-load-balancer\ndrill-control-plane2\ndrill-control-plane\ndrill-worker\n",
        ),
        _ => Output::ok(""),
    });
    let (result, target, server, _dir) =
        inject_with(&fault, &runner, vec![identity("uid-1")]).await;
    let injected = result.unwrap();
    assert_eq!(
        injected.targets,
        vec!["drill-control-plane", "drill-control-plane2"]
    );
    let moved: Vec<String> = ["drill-control-plane", "drill-control-plane2"]
        .iter()
        .map(|n| format!("docker exec {n} mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/kube-apiserver.yaml.firedrill"))
        .collect();
    assert_eq!(runner.argvs()[5..], moved[..]);
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn reverts_of_faults_a_runbook_already_undid_succeed_and_real_failures_do_not() {
    let runner = FakeRunner::new(&["kind", "docker"], |argv| match argv {
        "docker unpause drill-worker" => {
            Output::failed(1, "Error response from daemon: Container abc is not paused")
        }
        "docker start drill-worker" => Output::failed(1, "Error: No such container: drill-worker"),
        _ => Output::ok(""),
    });
    let dir = tempfile::tempdir().unwrap();
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner.clone()));
    let engine = "docker".to_owned();
    let nodes = vec!["drill-worker".to_owned()];
    let ctx = ctx(dir.path());
    let unpause = Undo::Kind(KindUndo::UnpauseNodes {
        engine: engine.clone(),
        nodes: nodes.clone(),
    });
    assert_eq!(
        target.revert(&unpause, &ctx).await.unwrap(),
        "docker unpause drill-worker: already undone"
    );
    let start = Undo::Kind(KindUndo::StartNodes { engine, nodes });
    let error = target.revert(&start, &ctx).await.unwrap_err();
    assert!(error.to_string().contains("No such container"), "{error}");
    // A record of another target's fault is not undone here.
    let local = Undo::Local(LocalUndo::Resume { pgids: vec![1] });
    assert!(target.revert(&local, &ctx).await.is_err());
}

#[tokio::test]
async fn partition_cuts_a_node_off_inside_it_and_keeps_its_address() {
    let fault = FaultSpec::Kind(KindFault::Node(
        NodeFault::Partition,
        NodeSelector {
            node: Some("drill-worker2".into()),
            role: None,
            count: None,
        },
    ));
    let runner = runner();
    let (result, target, server, dir) = inject_with(&fault, &runner, vec![identity("uid-1")]).await;
    let injected = result.unwrap();
    assert_eq!(injected.targets, vec!["drill-worker2"]);
    // No `network disconnect`: kind's network refuses a reconnect with `--ip`.
    assert_eq!(
        runner.argvs()[4..],
        [
            "kind get nodes --name drill".to_owned(),
            format!("docker exec drill-worker2 sh -c {PARTITION}"),
        ]
    );
    let done = target
        .revert(injected.undo.as_ref().unwrap(), &ctx(dir.path()))
        .await
        .unwrap();
    let unpartition = format!("docker exec drill-worker2 sh -c {UNPARTITION}");
    assert_eq!(runner.argvs().last().unwrap(), &unpartition);
    assert_eq!(done, unpartition);
    drop(target);
    assert_no_more(server).await;
}

/// Runs the partition's shell scripts with `iptables` and `ip6tables`
/// replaced by recorders of a rule table: what they insert, the revert
/// removes, also when a runbook removed some first, and it fails while any
/// is left.
#[test]
fn the_partition_scripts_add_and_remove_exactly_their_rules() {
    let dir = tempfile::tempdir().unwrap();
    for tool in ["iptables", "ip6tables"] {
        let table = dir.path().join(format!("{tool}.rules"));
        std::fs::write(&table, "").unwrap();
        let script = format!(
            r#"#!/bin/sh
table={table}
[ "$1" = -w ] && shift
op=$1; shift
case $op in
  -I) echo "$*" >> $table ;;
  -D) grep -qxF -- "$*" $table || exit 1
      awk -v r="$*" 'done || $0 != r {{print; next}} {{done=1}}' $table > $table.new && mv $table.new $table ;;
  -S) sed 's/^/-A /' $table ;;
esac
"#,
            table = table.display()
        );
        let path = dir.path().join(tool);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |script: &str| {
        std::process::Command::new("sh")
            .args(["-c", script])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .status()
            .unwrap()
            .success()
    };
    let rules =
        |tool: &str| std::fs::read_to_string(dir.path().join(format!("{tool}.rules"))).unwrap();
    assert!(run(PARTITION));
    for tool in ["iptables", "ip6tables"] {
        let added = rules(tool);
        assert_eq!(added.lines().count(), 4, "{added}");
        for chain in [
            "INPUT -i eth0",
            "OUTPUT -o eth0",
            "FORWARD -i eth0",
            "FORWARD -o eth0",
        ] {
            assert!(
                added.contains(&format!(
                    "{chain} -m comment --comment firedrill-partition -j DROP"
                )),
                "{added}"
            );
        }
    }
    // A rule someone else added stays; one the runbook removed is fine.
    std::fs::write(
        dir.path().join("iptables.rules"),
        rules("iptables").replacen(
            "INPUT -i eth0 -m comment --comment firedrill-partition -j DROP\n",
            "",
            1,
        ) + "INPUT -p tcp --dport 22 -j ACCEPT\n",
    )
    .unwrap();
    assert!(run(UNPARTITION));
    assert_eq!(rules("iptables"), "INPUT -p tcp --dport 22 -j ACCEPT\n");
    assert_eq!(rules("ip6tables"), "");
    // Twice is fine.
    assert!(run(UNPARTITION));
}

#[tokio::test]
async fn a_node_fault_that_fails_on_one_node_undoes_the_nodes_it_already_hit() {
    let fault = FaultSpec::Kind(KindFault::Node(NodeFault::Stop, worker(2)));
    let failing = |second_start_fails: bool| {
        FakeRunner::new(&["kind", "docker"], move |argv| match argv {
            "kind get clusters" => Output::ok("other\n"),
            "kind get kubeconfig --name drill" => Output::ok("apiVersion: v1\nkind: Config\n"),
            "kind get nodes --name drill" => Output::ok(NODES),
            "docker stop drill-worker2" => {
                Output::failed(1, "Error response from daemon: cannot stop container")
            }
            "docker start drill-worker" if second_start_fails => {
                Output::failed(1, "Error response from daemon: cannot start container")
            }
            _ => Output::ok(""),
        })
    };
    for start_fails in [false, true] {
        let runner = failing(start_fails);
        let (result, target, server, _dir) =
            inject_with(&fault, &runner, vec![identity("uid-1")]).await;
        let error = result.unwrap_err().to_string();
        let stopped: Vec<String> = runner
            .argvs()
            .into_iter()
            .filter(|a| a.starts_with("docker stop") || a.starts_with("docker start"))
            .collect();
        // The seed may choose either order; the one stopped is started again.
        if stopped[0] == "docker stop drill-worker" {
            assert_eq!(
                stopped,
                [
                    "docker stop drill-worker",
                    "docker stop drill-worker2",
                    "docker start drill-worker"
                ]
            );
            if start_fails {
                assert!(
                    error.contains("left as the fault made them") && error.contains("drill-worker"),
                    "{error}"
                );
            } else {
                assert!(
                    error.contains("undone on the nodes already hit: drill-worker"),
                    "{error}"
                );
            }
        } else {
            // worker2 first: nothing was hit yet, nothing to undo.
            assert_eq!(stopped, ["docker stop drill-worker2"]);
            assert!(!error.contains("undone"), "{error}");
        }
        drop(target);
        assert_no_more(server).await;
    }
}

fn check(raw: &RawFault) -> Result<FaultSpec, Vec<String>> {
    crate::target::check_fault(parse_fault, raw)
}

#[test]
fn node_and_cluster_faults_are_validated_by_the_kind_target() {
    let stop = RawFault {
        stop_node: Some(worker(2)),
        ..RawFault::default()
    };
    assert_eq!(
        check(&stop),
        Ok(FaultSpec::Kind(KindFault::Node(NodeFault::Stop, worker(2))))
    );
    let none = RawFault {
        kill_node: Some(worker(0)),
        ..RawFault::default()
    };
    assert_eq!(
        check(&none),
        Err(vec!["step `hit`: `count: 0` hits no node".to_owned()])
    );
    let cluster = RawFault {
        delete_cluster: Some(Default::default()),
        ..RawFault::default()
    };
    assert_eq!(
        check(&cluster),
        Ok(FaultSpec::Kind(KindFault::DeleteCluster))
    );
    let kill = RawFault {
        kill: Some(KillFault {
            service: OneOrMany(vec![Located::new("web".to_owned())]),
            signal: None,
        }),
        ..RawFault::default()
    };
    assert_eq!(
        check(&kill),
        Err(vec!["fault `kill` is not supported by the kind target | it is a local target fault; on kind, a `run` fault can do the same inside a node; kind target faults: delete_cluster, stop_node, kill_node, pause_node, partition_node, stop_kubelet, control_plane_down, pod_kill, delete, drain_node, run".to_owned()])
    );
}

#[test]
fn node_faults_are_described_by_their_selector() {
    assert_eq!(
        KindFault::Node(NodeFault::Pause, worker(2)).describe(),
        "2 × worker"
    );
    let named = NodeSelector {
        node: Some("drill-worker".into()),
        role: None,
        count: None,
    };
    assert_eq!(
        KindFault::Node(NodeFault::StopKubelet, named).describe(),
        "drill-worker"
    );
    assert_eq!(KindFault::DeleteCluster.describe(), "");
    assert_eq!(KindFault::ControlPlaneDown.kind(), "control_plane_down");
    for fault in NodeFault::ALL {
        assert!(fault_kinds().contains(&fault.kind()), "{fault:?}");
    }
}

#[test]
fn a_partition_is_undone_from_the_record_events_jsonl_keeps() {
    let undo = Undo::Kind(KindUndo::Unpartition {
        engine: "docker".into(),
        nodes: vec!["drill-worker".into()],
    });
    let recorded = serde_json::to_value(&undo).unwrap();
    assert_eq!(
        recorded,
        json!({"kind": {"unpartition": {"engine": "docker", "nodes": ["drill-worker"]}}})
    );
    assert_eq!(serde_json::from_value::<Undo>(recorded).unwrap(), undo);
}

#[test]
fn the_kind_target_sets_its_variables_before_setup() {
    let target = KindTarget::with_runner(&spec("drill"), Path::new("/d"), Arc::new(runner()));
    assert_eq!(
        target.vars(Path::new("/runs/r")),
        BTreeMap::from([
            ("CLUSTER".to_owned(), "drill".to_owned()),
            ("KUBECONFIG".to_owned(), "/runs/r/kubeconfig".to_owned()),
            ("KUBECACHEDIR".to_owned(), "/runs/r/kube-cache".to_owned()),
        ])
    );
    // `validate` and the runbook linter know the same names, and those
    // setup learns (the engine).
    let set: Vec<String> = target.vars(Path::new("/r")).into_keys().collect();
    let mut known: Vec<&str> = VAR_NAMES
        .iter()
        .copied()
        .filter(|name| !matches!(*name, "CONTAINER_ENGINE" | "KIND_EXPERIMENTAL_PROVIDER"))
        .collect();
    known.sort();
    assert_eq!(set, known);
}

#[tokio::test]
async fn a_rebuilt_cluster_is_refused_until_it_is_re_pinned_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let runner = runner();
    let (target, handle) = set_up(&runner, dir.path()).await;
    let ctx = ctx(dir.path());
    // The runbook rebuilt the cluster: another kube-system UID.
    let server = serve(
        handle,
        vec![identity("uid-2"), identity("uid-2"), identity("uid-2")],
    );
    let refused = target.confirm_cluster("inject pod_kill", &ctx).await;
    assert!(
        matches!(&refused, Err(TargetError::Refused(m)) if m.contains("kube-system UID uid-2, expected uid-1")),
        "{refused:?}"
    );
    let repinned = target.repin(&ctx).await.unwrap();
    assert!(
        repinned.contains("re-pinned: kube-system UID uid-1 -> uid-2"),
        "{repinned}"
    );
    // The run made the cluster it rebuilt: resume and clean know it by its
    // new UID.
    let marker = std::fs::read_to_string(dir.path().join(CREATED_MARKER)).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&marker).unwrap(),
        json!({"cluster": "drill", "uid": "uid-2"})
    );
    target
        .confirm_cluster("inject pod_kill", &ctx)
        .await
        .unwrap();
    drop(target);
    assert_no_more(server).await;
}
