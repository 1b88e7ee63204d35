//! The kind target (docs/drill-format.md, `kind`): a kind cluster created for
//! the run, faults on its node containers (through `docker`/`podman`) and
//! through its API server, `k8s` probes, server-side apply, and evidence.
//!
//! Safety:
//! - The cluster's kubeconfig is its own file, `RUN_DIR/kubeconfig`: every
//!   `kind` command gets `--kubeconfig` and every child gets `KUBECONFIG`, and
//!   the Kubernetes client is built from that file alone, so the user's
//!   `~/.kube/config` is never read or written.
//! - Before every destructive fault, the UID of the `kube-system` namespace is
//!   compared with the one recorded at setup: a different (or unreachable)
//!   API server means the fault is refused, not injected.
//! - Only a cluster this run created is deleted at the end; a cluster used
//!   with `reuse: true` that existed before is left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kube::Client;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kube::conn::{Connection, kube_cache_dir, kube_vars, run_kubeconfig, write_private};
use super::kube::scope::Scope;
use super::kube::{K8sProbe, NodeSelector};
use super::kube::{KubeFault, KubeOps, api, check_node_selector, describe_selector};
use super::local::step_seed;
use super::{FaultCheck, Injected, RunContext, Target, TargetError, Undo};
use super::{FaultSpec, RawFault};
use crate::located::Located;
use crate::vars::expand;

pub mod runner;

pub use super::kube::conn::client_from_file;

#[cfg(test)]
mod tests;

use runner::{Output, Runner, SystemRunner};

/// Where the kube-apiserver static pod manifest is moved by `control_plane_down`.
const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const APISERVER_PARKED: &str = "/etc/kubernetes/kube-apiserver.yaml.firedrill";

/// Puts the parked manifest back; succeeds when the manifest is in place at
/// the end, also when a runbook restored it first.
const RESTORE_APISERVER: &str = "if [ -f /etc/kubernetes/kube-apiserver.yaml.firedrill ]; then mv /etc/kubernetes/kube-apiserver.yaml.firedrill /etc/kubernetes/manifests/kube-apiserver.yaml; fi; test -f /etc/kubernetes/manifests/kube-apiserver.yaml";

/// `partition_node` cuts a node off inside it, with iptables rules on its
/// interface on the kind network (`eth0`), and never with `docker network
/// disconnect`: the way back, `docker network connect --ip ...`, is refused
/// on kind's network ("user specified IP address is supported only when
/// connecting to networks with user configured subnets": moby's
/// `validateEndpointSettings`; kind gives its network an IPv6 subnet only and
/// lets docker choose the IPv4 one, see kind's `pkg/cluster/internal/
/// providers/docker/network.go`), and reconnected without `--ip` the node may
/// get another address than the one its kubelet and certificates are bound
/// to. Read from the upstream code; only a container engine can show it.
const PARTITION: &str = "set -e; for t in iptables ip6tables; do if [ $t = ip6tables ] && ! ip6tables -w -S INPUT >/dev/null 2>&1; then continue; fi; for r in 'INPUT -i eth0' 'OUTPUT -o eth0' 'FORWARD -i eth0' 'FORWARD -o eth0'; do $t -w -I $r -m comment --comment firedrill-partition -j DROP; done; done";

/// Removes every rule [`PARTITION`] added (also when a runbook removed some
/// first), and fails unless none is left.
const UNPARTITION: &str = "for t in iptables ip6tables; do for r in 'INPUT -i eth0' 'OUTPUT -o eth0' 'FORWARD -i eth0' 'FORWARD -o eth0'; do while $t -w -D $r -m comment --comment firedrill-partition -j DROP 2>/dev/null; do :; done; done; done; ! iptables -w -S | grep -q firedrill-partition";

/// `target: {kind: {...}}`: a kind cluster created for the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KindTarget")]
pub struct KindSpec {
    /// The kind cluster's name.
    pub cluster: Located<String>,
    /// The kind config file, relative to the drill file.
    pub config: Option<Located<String>>,
    /// Use the cluster if it exists already.
    #[serde(default)]
    pub reuse: bool,
    /// Do not delete the cluster at the end.
    #[serde(default)]
    pub keep: bool,
}

/// A fault of the kind target's node containers or of the whole cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum KindFault {
    /// `delete_cluster`: `kind delete cluster`.
    DeleteCluster,
    /// A container engine action on the nodes the selector chooses.
    Node(NodeFault, NodeSelector),
    /// `control_plane_down`: move the kube-apiserver static pod manifest away
    /// on every control-plane node (revert: move it back).
    ControlPlaneDown,
}

/// What a node fault does to each node container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFault {
    /// `stop_node`: stop the container (revert: start).
    Stop,
    /// `kill_node`: kill the container (no undo).
    Kill,
    /// `pause_node`: pause the container (revert: unpause).
    Pause,
    /// `partition_node`: disconnect it from the `kind` network (revert: reconnect).
    Partition,
    /// `stop_kubelet`: stop the kubelet inside it (revert: start it).
    StopKubelet,
}

impl NodeFault {
    /// Every node fault, in the order they are listed.
    const ALL: [NodeFault; 5] = [
        NodeFault::Stop,
        NodeFault::Kill,
        NodeFault::Pause,
        NodeFault::Partition,
        NodeFault::StopKubelet,
    ];

    /// The key as written.
    pub fn kind(self) -> &'static str {
        match self {
            NodeFault::Stop => "stop_node",
            NodeFault::Kill => "kill_node",
            NodeFault::Pause => "pause_node",
            NodeFault::Partition => "partition_node",
            NodeFault::StopKubelet => "stop_kubelet",
        }
    }

    /// Its field in a fault as written.
    fn written(self, raw: &RawFault) -> Option<&NodeSelector> {
        match self {
            NodeFault::Stop => raw.stop_node.as_ref(),
            NodeFault::Kill => raw.kill_node.as_ref(),
            NodeFault::Pause => raw.pause_node.as_ref(),
            NodeFault::Partition => raw.partition_node.as_ref(),
            NodeFault::StopKubelet => raw.stop_kubelet.as_ref(),
        }
    }

    /// The container engine's arguments that inject it on `node`.
    fn args(self, node: &str) -> Vec<&str> {
        match self {
            NodeFault::Stop => vec!["stop", node],
            NodeFault::Kill => vec!["kill", node],
            NodeFault::Pause => vec!["pause", node],
            NodeFault::Partition => vec!["exec", node, "sh", "-c", PARTITION],
            NodeFault::StopKubelet => vec!["exec", node, "systemctl", "stop", "kubelet"],
        }
    }

    /// What it would do to `nodes` (`--dry-run`).
    fn preview(self, engine: &str, nodes: &str) -> String {
        match self {
            NodeFault::Stop => format!("`{engine} stop` on {nodes}"),
            NodeFault::Kill => format!("`{engine} kill` on {nodes}"),
            NodeFault::Pause => format!("`{engine} pause` on {nodes}"),
            NodeFault::Partition => {
                format!("iptables rules inside {nodes} drop all traffic on its network interface")
            }
            NodeFault::StopKubelet => format!("`systemctl stop kubelet` inside {nodes}"),
        }
    }

    /// How to undo it on `nodes`.
    fn undo(self, engine: String, nodes: Vec<String>) -> Option<KindUndo> {
        match self {
            NodeFault::Stop => Some(KindUndo::StartNodes { engine, nodes }),
            NodeFault::Kill => None,
            NodeFault::Pause => Some(KindUndo::UnpauseNodes { engine, nodes }),
            NodeFault::Partition => Some(KindUndo::Unpartition { engine, nodes }),
            NodeFault::StopKubelet => Some(KindUndo::StartKubelet { engine, nodes }),
        }
    }
}

/// How to undo a [`KindFault`]: a container engine command per node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindUndo {
    /// `<engine> start` (a `stop_node`).
    StartNodes {
        /// `docker` or `podman`.
        engine: String,
        /// Node containers.
        nodes: Vec<String>,
    },
    /// `<engine> unpause` (a `pause_node`).
    UnpauseNodes {
        /// `docker` or `podman`.
        engine: String,
        /// Node containers.
        nodes: Vec<String>,
    },
    /// Remove the partition's iptables rules inside the nodes (a `partition_node`).
    Unpartition {
        /// `docker` or `podman`.
        engine: String,
        /// Node containers.
        nodes: Vec<String>,
    },
    /// `systemctl start kubelet` inside the nodes (a `stop_kubelet`).
    StartKubelet {
        /// `docker` or `podman`.
        engine: String,
        /// Node containers.
        nodes: Vec<String>,
    },
    /// Put the parked kube-apiserver manifest back (a `control_plane_down`).
    RestoreApiserver {
        /// `docker` or `podman`.
        engine: String,
        /// Control-plane node containers.
        nodes: Vec<String>,
    },
}

impl KindUndo {
    /// The node containers it undoes the fault on.
    pub fn nodes(&self) -> &[String] {
        match self {
            KindUndo::StartNodes { nodes, .. }
            | KindUndo::UnpauseNodes { nodes, .. }
            | KindUndo::Unpartition { nodes, .. }
            | KindUndo::StartKubelet { nodes, .. }
            | KindUndo::RestoreApiserver { nodes, .. } => nodes,
        }
    }
}

/// Every fault key of the kind target but `run`: its own (the cluster,
/// the nodes, the control plane), then the Kubernetes API's.
pub fn fault_kinds() -> Vec<&'static str> {
    std::iter::once("delete_cluster")
        .chain(NodeFault::ALL.map(NodeFault::kind))
        .chain(["control_plane_down"])
        .chain(super::kube::FAULT_KINDS.iter().copied())
        .collect()
}

/// The variables the kind target sets (see [`KindTarget::vars`]; after
/// setup also `CONTAINER_ENGINE`, `docker` or `podman`, and with podman
/// `KIND_EXPERIMENTAL_PROVIDER`).
pub const VAR_NAMES: &[&str] = &[
    "CLUSTER",
    "KUBECONFIG",
    "KUBECACHEDIR",
    "CONTAINER_ENGINE",
    "KIND_EXPERIMENTAL_PROVIDER",
];

/// The record in `RUN_DIR` that this run created its cluster:
/// `{"cluster": NAME, "uid": KUBE_SYSTEM_UID}`.
pub const CREATED_MARKER: &str = "kind-cluster-created.json";

/// `firedrill clean`: deletes the kind cluster a dead run created (its
/// [`CREATED_MARKER`]), only if the API server behind the run's kubeconfig
/// is still that cluster. `None` if the run created none.
pub async fn clean_cluster(
    run_dir: &Path,
    runner: &dyn Runner,
) -> Option<Result<String, TargetError>> {
    let marker = run_dir.join(CREATED_MARKER);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&marker).ok()?).ok()?;
    let (Some(cluster), Some(uid)) = (record["cluster"].as_str(), record["uid"].as_str()) else {
        return Some(Err(TargetError::Failed(format!(
            "{} is not a cluster record",
            marker.display()
        ))));
    };
    let kubeconfig = run_kubeconfig(run_dir);
    let conn = Connection::new(format!("the kind cluster {cluster} the run created"));
    conn.pin(uid.to_owned());
    if let Err(error) = conn
        .confirm(&format!("delete kind cluster {cluster}"), &kubeconfig)
        .await
    {
        return Some(Err(TargetError::Refused(format!(
            "{error}; if it is the run's, delete it with `kind delete cluster --name {cluster}`"
        ))));
    }
    let args: Vec<String> = ["delete", "cluster", "--name", cluster, "--kubeconfig"]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([kubeconfig.display().to_string()])
        .collect();
    let env = BTreeMap::from([(
        "KUBECACHEDIR".to_owned(),
        kube_cache_dir(run_dir).display().to_string(),
    )]);
    // Marked as `clean`'s own, not the dead run's: what `clean` ends of that
    // run must not include the deletion it is running.
    let marker_id = format!("clean-{}", std::process::id());
    Some(match runner.run("kind", &args, &env, &marker_id).await {
        Ok(output) if output.success() => {
            let _ = std::fs::remove_file(&marker);
            Ok(format!("deleted kind cluster {cluster}"))
        }
        Ok(output) => Err(command_failed(&format!("kind {}", args.join(" ")), &output)),
        Err(error) => Err(TargetError::Failed(format!("cannot run kind: {error}"))),
    })
}

/// Whether `marker` records that cluster `cluster` with kube-system `uid`
/// was created by the run: the same name alone is not enough.
fn created_here(marker: &Path, cluster: &str, uid: &str) -> bool {
    recorded_uid(marker, cluster).is_some_and(|recorded| recorded == uid)
}

/// The kube-system UID `marker` records for cluster `cluster`, if it
/// records that cluster.
fn recorded_uid(marker: &Path, cluster: &str) -> Option<String> {
    let text = std::fs::read_to_string(marker).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    if record["cluster"] != cluster {
        return None;
    }
    record["uid"].as_str().map(str::to_owned)
}

impl KindFault {
    /// The key as written.
    pub fn kind(&self) -> &'static str {
        match self {
            KindFault::DeleteCluster => "delete_cluster",
            KindFault::Node(fault, _) => fault.kind(),
            KindFault::ControlPlaneDown => "control_plane_down",
        }
    }

    /// What it hits, for `plan`.
    pub fn describe(&self) -> String {
        match self {
            KindFault::Node(_, selector) => describe_selector(selector),
            KindFault::DeleteCluster | KindFault::ControlPlaneDown => String::new(),
        }
    }

    /// Validates the `kind` key of `raw` as a kind fault: `None` if it is
    /// not one; `Some(None)` if it is one with problems.
    fn parse(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<Option<KindFault>> {
        match kind {
            "delete_cluster" => return Some(Some(KindFault::DeleteCluster)),
            "control_plane_down" => return Some(Some(KindFault::ControlPlaneDown)),
            _ => {}
        }
        let node_fault = NodeFault::ALL.into_iter().find(|f| f.kind() == kind)?;
        Some(
            node_fault
                .written(raw)
                .and_then(|selector| check_node_selector(selector, check))
                .map(|selector| KindFault::Node(node_fault, selector)),
        )
    }
}

/// Validates the one fault kind `kind` of `raw` for the kind target: its
/// own faults and the Kubernetes API's.
pub fn parse_fault(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<FaultSpec> {
    if let Some(fault) = KindFault::parse(kind, raw, check) {
        return fault.map(FaultSpec::Kind);
    }
    if let Some(fault) = KubeFault::parse(kind, raw, check) {
        return fault.map(FaultSpec::Kube);
    }
    check.unsupported(
        kind,
        "kind",
        "it is a local target fault; on kind, a `run` fault can do the same inside a node",
        &fault_kinds(),
    );
    None
}

/// What setup found and made.
#[derive(Debug, Default, Clone)]
struct State {
    /// `docker` or `podman`.
    engine: Option<String>,
    /// `RUN_DIR/kubeconfig`.
    kubeconfig: Option<PathBuf>,
    /// This run created the cluster (so it deletes it).
    created: bool,
}

/// A kind cluster.
pub struct KindTarget {
    cluster: String,
    config: Option<PathBuf>,
    reuse: bool,
    keep: bool,
    runner: Arc<dyn Runner>,
    /// The API server, and the identity pinned at setup.
    conn: Connection,
    /// The namespaces API faults may touch.
    scope: Scope,
    state: Mutex<State>,
}

impl KindTarget {
    /// The target a drill's `target: {kind: ...}` describes; `config` resolves
    /// against `scenario_dir`.
    pub fn new(spec: &KindSpec, scenario_dir: &Path) -> KindTarget {
        KindTarget::with_runner(spec, scenario_dir, Arc::new(SystemRunner::new()))
    }

    /// The same, running `kind` and the container engine through `runner`.
    pub fn with_runner(
        spec: &KindSpec,
        scenario_dir: &Path,
        runner: Arc<dyn Runner>,
    ) -> KindTarget {
        KindTarget {
            cluster: spec.cluster.value.clone(),
            config: spec.config.as_ref().map(|c| scenario_dir.join(&c.value)),
            reuse: spec.reuse,
            keep: spec.keep,
            runner,
            conn: Connection::new(format!(
                "the kind cluster {} this run set up",
                spec.cluster.value
            )),
            scope: Scope::default(),
            state: Mutex::new(State::default()),
        }
    }

    /// Uses `client` for the API instead of one built from the kubeconfig
    /// (tests hand in a mock).
    pub fn with_client(mut self, client: Client) -> KindTarget {
        self.conn = self.conn.with_client(client);
        self
    }

    /// Lets API faults touch the namespaces of `scope` (docs/drill-format.md,
    /// "scope"); by default none.
    pub fn with_scope(mut self, scope: Scope) -> KindTarget {
        self.scope = scope;
        self
    }

    fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn kubeconfig(&self, ctx: &RunContext) -> PathBuf {
        self.state()
            .kubeconfig
            .unwrap_or_else(|| run_kubeconfig(&ctx.run_dir))
    }

    /// The environment every child gets: the cluster's own kubeconfig, and
    /// kind's podman switch when podman is the engine.
    fn child_env(&self, ctx: &RunContext) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            (
                "KUBECONFIG".to_owned(),
                self.kubeconfig(ctx).display().to_string(),
            ),
            (
                "KUBECACHEDIR".to_owned(),
                kube_cache_dir(&ctx.run_dir).display().to_string(),
            ),
        ]);
        if self.state().engine.as_deref() == Some("podman") {
            env.insert("KIND_EXPERIMENTAL_PROVIDER".to_owned(), "podman".to_owned());
        }
        env
    }

    async fn exec(
        &self,
        program: &str,
        args: &[&str],
        ctx: &RunContext,
    ) -> Result<Output, TargetError> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        self.runner
            .run(program, &args, &self.child_env(ctx), &ctx.run_id)
            .await
            .map_err(|e| TargetError::Failed(format!("cannot run {program}: {e}")))
    }

    /// Runs a command that must succeed; its failure names the command.
    async fn exec_ok(
        &self,
        program: &str,
        args: &[&str],
        ctx: &RunContext,
    ) -> Result<Output, TargetError> {
        let output = self.exec(program, args, ctx).await?;
        if output.success() {
            return Ok(output);
        }
        Err(command_failed(
            &format!("{program} {}", args.join(" ")),
            &output,
        ))
    }

    fn engine(&self) -> String {
        self.state().engine.unwrap_or_else(|| "docker".to_owned())
    }

    /// `docker` if installed, else `podman`.
    fn detect_engine(&self) -> Option<&'static str> {
        ["docker", "podman"]
            .into_iter()
            .find(|engine| self.runner.find(engine).is_some())
    }

    /// The Kubernetes client for the cluster's own kubeconfig.
    async fn client(&self, ctx: &RunContext) -> Result<Client, TargetError> {
        self.conn.client(&self.kubeconfig(ctx)).await
    }

    /// Refuses unless the API server is still the cluster set up by this run.
    async fn check_identity(&self, what: &str, ctx: &RunContext) -> Result<(), TargetError> {
        self.conn.confirm(what, &self.kubeconfig(ctx)).await
    }

    /// `kind delete cluster` through the cluster's own kubeconfig.
    async fn delete_cluster(&self, ctx: &RunContext) -> Result<Output, TargetError> {
        let kubeconfig = self.kubeconfig(ctx).display().to_string();
        let args = [
            "delete",
            "cluster",
            "--name",
            &self.cluster,
            "--kubeconfig",
            &kubeconfig,
        ];
        self.exec_ok("kind", &args, ctx).await
    }

    /// The node containers of the cluster (`kind get nodes`), sorted.
    async fn nodes(&self, ctx: &RunContext) -> Result<Vec<String>, TargetError> {
        let output = self
            .exec_ok("kind", &["get", "nodes", "--name", &self.cluster], ctx)
            .await?;
        let mut nodes: Vec<String> = output
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("No kind nodes"))
            .map(str::to_owned)
            .collect();
        nodes.sort();
        Ok(nodes)
    }

    async fn select_nodes(
        &self,
        step: &str,
        selector: &NodeSelector,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Vec<String>, TargetError> {
        let nodes = self.nodes(ctx).await?;
        choose_nodes(
            &self.cluster,
            &nodes,
            selector,
            env,
            step_seed(ctx.seed, step),
        )
    }
}

/// Whether a revert failed only because the fault was undone already: the
/// container is not paused, the node is on the network again.
fn already_undone(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    ["is not paused"].iter().any(|sign| stderr.contains(sign))
}

/// The error of a command that had to succeed, naming it.
fn command_failed(argv: &str, output: &Output) -> TargetError {
    TargetError::Failed(format!(
        "`{argv}` failed (exit {}): {}",
        output.code.map_or("signal".to_owned(), |c| c.to_string()),
        crate::process::tail_on_one_line(&output.stderr, 5)
    ))
}

/// A node's role from its kind container name: `<cluster>-control-plane[N]`
/// or `<cluster>-worker[N]`; `None` for the external load balancer.
pub fn node_role(cluster: &str, node: &str) -> Option<&'static str> {
    let rest = node.strip_prefix(cluster)?.strip_prefix('-')?;
    if rest.starts_with("control-plane") {
        Some("control-plane")
    } else if rest.starts_with("worker") {
        Some("worker")
    } else {
        None
    }
}

/// The nodes a selector hits: the named one, or `count` of the role chosen
/// with `seed`.
pub fn choose_nodes(
    cluster: &str,
    nodes: &[String],
    selector: &NodeSelector,
    env: &BTreeMap<String, String>,
    seed: u64,
) -> Result<Vec<String>, TargetError> {
    if let Some(node) = &selector.node {
        let node = expand(node, env);
        if nodes.contains(&node) {
            return Ok(vec![node]);
        }
        return Err(TargetError::Failed(format!(
            "`{node}` is not a node of kind cluster {cluster} (nodes: {})",
            nodes.join(", ")
        )));
    }
    let role = selector.role.as_ref().map(|r| r.value.as_str());
    let candidates: Vec<String> = nodes
        .iter()
        .filter(|n| match (node_role(cluster, n), role) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
        })
        .cloned()
        .collect();
    let count = selector.count.unwrap_or(1) as usize;
    if candidates.len() < count {
        return Err(TargetError::Failed(format!(
            "kind cluster {cluster} has {} {} node(s), the fault wants {count} (nodes: {})",
            candidates.len(),
            role.unwrap_or("matching"),
            nodes.join(", ")
        )));
    }
    Ok(api::choose(candidates, count, seed))
}

#[async_trait]
impl Target for KindTarget {
    fn describe(&self) -> String {
        format!("kind:{}", self.cluster)
    }

    fn vars(&self, run_dir: &Path) -> BTreeMap<String, String> {
        let mut vars = kube_vars(run_dir);
        vars.insert("CLUSTER".to_owned(), self.cluster.clone());
        vars
    }

    fn kube(&self) -> Option<&dyn KubeOps> {
        Some(self)
    }

    async fn setup(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
        if self.runner.find("kind").is_none() {
            return Err(TargetError::Unavailable(
                "`kind` is not installed (not found on PATH): the kind target needs it to create the cluster; install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation, e.g. `go install sigs.k8s.io/kind@latest`) together with docker or podman".to_owned(),
            ));
        }
        let Some(engine) = self.detect_engine() else {
            return Err(TargetError::Unavailable(
                "no container engine: kind runs its nodes in containers and needs `docker` or `podman` on PATH; install Docker (https://docs.docker.com/engine/install/) or podman".to_owned(),
            ));
        };
        let kubeconfig = run_kubeconfig(&ctx.run_dir);
        self.update(|state| {
            state.engine = Some(engine.to_owned());
            state.kubeconfig = Some(kubeconfig.clone());
        });
        std::fs::create_dir_all(&ctx.run_dir).map_err(|e| {
            TargetError::Unavailable(format!("cannot create {}: {e}", ctx.run_dir.display()))
        })?;
        // podman's info has no `.ServerVersion` (a template error there):
        // ask it as kind's podman provider does.
        let info_format = if engine == "podman" {
            "json"
        } else {
            "{{.ServerVersion}}"
        };
        let info = self
            .exec(engine, &["info", "--format", info_format], ctx)
            .await?;
        if !info.success() {
            return Err(TargetError::Unavailable(format!(
                "{engine} is installed but does not answer (is its daemon running, and may this user use it?): {}",
                crate::process::tail_on_one_line(&info.stderr, 5)
            )));
        }
        let kubeconfig_arg = kubeconfig.display().to_string();
        let clusters = self.exec_ok("kind", &["get", "clusters"], ctx).await?;
        let exists = clusters.stdout.lines().any(|l| l.trim() == self.cluster);
        if exists && !self.reuse {
            return Err(TargetError::Unavailable(format!(
                "kind cluster {} already exists and the drill does not set `reuse: true`; delete it with `kind delete cluster --name {}` or set reuse",
                self.cluster, self.cluster
            )));
        }
        if !exists {
            let mut args = vec!["create", "cluster", "--name", &self.cluster];
            let config = self.config.as_ref().map(|c| c.display().to_string());
            if let Some(config) = &config {
                args.extend(["--config", config]);
            }
            args.extend(["--kubeconfig", &kubeconfig_arg, "--wait", "5m"]);
            // Ours only once kind made it: a create that fails because another
            // run made the same cluster first must not delete that run's
            // cluster at teardown, and kind deletes the nodes of a create that
            // failed half-way itself (without `--retain`: kind's
            // pkg/cluster/internal/create/create.go).
            self.exec_ok("kind", &args, ctx).await?;
            self.update(|state| state.created = true);
        }
        let exported = self
            .exec_ok("kind", &["get", "kubeconfig", "--name", &self.cluster], ctx)
            .await?;
        write_private(&kubeconfig, &exported.stdout)?;
        let client = self.client(ctx).await?;
        let uid = api::kube_system_uid(&client).await.map_err(|e| {
            TargetError::Failed(format!(
                "cannot reach the API server of kind cluster {}: {e}",
                self.cluster
            ))
        })?;
        let marker = ctx.run_dir.join(CREATED_MARKER);
        if self.state().created {
            // A resumed run, or `clean`, knows the cluster is this run's.
            let record = serde_json::json!({"cluster": self.cluster, "uid": uid});
            write_private(&marker, &record.to_string())?;
        } else if created_here(&marker, &self.cluster, &uid) {
            // Resumed: the cluster the dead runner created, still the same one.
            self.update(|state| state.created = true);
        } else if let Some(recorded) = recorded_uid(&marker, &self.cluster) {
            // Resumed, but the cluster of that name is another one: the
            // run's was deleted and somebody made one again meanwhile.
            return Err(TargetError::Refused(format!(
                "kind cluster {name} is not the one this run created (kube-system UID {recorded} recorded in {marker}, {uid} now): it was deleted and made again since the run stopped, and a resumed run faults only its own cluster; delete it (`kind delete cluster --name {name}`) to let the run create its own, or start a new run",
                name = self.cluster,
                marker = marker.display()
            )));
        }
        self.conn.pin(uid);
        let mut vars = self.vars(&ctx.run_dir);
        vars.insert("CONTAINER_ENGINE".to_owned(), engine.to_owned());
        if engine == "podman" {
            // Runbooks' own `kind` commands need it as much as firedrill's.
            vars.insert("KIND_EXPERIMENTAL_PROVIDER".to_owned(), "podman".to_owned());
        }
        Ok(vars)
    }

    fn preview(&self, fault: &FaultSpec, ctx: &RunContext) -> String {
        let engine = self.detect_engine().unwrap_or("docker");
        let cluster = &self.cluster;
        let nodes = |selector: &NodeSelector| match (&selector.node, &selector.role) {
            (Some(node), _) => format!("node {}", expand(node, &ctx.env)),
            (None, role) => format!(
                "{} {} node(s) chosen with the run's seed",
                selector.count.unwrap_or(1),
                role.as_ref().map_or("any", |r| r.value.as_str())
            ),
        };
        let what = match fault {
            FaultSpec::Kind(fault) => match fault {
                KindFault::DeleteCluster => format!("`kind delete cluster --name {cluster}`"),
                KindFault::Node(fault, selector) => fault.preview(engine, &nodes(selector)),
                KindFault::ControlPlaneDown => {
                    format!("move {APISERVER_MANIFEST} away inside every control-plane node")
                }
            },
            FaultSpec::Kube(fault) => fault.preview(
                &ctx.env,
                &fault.node_selector().map(nodes).unwrap_or_default(),
            ),
            FaultSpec::Local(_) | FaultSpec::Kwok(_) | FaultSpec::Shell(_) => {
                return format!("{} is not a fault of the kind target", fault.kind());
            }
        };
        format!("{what} (kind cluster {cluster}; its kube-system UID is checked first)")
    }

    async fn inject(
        &self,
        step: &str,
        fault: &FaultSpec,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let kind = fault.kind();
        match fault {
            FaultSpec::Kind(_) | FaultSpec::Kube(_) => {}
            FaultSpec::Shell(_) => {
                return Err(TargetError::Failed(
                    "`run` faults are run by the engine".to_owned(),
                ));
            }
            FaultSpec::Local(_) | FaultSpec::Kwok(_) => {
                return Err(TargetError::Failed(format!(
                    "fault kind `{kind}` is not supported by the kind target"
                )));
            }
        }
        self.check_identity(&format!("inject {kind}"), ctx).await?;
        let seed = step_seed(ctx.seed, step);
        match fault {
            FaultSpec::Kind(fault) => self.inject_node_fault(step, fault, env, ctx).await,
            FaultSpec::Kube(fault) => {
                let nodes = match fault.node_selector() {
                    Some(selector) => self.select_nodes(step, selector, env, ctx).await?,
                    None => Vec::new(),
                };
                let client = self.client(ctx).await?;
                self.scope.check(&client, fault, env).await?;
                fault.inject(&client, nodes, env, seed).await
            }
            FaultSpec::Local(_) | FaultSpec::Kwok(_) | FaultSpec::Shell(_) => {
                Err(TargetError::Failed(format!(
                    "fault kind `{kind}` is not supported by the kind target"
                )))
            }
        }
    }

    async fn revert(&self, undo: &Undo, ctx: &RunContext) -> Result<String, TargetError> {
        let (kind, engine, nodes, args): (&str, &str, Vec<&str>, fn(&str) -> Vec<String>) =
            match undo {
                Undo::Kube(undo) => {
                    let client = self.client(ctx).await?;
                    return undo.revert(&client).await;
                }
                Undo::Local(_) | Undo::Kwok(_) => {
                    return Err(TargetError::Failed(
                        "the kind target cannot undo a fault of another target".to_owned(),
                    ));
                }
                Undo::Kind(KindUndo::Unpartition { engine, nodes }) => {
                    ("partition_node", engine, strs(nodes), |n| {
                        argv(&["exec", n, "sh", "-c", UNPARTITION])
                    })
                }
                Undo::Kind(KindUndo::StartNodes { engine, nodes }) => {
                    ("stop_node", engine, strs(nodes), |n| argv(&["start", n]))
                }
                Undo::Kind(KindUndo::UnpauseNodes { engine, nodes }) => {
                    ("pause_node", engine, strs(nodes), |n| argv(&["unpause", n]))
                }
                Undo::Kind(KindUndo::StartKubelet { engine, nodes }) => {
                    ("stop_kubelet", engine, strs(nodes), |n| {
                        argv(&["exec", n, "systemctl", "start", "kubelet"])
                    })
                }
                Undo::Kind(KindUndo::RestoreApiserver { engine, nodes }) => {
                    ("control_plane_down", engine, strs(nodes), |n| {
                        argv(&["exec", n, "sh", "-c", RESTORE_APISERVER])
                    })
                }
            };
        let commands = nodes.iter().map(|node| args(node)).collect();
        self.run_undo(kind, engine, commands, ctx).await
    }

    async fn collect_evidence(&self, dir: &Path, ctx: &RunContext) {
        let _ = std::fs::create_dir_all(dir);
        let mut problems = Vec::new();
        if self.state().engine.is_some() {
            let label = format!("label=io.x-k8s.kind.cluster={}", self.cluster);
            let engine = self.engine();
            match self
                .exec(
                    &engine,
                    &[
                        "ps",
                        "--all",
                        "--filter",
                        &label,
                        "--format",
                        "{{.Names}}\t{{.Status}}",
                    ],
                    ctx,
                )
                .await
            {
                Ok(out) => {
                    let _ =
                        std::fs::write(dir.join("node-containers.txt"), out.stdout + &out.stderr);
                }
                Err(e) => problems.push(format!("node containers: {e}")),
            }
        }
        match self.client(ctx).await {
            Ok(client) => problems.extend(api::collect_evidence(&client, dir).await),
            Err(e) => problems.push(e.to_string()),
        }
        if self.state().engine.is_some() {
            // Node logs: kubelet, containerd, the control plane's pods.
            let logs = dir.join("kind-logs").display().to_string();
            let args = ["export", "logs", &logs, "--name", &self.cluster];
            if let Err(e) = self.exec_ok("kind", &args, ctx).await {
                problems.push(format!("kind export logs: {e}"));
            }
        }
        if !problems.is_empty() {
            let _ = std::fs::write(dir.join("kind-problems.txt"), problems.join("\n") + "\n");
        }
    }

    async fn teardown(&self, ctx: &RunContext, keep: bool) {
        let state = self.state();
        if !state.created {
            return;
        }
        if keep || self.keep {
            tracing::info!(
                "keeping kind cluster {} (kubeconfig {})",
                self.cluster,
                self.kubeconfig(ctx).display()
            );
            return;
        }
        if let Err(e) = self.delete_cluster(ctx).await {
            tracing::warn!("could not delete kind cluster {}: {e}", self.cluster);
        }
    }
}

#[async_trait]
impl KubeOps for KindTarget {
    async fn confirm_cluster(&self, what: &str, ctx: &RunContext) -> Result<(), TargetError> {
        self.check_identity(what, ctx).await
    }

    async fn repin(&self, ctx: &RunContext) -> Result<String, TargetError> {
        let detail = self.conn.repin(&self.kubeconfig(ctx)).await?;
        // A cluster this run created and a step rebuilt is still the run's:
        // `resume` and `clean` must know it by its new UID.
        if let (true, Some(uid)) = (self.state().created, self.conn.pinned()) {
            let record = serde_json::json!({"cluster": self.cluster, "uid": uid});
            write_private(&ctx.run_dir.join(CREATED_MARKER), &record.to_string())?;
        }
        Ok(detail)
    }

    async fn probe(&self, probe: &K8sProbe, ctx: &RunContext) -> super::ProbeOutcome {
        match self.client(ctx).await {
            Ok(client) => api::probe(&client, probe, &ctx.env).await,
            Err(e) => super::ProbeOutcome::fail(e.to_string()),
        }
    }

    async fn apply(&self, manifests: &[PathBuf], ctx: &RunContext) -> Result<String, TargetError> {
        let client = self.client(ctx).await?;
        super::kube::apply_manifests(&client, manifests, ctx).await
    }
}

impl KindTarget {
    /// Injects a fault on node containers or the cluster; the identity of
    /// the cluster was checked.
    async fn inject_node_fault(
        &self,
        step: &str,
        fault: &KindFault,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let engine = self.engine();
        let (node_fault, selector) = match fault {
            KindFault::DeleteCluster => {
                self.delete_cluster(ctx).await?;
                return Ok(Injected {
                    targets: vec![self.cluster.clone()],
                    detail: String::new(),
                    undo: None,
                });
            }
            KindFault::ControlPlaneDown => return self.control_plane_down(&engine, ctx).await,
            KindFault::Node(node_fault, selector) => (*node_fault, selector),
        };
        let nodes = self.select_nodes(step, selector, env, ctx).await?;
        for (done, node) in nodes.iter().enumerate() {
            if let Err(error) = self.exec_ok(&engine, &node_fault.args(node), ctx).await {
                let undo = node_fault.undo(engine.clone(), nodes[..done].to_vec());
                return Err(self.roll_back(error, undo, ctx).await);
            }
        }
        let detail = if selector.node.is_some() {
            String::new()
        } else {
            format!("seed {}", step_seed(ctx.seed, step))
        };
        Ok(Injected {
            targets: nodes.clone(),
            detail,
            undo: node_fault.undo(engine, nodes).map(Undo::Kind),
        })
    }

    /// A fault failed on one node after it hit others: the fault step fails
    /// and returns no undo record, so the nodes already hit are undone now,
    /// and the error says what was undone or what is left broken.
    async fn roll_back(
        &self,
        error: TargetError,
        undo: Option<KindUndo>,
        ctx: &RunContext,
    ) -> TargetError {
        let Some(undo) = undo.filter(|undo| !undo.nodes().is_empty()) else {
            return error;
        };
        let nodes = undo.nodes().join(", ");
        match self.revert(&Undo::Kind(undo), ctx).await {
            Ok(_) => {
                TargetError::Failed(format!("{error}; undone on the nodes already hit: {nodes}"))
            }
            Err(undo_error) => TargetError::Failed(format!(
                "{error}; undoing it on the nodes already hit ({nodes}) failed too, they are left as the fault made them: {undo_error}"
            )),
        }
    }

    /// Parks the kube-apiserver manifest on every control-plane node: with
    /// several, one left up would keep the API answering behind kind's load
    /// balancer.
    async fn control_plane_down(
        &self,
        engine: &str,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let control_planes: Vec<String> = self
            .nodes(ctx)
            .await?
            .into_iter()
            .filter(|n| node_role(&self.cluster, n) == Some("control-plane"))
            .collect();
        if control_planes.is_empty() {
            return Err(TargetError::Failed(format!(
                "kind cluster {} has no control-plane node",
                self.cluster
            )));
        }
        for (done, node) in control_planes.iter().enumerate() {
            let args = ["exec", node, "mv", APISERVER_MANIFEST, APISERVER_PARKED];
            if let Err(error) = self.exec_ok(engine, &args, ctx).await {
                let undo = KindUndo::RestoreApiserver {
                    engine: engine.to_owned(),
                    nodes: control_planes[..done].to_vec(),
                };
                return Err(self.roll_back(error, Some(undo), ctx).await);
            }
        }
        Ok(Injected {
            targets: control_planes.clone(),
            detail: format!("{APISERVER_MANIFEST} moved to {APISERVER_PARKED}"),
            undo: Some(Undo::Kind(KindUndo::RestoreApiserver {
                engine: engine.to_owned(),
                nodes: control_planes,
            })),
        })
    }

    /// Runs the container engine commands that undo a fault, one per node;
    /// one that finds the fault undone already (by the runbook) is fine.
    async fn run_undo(
        &self,
        kind: &str,
        engine: &str,
        commands: Vec<Vec<String>>,
        ctx: &RunContext,
    ) -> Result<String, TargetError> {
        if commands.is_empty() {
            return Err(TargetError::Failed(format!(
                "{kind}: nothing recorded to revert"
            )));
        }
        let mut done = Vec::new();
        for args in commands {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = self.exec(engine, &args, ctx).await?;
            let shown = format!("{engine} {}", args.join(" "));
            if output.success() {
                done.push(shown);
            } else if already_undone(&output.stderr) {
                // The runbook (or a person) undid it first: nothing left to do.
                done.push(format!("{shown}: already undone"));
            } else {
                return Err(command_failed(&shown, &output));
            }
        }
        Ok(done.join("; "))
    }
}

fn strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}
