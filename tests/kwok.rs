//! The Kubernetes layer against a real API server: a kwok cluster (real
//! kube-apiserver, controller-manager and scheduler; simulated nodes and
//! pods) built by `.ci/install-k8s`. One cluster serves the API tests of
//! this binary, each in a namespace of its own; the kwok target's own
//! lifecycle and faults get a cluster of their own. Every cluster is
//! deleted at the end, panic or not, and checked gone in /proc.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::kwok::{self, KwokCluster};
use firedrill::located::Located;
use firedrill::target::kube::api;
use firedrill::target::kube::{K8sProbe, KubeDelete, KubeUndo, PodKillFault};
use firedrill::target::kwok::ports;
use firedrill::target::{RunContext, Target, TargetError};
use kube::Client;
use serde_json::{Value, json};

/// The cluster the API tests share (created on first use).
static SHARED: OnceLock<KwokCluster> = OnceLock::new();

/// Deletes the shared cluster when the test binary exits (statics are
/// never dropped); processes left behind fail the whole binary.
extern "C" fn delete_shared() {
    if let Some(cluster) = SHARED.get()
        && let Err(error) = cluster.delete()
    {
        eprintln!("{error}");
        // SAFETY: ends the process at once, as the harness's own exit would.
        unsafe { libc::_exit(101) };
    }
}

fn shared() -> &'static KwokCluster {
    SHARED.get_or_init(|| {
        let cluster = KwokCluster::create_temp("fd-test-api", 3);
        // SAFETY: registers a plain function once, for process exit.
        unsafe { libc::atexit(delete_shared) };
        cluster
    })
}

async fn client(cluster: &KwokCluster) -> Client {
    firedrill::target::kube::conn::client_from_file(&cluster.kubeconfig())
        .await
        .unwrap()
}

/// A fresh namespace of the shared cluster for one test, once its `default`
/// service account exists: until the controller creates it, the API server
/// refuses pods in the namespace.
fn namespace(cluster: &KwokCluster, name: &str) -> String {
    cluster.kubectl(&["create", "namespace", name]);
    cluster.kubectl(&[
        "-n",
        name,
        "wait",
        "--for=create",
        "serviceaccount/default",
        "--timeout=60s",
    ]);
    name.to_owned()
}

fn deployment(namespace: &str, name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      nodeSelector: {{type: kwok}}\n      containers: [{{name: c, image: registry.invalid/never-pulled}}]\n"
    )
}

fn probe(kind: &str, namespace: Option<&str>, name: Option<&str>) -> K8sProbe {
    K8sProbe {
        kind: Located::new(kind.to_owned()),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        selector: None,
        condition: None,
        count: None,
    }
}

async fn check(client: &Client, probe: &K8sProbe) -> firedrill::target::ProbeOutcome {
    api::probe(client, probe, &BTreeMap::new()).await
}

/// Polls a probe until it has the wanted result (up to `patience`).
async fn until(client: &Client, probe: &K8sProbe, ok: bool, patience: Duration) -> String {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let outcome = check(client, probe).await;
        if outcome.ok == ok {
            return outcome.detail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "probe {probe:?} still {} after {patience:?}: {}",
            if ok { "failing" } else { "passing" },
            outcome.detail
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pod_names(cluster: &KwokCluster, namespace: &str, selector: &str) -> Vec<String> {
    let out = cluster.kubectl(&[
        "-n",
        namespace,
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ]);
    out.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn pod_kill_by_count_and_percent_kills_at_once() {
    let cluster = shared();
    let ns = namespace(cluster, "t-pod-kill");
    cluster.kubectl_stdin(&["apply", "-f", "-"], &deployment(&ns, "web", 4));
    cluster.kubectl(&[
        "-n",
        &ns,
        "rollout",
        "status",
        "deployment/web",
        "--timeout=90s",
    ]);
    let client = client(cluster).await;
    let before = pod_names(cluster, &ns, "app=web");
    assert_eq!(before.len(), 4, "{before:?}");

    let by_count = PodKillFault {
        namespace: ns.clone(),
        selector: "app=web".into(),
        count: Some(1),
        percent: None,
    };
    let hit = api::pod_kill(&client, &by_count, 7).await.unwrap();
    assert_eq!(hit.len(), 1, "{hit:?}");
    // No grace period: the pod is gone from the API at once, not Terminating.
    let name = hit[0].strip_prefix(&format!("{ns}/")).unwrap();
    let (found, _, stderr) = cluster.try_kubectl(&["-n", &ns, "get", "pod", name]);
    assert!(!found && stderr.contains("NotFound"), "{stderr}");

    cluster.kubectl(&[
        "-n",
        &ns,
        "rollout",
        "status",
        "deployment/web",
        "--timeout=90s",
    ]);
    let by_percent = PodKillFault {
        count: None,
        percent: Some(50),
        ..by_count
    };
    let hit = api::pod_kill(&client, &by_percent, 7).await.unwrap();
    assert_eq!(hit.len(), 2, "50% of 4 pods: {hit:?}");
    let left = pod_names(cluster, &ns, "app=web");
    for pod in &hit {
        let name = pod.strip_prefix(&format!("{ns}/")).unwrap();
        assert!(
            !left.iter().any(|l| l == name),
            "{name} still listed: {left:?}"
        );
    }

    let none = PodKillFault {
        selector: "app=nothing".into(),
        ..by_percent
    };
    let Err(TargetError::Failed(error)) = api::pod_kill(&client, &none, 7).await else {
        panic!("no matching pods must fail the fault");
    };
    assert_eq!(
        error,
        format!("no pods match `app=nothing` in namespace {ns}")
    );
}

fn crd(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {
                "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}],
        },
    })
}

#[tokio::test]
async fn apply_puts_namespaces_and_crds_first_and_waits_until_established() {
    let cluster = shared();
    let client = client(cluster).await;
    let group = "apply.firedrill.test";
    // Written in the worst order: the custom object before its kind and its
    // namespace exist.
    let docs = vec![
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
               "metadata": {"name": "w1", "namespace": "t-apply"}, "spec": {"size": 3}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c1", "namespace": "t-apply"}, "data": {"a": "b"}}),
        crd(group),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t-apply"}}),
    ];
    let applied = api::apply(&client, docs).await.unwrap();
    assert_eq!(
        applied,
        vec![
            format!("CustomResourceDefinition/widgets.{group}"),
            "Namespace/t-apply".to_owned(),
            "Widget/t-apply/w1".to_owned(),
            "ConfigMap/t-apply/c1".to_owned(),
        ]
    );
    let size = cluster.kubectl(&[
        "-n",
        "t-apply",
        "get",
        &format!("widgets.{group}"),
        "w1",
        "-o",
        "jsonpath={.spec.size}",
    ]);
    assert_eq!(size, "3");
    // Applied again: server-side apply is idempotent.
    let again = api::apply(
        &client,
        vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c1", "namespace": "t-apply"}, "data": {"a": "c"}})],
    )
    .await
    .unwrap();
    assert_eq!(again, vec!["ConfigMap/t-apply/c1".to_owned()]);
}

#[tokio::test]
async fn delete_by_name_and_selector_incl_namespaces_and_custom_resources() {
    let cluster = shared();
    let client = client(cluster).await;
    let group = "delete.firedrill.test";
    let ns = "t-delete";
    api::apply(
        &client,
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            crd(group),
            json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                   "metadata": {"name": "w1", "namespace": ns}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "a", "namespace": ns, "labels": {"tier": "config"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "b", "namespace": ns, "labels": {"tier": "config"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "keep", "namespace": ns}}),
        ],
    )
    .await
    .unwrap();
    let delete = |kind: &str, name: Option<&str>, selector: Option<&str>| KubeDelete {
        kind: kind.to_owned(),
        namespace: Some(ns.to_owned()),
        name: name.map(str::to_owned),
        selector: selector.map(str::to_owned),
    };

    // A custom resource, by its kind (found by discovery).
    // (`Widget.<group>`: other tests serve a Widget kind in their own group.)
    let hit = api::delete_objects(
        &client,
        &delete(&format!("Widget.{group}"), Some("w1"), None),
    )
    .await
    .unwrap();
    assert_eq!(hit, vec![format!("Widget/{ns}/w1")]);
    let exists = probe(&format!("Widget.{group}"), Some(ns), Some("w1"));
    until(&client, &exists, false, Duration::from_secs(30)).await;

    // By selector: the two labelled ConfigMaps, not the third.
    let hit = api::delete_objects(&client, &delete("ConfigMap", None, Some("tier=config")))
        .await
        .unwrap();
    assert_eq!(
        hit,
        vec![format!("ConfigMap/{ns}/a"), format!("ConfigMap/{ns}/b")]
    );
    let left = cluster.kubectl(&["-n", ns, "get", "configmaps", "-o", "name"]);
    assert!(
        left.contains("configmap/keep") && !left.contains("configmap/a\n"),
        "{left}"
    );

    // An unknown kind is an error naming it, not a silent no-op.
    let Err(TargetError::Failed(error)) =
        api::delete_objects(&client, &delete("Gadget", Some("x"), None)).await
    else {
        panic!("an unknown kind must fail");
    };
    assert_eq!(error, "the API server serves no kind `Gadget`");

    // A whole namespace (cluster-wide kind).
    let hit = api::delete_objects(
        &client,
        &KubeDelete {
            kind: "Namespace".into(),
            namespace: None,
            name: Some(ns.into()),
            selector: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(hit, vec![format!("Namespace/{ns}")]);
    until(
        &client,
        &probe("Namespace", None, Some(ns)),
        false,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test]
async fn probes_judge_nodes_deployments_statefulsets_pods_and_existence() {
    let cluster = shared();
    let client = client(cluster).await;
    let ns = namespace(cluster, "t-probes");
    cluster.kubectl_stdin(&["apply", "-f", "-"], &deployment(&ns, "web", 2));
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec:\n      nodeSelector: {{type: kwok}}\n      containers: [{{name: c, image: registry.invalid/never-pulled}}]\n"
        ),
    );
    cluster.kubectl(&["-n", &ns, "create", "configmap", "settings"]);

    // Nodes: Ready count.
    let mut nodes = probe("Node", None, None);
    nodes.count = Some(3);
    assert!(check(&client, &nodes).await.ok);
    nodes.count = Some(9);
    let outcome = check(&client, &nodes).await;
    assert!(!outcome.ok);
    assert!(
        outcome.detail.contains(" Node Ready (want 9;"),
        "{}",
        outcome.detail
    );

    // Deployment Available, at the current generation.
    let web = probe("Deployment", Some(&ns), Some("web"));
    until(&client, &web, true, Duration::from_secs(90)).await;
    // A Deployment that cannot be scheduled is not Available.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &deployment(&ns, "stuck", 1).replace("type: kwok", "type: nowhere"),
    );
    let stuck = probe("Deployment", Some(&ns), Some("stuck"));
    assert!(!check(&client, &stuck).await.ok);

    // StatefulSet Ready, and not once it wants more than can run.
    let db = probe("StatefulSet", Some(&ns), Some("db"));
    until(&client, &db, true, Duration::from_secs(90)).await;

    // Pods Ready by selector.
    let mut pods = probe("Pod", Some(&ns), None);
    pods.selector = Some("app=web".into());
    until(&client, &pods, true, Duration::from_secs(60)).await;
    pods.count = Some(3);
    assert!(
        !check(&client, &pods).await.ok,
        "3 of 2 pods cannot be ready"
    );

    // Exists: a built-in kind, a custom kind, and what is not there.
    let exists = |kind: &'static str, name: &'static str| {
        let probe = probe(kind, Some(&ns), Some(name));
        let client = client.clone();
        async move { check(&client, &probe).await.ok }
    };
    assert!(exists("ConfigMap", "settings").await);
    assert!(!exists("ConfigMap", "missing").await);
    api::apply(
        &client,
        vec![
            crd("probe.firedrill.test"),
            json!({"apiVersion": "probe.firedrill.test/v1", "kind": "Widget",
                   "metadata": {"name": "w", "namespace": ns}}),
        ],
    )
    .await
    .unwrap();
    // By `Widget.<group>`: other tests serve a Widget kind in their own group.
    assert!(exists("Widget.probe.firedrill.test", "w").await);
    assert!(!exists("Widget.probe.firedrill.test", "other").await);
}

/// A pod pinned to `node` (bypassing the scheduler), tolerating its taint.
fn pinned_pod(namespace: &str, name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{app: guarded}}}}\nspec:\n  nodeName: {node}\n  tolerations: [{{key: firedrill-drain-test, operator: Exists}}]\n  containers: [{{name: c, image: registry.invalid/never-pulled}}]\n"
    )
}

// Multi-threaded: the drain runs on while this test blocks on kubectl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_retries_budget_refusals_waits_for_the_pods_and_uncordons_on_revert() {
    let cluster = shared();
    let client = client(cluster).await;
    let ns = namespace(cluster, "t-drain");
    // A node of this test alone: tainted, so no other test's pods land there.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: drain-node\n  annotations: {kwok.x-k8s.io/node: fake}\n  labels: {kubernetes.io/hostname: drain-node}\nspec:\n  taints: [{key: firedrill-drain-test, effect: NoSchedule}]\nstatus:\n  allocatable: {cpu: '32', memory: 256Gi, pods: '110'}\n  capacity: {cpu: '32', memory: 256Gi, pods: '110'}\n",
    );
    cluster.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "node/drain-node",
        "--timeout=60s",
    ]);
    for name in ["a", "b"] {
        cluster.kubectl_stdin(&["apply", "-f", "-"], &pinned_pod(&ns, name, "drain-node"));
    }
    cluster.kubectl(&[
        "-n",
        &ns,
        "wait",
        "--for=condition=Ready",
        "pod/a",
        "pod/b",
        "--timeout=60s",
    ]);
    // Both guarded pods must stay: every eviction is refused (429) until
    // two more guarded pods run elsewhere.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: guard, namespace: {ns}}}\nspec:\n  minAvailable: 2\n  selector: {{matchLabels: {{app: guarded}}}}\n"),
    );
    let budget = || {
        cluster.kubectl(&[
            "-n",
            &ns,
            "get",
            "pdb",
            "guard",
            "-o",
            "jsonpath={.status.expectedPods}/{.status.disruptionsAllowed}",
        ])
    };
    for _ in 0..300 {
        if budget() == "2/0" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(budget(), "2/0");

    let drain = tokio::spawn({
        let client = client.clone();
        async move { api::drain(&client, "drain-node", Duration::from_secs(90)).await }
    });
    // The drain cordons first, then asks for the evictions: give it time to
    // be refused before the budget can allow them.
    let unschedulable = || {
        cluster.kubectl(&[
            "get",
            "node",
            "drain-node",
            "-o",
            "jsonpath={.spec.unschedulable}",
        ])
    };
    for _ in 0..300 {
        if unschedulable() == "true" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(unschedulable(), "true", "the drain did not cordon the node");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pod_names(cluster, &ns, "app=guarded").len(),
        2,
        "evicted against the budget"
    );
    for name in ["c", "d"] {
        cluster.kubectl_stdin(&["apply", "-f", "-"], &pinned_pod(&ns, name, "node-0"));
    }
    let drained = drain.await.unwrap().unwrap();
    assert_eq!(drained.evicted.len(), 2, "{drained:?}");
    assert!(
        drained.retries >= 1,
        "the budget's refusal was not retried: {drained:?}"
    );
    assert!(
        drained.refused.is_empty() && drained.still_there.is_empty(),
        "{drained:?}"
    );
    // Waited for the pods to leave: none of them is on the node any more.
    let left = cluster.kubectl(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=drain-node",
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "pods still on the drained node");
    let unschedulable = || {
        cluster.kubectl(&[
            "get",
            "node",
            "drain-node",
            "-o",
            "jsonpath={.spec.unschedulable}",
        ])
    };
    assert_eq!(unschedulable(), "true");

    let undo = KubeUndo::Uncordon {
        nodes: vec!["drain-node".into()],
    };
    assert_eq!(undo.revert(&client).await.unwrap(), "uncordoned drain-node");
    assert_eq!(unschedulable(), "");
    cluster.kubectl(&["delete", "node", "drain-node"]);
}

/// What a test target run needs: a run directory and a context.
fn context(run_dir: &Path) -> RunContext {
    std::fs::create_dir_all(run_dir.join("work")).unwrap();
    RunContext {
        run_id: format!("kwok-target-test-{}", std::process::id()),
        run_dir: run_dir.to_path_buf(),
        workdir: run_dir.join("work"),
        scenario_dir: run_dir.to_path_buf(),
        env: BTreeMap::new(),
        seed: 1,
        emitter: firedrill::event::Emitter::new(Vec::new()),
    }
}

fn engine_probe(k8s: K8sProbe, timeout: &str) -> firedrill::drill::Probe {
    firedrill::drill::Probe {
        command: None,
        expect: None,
        http: None,
        tcp: None,
        k8s: Some(k8s),
        interval: None,
        timeout: Some(
            firedrill::duration::parse_duration(timeout)
                .map(firedrill::drill::Dur)
                .unwrap(),
        ),
        success_threshold: None,
    }
}

fn fault(yaml: &str) -> firedrill::target::FaultSpec {
    let raw: firedrill::target::RawFault = serde_saphyr::from_str(yaml).unwrap();
    let kind = raw.kinds()[0];
    let mut problems = Vec::new();
    let mut check = firedrill::target::FaultCheck {
        step: "hit",
        loc: Default::default(),
        known_services: &[],
        problems: &mut problems,
        name_help: |_, _, _, _| String::new(),
        value_help: |_, _, _| String::new(),
    };
    firedrill::target::kwok::parse_fault(kind, &raw, &mut check)
        .unwrap_or_else(|| panic!("{yaml}: {problems:?}"))
}

/// The kwok target of a drill with the cluster `name` of `nodes` nodes,
/// running the tools `.ci/install-k8s` built.
fn kwok_target(name: &str, nodes: u32) -> firedrill::target::kwok::KwokTarget {
    kwok_target_reusing(name, nodes, false)
}

/// The same, with `reuse` as given.
fn kwok_target_reusing(name: &str, nodes: u32, reuse: bool) -> firedrill::target::kwok::KwokTarget {
    let spec = firedrill::target::kwok::KwokSpec {
        cluster: Located::new(name.to_owned()),
        nodes: Some(Located::new(nodes)),
        reuse,
        keep: false,
    };
    let runner = firedrill::target::kind::runner::SystemRunner::with_path(kwok::path_with_tools());
    firedrill::target::kwok::KwokTarget::with_runner(&spec, Arc::new(runner))
}

#[tokio::test]
async fn the_kwok_target_creates_breaks_mends_and_deletes_its_cluster() {
    // As `firedrill run` is: the components kwokctl starts (and leaves) are
    // ours to reap once they die, whatever this host's pid 1 does with
    // orphans (one that never reaps, a CI container's shell or agent, would
    // leave a killed kube-apiserver a zombie that kwokctl takes for running).
    assert!(firedrill::process::become_subreaper());
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let ctx = context(&run_dir);
    let scope = firedrill::target::kube::scope::Scope::new(["default".to_owned()], false, "test");
    let target = kwok_target("fd-test-target", 3).with_scope(scope);
    // Deletes the cluster if the test stops half-way, and checks /proc.
    let guard = KwokCluster::adopt("fd-test-target", &run_dir);
    let vars = target.setup(&ctx).await.unwrap();
    assert_eq!(
        vars["KWOK_WORKDIR"],
        run_dir.join("kwok").display().to_string()
    );
    let kube = target.kube().unwrap();
    let mut nodes_ready = probe("Node", None, None);
    nodes_ready.count = Some(3);
    assert!(kube.probe(&nodes_ready, &ctx).await.ok);
    let names = guard.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(names, "node-0 node-1 node-2");
    let env = BTreeMap::new();

    // stop_node: the node goes NotReady; revert: Ready again.
    let stopped = target
        .inject("lose", &fault("stop_node: {node: node-1}"), &env, &ctx)
        .await
        .unwrap();
    assert_eq!(stopped.targets, vec!["node-1".to_owned()]);
    let mut node_1 = probe("Node", None, Some("node-1"));
    node_1.count = Some(1);
    let client = client(&guard).await;
    until(&client, &node_1, false, Duration::from_secs(120)).await;
    let status = guard.kubectl(&[
        "get",
        "node",
        "node-1",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(status, "Unknown", "a node whose heartbeats stopped");
    let undone = target
        .revert(stopped.undo.as_ref().unwrap(), &ctx)
        .await
        .unwrap();
    assert!(undone.starts_with("node-1 Ready again"), "{undone}");
    assert!(kube.probe(&node_1, &ctx).await.ok);

    // An API server that takes connections and never answers: a probe
    // fails at its own timeout, not at the client's 30 s.
    let apiserver: i32 = std::fs::read_to_string(
        run_dir.join("kwok/clusters/fd-test-target/pids/kube-apiserver.pid"),
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let stop = |signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(apiserver), signal).unwrap();
    };
    let patient = engine_probe(nodes_ready.clone(), "1s");
    stop(nix::sys::signal::Signal::SIGSTOP);
    let outcome = firedrill::engine::probe::check(&patient, &env, &target, &ctx).await;
    stop(nix::sys::signal::Signal::SIGCONT);
    assert!(!outcome.ok);
    assert_eq!(
        outcome.detail,
        format!(
            "no answer from the API server within {}",
            firedrill::duration::format_duration(Duration::from_secs(1))
        )
    );

    // control_plane_down: kube-apiserver is killed; revert starts it.
    let down = target
        .inject("down", &fault("control_plane_down: {}"), &env, &ctx)
        .await
        .unwrap();
    assert!(!kwok::running(apiserver), "kube-apiserver still runs");
    let outcome = firedrill::engine::probe::check(&patient, &env, &target, &ctx).await;
    assert!(!outcome.ok, "{}", outcome.detail);
    let undone = target
        .revert(down.undo.as_ref().unwrap(), &ctx)
        .await
        .unwrap();
    assert!(undone.contains("every component runs"), "{undone}");
    assert!(
        firedrill::engine::probe::check(&patient, &env, &target, &ctx)
            .await
            .ok
    );

    // The cluster replaced under the same name: the next fault is refused
    // and deletes nothing.
    let kube_system_uid = |cluster: &KwokCluster| {
        cluster.kubectl(&[
            "get",
            "namespace",
            "kube-system",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
    };
    let old_uid = kube_system_uid(&guard);
    let cluster_dir = run_dir.join("kwok/clusters/fd-test-target");
    let old_ports = ports::cluster_ports(&cluster_dir).unwrap();
    let replacement = KwokCluster::adopt("fd-test-target", &run_dir);
    replacement.kwokctl(&[
        "delete",
        "cluster",
        "--kubeconfig",
        &replacement.kubeconfig().display().to_string(),
    ]);
    let lock = firedrill::target::kwok::create_lock_file().unwrap();
    lock.lock().unwrap();
    replacement.kwokctl(&[
        "create",
        "cluster",
        "--runtime",
        "binary",
        "--kubeconfig",
        &replacement.kubeconfig().display().to_string(),
        "--wait",
        "2m",
    ]);
    replacement.wait_ready();
    drop(lock);
    std::mem::forget(replacement); // the guard above owns the cluster
    // Made with plain kwokctl in the run's kwok home (as a runbook does), it
    // has the ports reserved for the run.
    assert_eq!(ports::cluster_ports(&cluster_dir), Some(old_ports));
    guard.kubectl(&["create", "configmap", "victim"]);
    let delete_victim = fault("delete: {kind: ConfigMap, namespace: default, name: victim}");
    let refused = target.inject("hit", &delete_victim, &env, &ctx).await;
    let Err(TargetError::Refused(why)) = refused else {
        panic!("a fault on a replaced cluster must be refused: {refused:?}");
    };
    assert!(
        why.contains("is not the kwok cluster fd-test-target this run set up"),
        "{why}"
    );
    guard.kubectl(&["get", "configmap", "victim"]);

    // Re-pinned explicitly (a `repin: true` step), the rebuilt cluster is
    // the drill's, and the re-pin names both UIDs.
    let uid = kube_system_uid(&guard);
    assert_ne!(uid, old_uid);
    let repinned = kube.repin(&ctx).await.unwrap();
    assert!(
        repinned.contains(&format!("re-pinned: kube-system UID {old_uid} -> {uid}")),
        "{repinned}"
    );
    let hit = target
        .inject("hit", &delete_victim, &env, &ctx)
        .await
        .unwrap();
    assert_eq!(hit.targets, vec!["ConfigMap/default/victim".to_owned()]);

    // Teardown deletes the cluster; nothing of it is left.
    let pids = kwok::component_pids(&run_dir.join("kwok"), "fd-test-target");
    assert_eq!(pids.len(), 5, "{pids:?}");
    target.teardown(&ctx, false).await;
    assert!(!run_dir.join("kwok/clusters/fd-test-target").exists());
    for _ in 0..100 {
        if pids.iter().all(|p| !kwok::running(*p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left: Vec<_> = pids.iter().filter(|p| kwok::running(**p)).collect();
    assert!(left.is_empty(), "components left after teardown: {left:?}");
    guard.delete().unwrap();
}

/// Whether something listens on `port` (`/proc/net/tcp{,6}`).
fn listening(port: u16) -> bool {
    !firedrill::ports::listeners(port).is_empty()
}

#[tokio::test]
async fn a_cluster_made_while_another_ones_api_server_is_down_takes_none_of_its_ports() {
    assert!(firedrill::process::become_subreaper());
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let ctx = context(&run_dir);
    let target = kwok_target("fd-test-ports", 1);
    let guard = KwokCluster::adopt("fd-test-ports", &run_dir);
    target.setup(&ctx).await.unwrap();

    // The cluster runs on the ports reserved for the run, written into
    // the run's kwokctl configuration.
    let cluster_dir = run_dir.join("kwok/clusters/fd-test-ports");
    let mine = ports::cluster_ports(&cluster_dir).unwrap();
    let home_config = std::fs::read_to_string(run_dir.join("kwok/kwok.yaml")).unwrap();
    for (component, key, port) in mine.by_component() {
        assert!(
            home_config.contains(&format!("\"{key}\": {port}")),
            "{key} {port}: {home_config}"
        );
        assert!(listening(port), "{component} is not listening on {port}");
    }
    let (low, high) = ports::range();
    assert!(
        mine.all().iter().all(|p| (low..=high).contains(p)),
        "{mine:?}"
    );
    let home = run_dir.join("kwok").canonicalize().unwrap();
    let reserved = ports::Registry::default().reserved().unwrap();
    assert!(reserved.contains(&(home.clone(), mine)), "{reserved:?}");

    // Its API server down, another cluster is made on this host: it takes
    // none of the ports, the free one of the API server included.
    let env = BTreeMap::new();
    let down = target
        .inject("down", &fault("control_plane_down: {}"), &env, &ctx)
        .await
        .unwrap();
    assert!(!listening(mine.kube_apiserver));
    let other = tokio::task::spawn_blocking(|| KwokCluster::create_temp("fd-test-ports-b", 0))
        .await
        .unwrap();
    let theirs = ports::cluster_ports(&other.home().join("clusters/fd-test-ports-b")).unwrap();
    assert!(
        theirs.all().iter().all(|p| !mine.all().contains(p)),
        "{mine:?} {theirs:?}"
    );
    assert!(!listening(mine.kube_apiserver));

    // A port taken by somebody else at revert: said so, with the holder.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", mine.kube_apiserver)).unwrap();
    let refused = target
        .revert(down.undo.as_ref().unwrap(), &ctx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!(
            "kube-apiserver is down and its port {} (127.0.0.1:{}) is already taken by pid {}",
            mine.kube_apiserver,
            mine.kube_apiserver,
            std::process::id()
        )),
        "{refused}"
    );
    drop(squatter);
    let undone = target
        .revert(down.undo.as_ref().unwrap(), &ctx)
        .await
        .unwrap();
    assert!(undone.contains("every component runs"), "{undone}");
    assert!(listening(mine.kube_apiserver));
    other.delete().unwrap();

    // A resumed run (`reuse: true`) claims the cluster's ports again.
    target.teardown(&ctx, true).await;
    assert!(cluster_dir.exists());
    let resumed = kwok_target_reusing("fd-test-ports", 1, true);
    resumed.setup(&ctx).await.unwrap();
    let reserved = ports::Registry::default().reserved().unwrap();
    let ours: Vec<_> = reserved.iter().filter(|(h, _)| *h == home).collect();
    assert_eq!(ours, vec![&(home.clone(), mine)]);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("kwok/kwok.yaml")).unwrap(),
        home_config
    );

    // The reservation ends with the cluster.
    resumed.teardown(&ctx, false).await;
    let reserved = ports::Registry::default().reserved().unwrap();
    assert!(reserved.iter().all(|(h, _)| *h != home), "{reserved:?}");
    guard.delete().unwrap();
}
