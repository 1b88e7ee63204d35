//! The kwok target (docs/drill-format.md, "kwok"): a real kube-apiserver, controller-manager
//! and scheduler started by `kwokctl create cluster --runtime binary`, with
//! kwok simulating the nodes and their pods. Everything API-level (the API
//! faults, `k8s` probes, server-side apply, evidence) is the shared
//! Kubernetes layer's; this module owns the lifecycle and the faults of the
//! simulated machinery: `delete_cluster`, `control_plane_down` (the
//! kube-apiserver process is killed) and `stop_node`/`stop_kubelet` (the
//! node's Lease is taken from kwok, so it stops heartbeating).
//!
//! Isolation: kwokctl's home (`KWOK_WORKDIR`: its clusters, their pki, etcd
//! data, pids and logs) is `RUN_DIR/kwok`, every kwokctl gets `--kubeconfig
//! RUN_DIR/kubeconfig`, `KUBECACHEDIR` is in `RUN_DIR`, so `~/.kwok` and
//! `~/.kube` are never read or written (the kwokctl configuration that
//! points at the binaries is written into `RUN_DIR/kwok/kwok.yaml`, where
//! kwokctl reads it first, with the cluster's ports, which firedrill
//! reserves on the host: see [`ports`]). The cluster's processes inherit the
//! run marker: they end with the run (after `kwokctl delete cluster`),
//! `keep` or not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::kind::runner::{Output, Runner, SystemRunner};
use super::kube::conn::{Connection, kube_vars, run_kubeconfig, write_private};
use super::kube::scope::Scope;
use super::kube::{K8sProbe, KubeFault, KubeOps, NodeSelector, api};
use super::kube::{check_node_selector, describe_selector};
use super::local::step_seed;
use super::{FaultCheck, FaultSpec, Injected, ProbeOutcome, RawFault, RunContext, Target};
use super::{TargetError, Undo};
use crate::located::{Located, Problem};
use crate::vars::expand;

pub mod ports;

/// `target: {kwok: {...}}` (docs/drill-format.md, "kwok").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "KwokTarget")]
pub struct KwokSpec {
    /// The kwokctl cluster name.
    pub cluster: Located<String>,
    /// Simulated nodes created at setup, `node-0` .. `node-<N-1>` (default 3).
    pub nodes: Option<Located<u32>>,
    /// Use the cluster if it exists already in the run's kwok home (a
    /// resumed run): its stopped components are started again.
    #[serde(default)]
    pub reuse: bool,
    /// Do not delete the cluster's files at the end (its processes still end
    /// with the run; `kwokctl start cluster` brings it back).
    #[serde(default)]
    pub keep: bool,
}

/// Nodes a kwok cluster gets when the drill does not say.
pub const DEFAULT_NODES: u32 = 3;

/// The most nodes a drill may ask for: each is an object kwok updates.
pub const MAX_NODES: u32 = 100;

/// The variables the kwok target sets (see [`KwokTarget::vars`]).
pub const VAR_NAMES: &[&str] = &["CLUSTER", "KUBECONFIG", "KUBECACHEDIR", "KWOK_WORKDIR"];

/// Who holds a stopped node's Lease instead of kwok.
const LEASE_HOLDER: &str = "firedrill";

/// How long kwokctl and the API server get to come up.
const START_PATIENCE: Duration = Duration::from_secs(120);

/// How many times reverting `control_plane_down` runs `kwokctl start
/// cluster` for components that died while the API server was down.
const START_ROUNDS: usize = 3;

/// How long simulated nodes get to turn Ready (at setup and on revert).
const NODE_PATIENCE: Duration = Duration::from_secs(60);

/// A fault of the kwok target's own machinery.
#[derive(Debug, Clone, PartialEq)]
pub enum KwokFault {
    /// `delete_cluster`: `kwokctl delete cluster`.
    DeleteCluster,
    /// `control_plane_down`: SIGKILL to the kube-apiserver process (revert:
    /// `kwokctl start cluster`).
    ControlPlaneDown,
    /// `stop_node` / `stop_kubelet`: the nodes stop heartbeating (their Lease
    /// is taken from kwok) and go NotReady (revert: kwok takes it back).
    StopNode(&'static str, NodeSelector),
}

/// How to undo a [`KwokFault`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KwokUndo {
    /// Start the stopped components (`kwokctl start cluster`).
    StartControlPlane {
        /// The kwokctl cluster.
        cluster: String,
    },
    /// Give the nodes' Leases back to kwok, and mark their pods ready again
    /// as a kubelet that came back would.
    ResumeNodes {
        /// Node names.
        nodes: Vec<String>,
    },
}

/// The kwok target's own fault keys, as written.
const OWN_FAULTS: &[&str] = &[
    "delete_cluster",
    "control_plane_down",
    "stop_node",
    "stop_kubelet",
];

/// Every fault key of the kwok target but `run`: its own, then the
/// Kubernetes API's.
pub fn fault_kinds() -> Vec<&'static str> {
    OWN_FAULTS
        .iter()
        .chain(super::kube::FAULT_KINDS)
        .copied()
        .collect()
}

impl KwokFault {
    /// The key as written.
    pub fn kind(&self) -> &'static str {
        match self {
            KwokFault::DeleteCluster => "delete_cluster",
            KwokFault::ControlPlaneDown => "control_plane_down",
            KwokFault::StopNode(kind, _) => kind,
        }
    }

    /// What it hits, for `plan`.
    pub fn describe(&self) -> String {
        match self {
            KwokFault::StopNode(_, selector) => describe_selector(selector),
            KwokFault::DeleteCluster | KwokFault::ControlPlaneDown => String::new(),
        }
    }
}

/// Checks a node selector on kwok: as everywhere, and its nodes are all
/// workers (the control plane runs as processes, not on a node).
fn check_kwok_nodes(selector: &NodeSelector, check: &mut FaultCheck) -> Option<NodeSelector> {
    if let Some(role) = &selector.role
        && role.value == "control-plane"
    {
        check.push(
            Problem::at(
                role.loc,
                "a kwok cluster has no control-plane node: its control plane runs as processes",
            )
            .help(
                "use `role: worker` or `node: node-0`; `control_plane_down` stops the API server",
            ),
        );
        return None;
    }
    check_node_selector(selector, check)
}

/// Validates the one fault kind `kind` of `raw` for the kwok target: its
/// own faults and the Kubernetes API's.
pub fn parse_fault(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<FaultSpec> {
    let own = match kind {
        "delete_cluster" => Some(Some(KwokFault::DeleteCluster)),
        "control_plane_down" => Some(Some(KwokFault::ControlPlaneDown)),
        "stop_node" => Some(
            raw.stop_node
                .as_ref()
                .and_then(|s| check_kwok_nodes(s, check))
                .map(|s| KwokFault::StopNode("stop_node", s)),
        ),
        "stop_kubelet" => Some(
            raw.stop_kubelet
                .as_ref()
                .and_then(|s| check_kwok_nodes(s, check))
                .map(|s| KwokFault::StopNode("stop_kubelet", s)),
        ),
        _ => None,
    };
    if let Some(fault) = own {
        return fault.map(FaultSpec::Kwok);
    }
    if kind == "drain_node"
        && let Some(selector) = &raw.drain_node
        && check_kwok_nodes(selector, check).is_none()
    {
        return None;
    }
    if let Some(fault) = KubeFault::parse(kind, raw, check) {
        return fault.map(FaultSpec::Kube);
    }
    let why = match kind {
        "kill_node" | "pause_node" | "partition_node" => {
            "kwok's nodes are simulated, there is no machine to kill, pause or cut off; `stop_node` makes a node stop heartbeating"
        }
        _ => "it is a local target fault; a `run` fault can do the same on this host",
    };
    check.unsupported(kind, "kwok", why, &fault_kinds());
    None
}

/// A kwok cluster.
pub struct KwokTarget {
    cluster: String,
    nodes: u32,
    reuse: bool,
    keep: bool,
    runner: Arc<dyn Runner>,
    /// The API server, and the identity pinned at setup.
    conn: Connection,
    /// The namespaces API faults may touch.
    scope: Scope,
    /// Reaps the cluster's components that die as our orphans (see [`reap`]).
    reaper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl KwokTarget {
    /// The target a drill's `target: {kwok: ...}` describes.
    pub fn new(spec: &KwokSpec) -> KwokTarget {
        KwokTarget::with_runner(spec, Arc::new(SystemRunner::new()))
    }

    /// The same, running `kwokctl` through `runner`.
    pub fn with_runner(spec: &KwokSpec, runner: Arc<dyn Runner>) -> KwokTarget {
        KwokTarget {
            cluster: spec.cluster.value.clone(),
            nodes: spec.nodes.as_ref().map_or(DEFAULT_NODES, |n| n.value),
            reuse: spec.reuse,
            keep: spec.keep,
            runner,
            conn: Connection::new(format!(
                "the kwok cluster {} this run set up",
                spec.cluster.value
            )),
            scope: Scope::default(),
            reaper: Mutex::new(None),
        }
    }

    /// Lets API faults touch the namespaces of `scope` (docs/drill-format.md,
    /// "scope"); by default none.
    pub fn with_scope(mut self, scope: Scope) -> KwokTarget {
        self.scope = scope;
        self
    }

    /// `kwokctl --name CLUSTER args…` with the run's kwok home, kubeconfig
    /// and kubectl cache, and the run marker (the components kwokctl starts
    /// inherit it, so the run's sweep finds them); its failure names the
    /// command.
    async fn kwokctl(&self, args: &[&str], ctx: &RunContext) -> Result<Output, TargetError> {
        let mut argv = vec!["--name".to_owned(), self.cluster.clone()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let output = self
            .runner
            .run("kwokctl", &argv, &self.vars(&ctx.run_dir), &ctx.run_id)
            .await
            .map_err(|e| TargetError::Failed(format!("cannot run kwokctl: {e}")))?;
        if output.success() {
            return Ok(output);
        }
        Err(TargetError::Failed(format!(
            "`kwokctl {}` failed (exit {}): {}",
            argv.join(" "),
            output.code.map_or("signal".to_owned(), |c| c.to_string()),
            crate::process::tail_on_one_line(&output.stderr, 5)
        )))
    }

    async fn client(&self, ctx: &RunContext) -> Result<Client, TargetError> {
        self.conn.client(&run_kubeconfig(&ctx.run_dir)).await
    }

    /// The cluster's working directory in the run's kwok home.
    fn cluster_dir(&self, run_dir: &Path) -> PathBuf {
        kwok_home(run_dir).join("clusters").join(&self.cluster)
    }

    /// Refuses unless the API server is the cluster pinned for the run.
    async fn check_identity(&self, what: &str, ctx: &RunContext) -> Result<(), TargetError> {
        self.conn.confirm(what, &run_kubeconfig(&ctx.run_dir)).await
    }

    /// Creates the cluster (or starts the one a resumed run left), waits
    /// for its API server, creates the nodes and pins its identity.
    async fn bring_up(&self, ctx: &RunContext) -> Result<(), TargetError> {
        let home = kwok_home(&ctx.run_dir);
        std::fs::create_dir_all(&home).map_err(|e| {
            TargetError::Unavailable(format!("cannot create {}: {e}", home.display()))
        })?;
        let kubeconfig = run_kubeconfig(&ctx.run_dir).display().to_string();
        let exists = self.cluster_dir(&ctx.run_dir).exists();
        if exists && !self.reuse {
            return Err(TargetError::Unavailable(format!(
                "kwok cluster {} already exists in {}; set `reuse: true` or use a fresh run directory",
                self.cluster,
                home.display()
            )));
        }
        self.reserve_ports(exists, ctx)?;
        // Clusters made without reserved ports (by hand, or by kwokctl
        // elsewhere) still choose theirs by probing, and their components
        // bind them later: creates take turns until the API server answers.
        let lock = create_lock().await?;
        if exists {
            self.start_components(ctx).await?;
        } else {
            let wait = format!("{}s", START_PATIENCE.as_secs());
            self.kwokctl(
                &[
                    "create",
                    "cluster",
                    "--runtime",
                    "binary",
                    "--kubeconfig",
                    &kubeconfig,
                    "--wait",
                    &wait,
                ],
                ctx,
            )
            .await?;
        }
        let client = self.client(ctx).await?;
        wait_ready(&client, START_PATIENCE).await.map_err(|e| {
            TargetError::Failed(format!(
                "kwok cluster {}: {e} (component logs: {})",
                self.cluster,
                self.cluster_dir(&ctx.run_dir).join("logs").display()
            ))
        })?;
        drop(lock);
        self.start_reaper(ctx);
        create_nodes(&client, self.nodes).await?;
        wait_nodes_ready(&client, self.nodes as usize, NODE_PATIENCE).await?;
        let uid = api::kube_system_uid(&client).await?;
        self.conn.pin(uid);
        Ok(())
    }

    /// Reserves the cluster's ports on this host (see [`ports`]): the
    /// existing cluster's own (a resumed run), or six new ones; and writes
    /// them into the kwokctl configuration of the run's kwok home, where
    /// every `kwokctl create cluster` in it (a runbook's too) reads them.
    fn reserve_ports(&self, exists: bool, ctx: &RunContext) -> Result<(), TargetError> {
        let home = kwok_home(&ctx.run_dir);
        let registry = ports::Registry::default();
        let owner = ports::Owner::me();
        let existing = exists
            .then(|| ports::cluster_ports(&self.cluster_dir(&ctx.run_dir)))
            .flatten();
        let reserved = match existing {
            Some(ports) => registry.claim(&home, ports, owner).map(|()| ports),
            None => registry.reserve(&home, owner),
        }
        .map_err(|e| TargetError::Unavailable(format!("kwok cluster {}: {e}", self.cluster)))?;
        let source = kwokctl_config(self.runner.find("kwokctl").as_deref());
        let config = ports::config_with_ports(source.as_deref(), &reserved)
            .map_err(TargetError::Unavailable)?;
        write_private(&home.join("kwok.yaml"), &config)
    }

    /// Deletes the cluster at the end of the run, unless it is kept.
    async fn delete_at_teardown(&self, ctx: &RunContext, keep: bool) {
        // Whatever cluster is in the run's kwok home is the run's: created
        // at setup, or rebuilt by a runbook.
        if !self.cluster_dir(&ctx.run_dir).exists() {
            return;
        }
        if keep || self.keep {
            tracing::info!(
                "keeping the files of kwok cluster {} in {}; its processes end with the run: start it again with `KWOK_WORKDIR={} kwokctl --name {} start cluster`",
                self.cluster,
                kwok_home(&ctx.run_dir).display(),
                kwok_home(&ctx.run_dir).display(),
                self.cluster
            );
            return;
        }
        let kubeconfig = run_kubeconfig(&ctx.run_dir).display().to_string();
        if let Err(e) = self
            .kwokctl(&["delete", "cluster", "--kubeconfig", &kubeconfig], ctx)
            .await
        {
            tracing::warn!("could not delete kwok cluster {}: {e}", self.cluster);
        }
    }

    /// `kwokctl start cluster` once every component that died is gone for
    /// good (kwokctl takes a pid that still exists, a zombie too, for a
    /// running component), then waits for the API server. Refused, with the
    /// holder, if a port of a component that is down is taken.
    async fn start_components(&self, ctx: &RunContext) -> Result<(), TargetError> {
        let pids_dir = self.cluster_dir(&ctx.run_dir).join("pids");
        settle_zombies(&pids_dir, Duration::from_secs(60)).await;
        let taken = self.ports_taken(ctx);
        if !taken.is_empty() {
            return Err(TargetError::Failed(format!(
                "kwok cluster {} cannot start again: {}",
                self.cluster,
                taken.join("; ")
            )));
        }
        self.kwokctl(&["start", "cluster"], ctx).await?;
        Ok(())
    }

    /// The ports of the cluster's stopped components that another process
    /// holds, each with its holder where /proc tells.
    fn ports_taken(&self, ctx: &RunContext) -> Vec<String> {
        let cluster_dir = self.cluster_dir(&ctx.run_dir);
        let Some(ports) = ports::cluster_ports(&cluster_dir) else {
            return Vec::new();
        };
        let down = down_components(&cluster_dir.join("pids"));
        ports
            .by_component()
            .into_iter()
            .filter(|(component, _, _)| down.iter().any(|(name, _)| name == component))
            .filter_map(|(component, _, port)| {
                crate::ports::taken(&format!("127.0.0.1:{port}"))
                    .map(|taken| format!("{component} is down and its {taken}"))
            })
            .collect()
    }

    /// Reaps the cluster's components that die as our orphans: as the
    /// run's subreaper, firedrill inherits them, and until they are reaped
    /// kwokctl counts them as running (and would not start them again).
    fn start_reaper(&self, ctx: &RunContext) {
        let pids_dir = self.cluster_dir(&ctx.run_dir).join("pids");
        let task = tokio::spawn(async move {
            loop {
                reap(&pids_dir);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        if let Some(old) = self
            .reaper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    /// The nodes a selector hits: the named one, or `count` chosen with the
    /// step's seed (every kwok node is a worker).
    async fn select_nodes(
        &self,
        step: &str,
        selector: &NodeSelector,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Vec<String>, TargetError> {
        let client = self.client(ctx).await?;
        let nodes: Api<Node> = Api::all(client);
        let mut names: Vec<String> = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| TargetError::Failed(format!("cannot list nodes: {e}")))?
            .items
            .iter()
            .map(kube::ResourceExt::name_any)
            .collect();
        names.sort();
        if let Some(node) = &selector.node {
            let node = expand(node, env);
            if names.contains(&node) {
                return Ok(vec![node]);
            }
            return Err(TargetError::Failed(format!(
                "`{node}` is not a node of kwok cluster {} (nodes: {})",
                self.cluster,
                names.join(", ")
            )));
        }
        let count = selector.count.unwrap_or(1) as usize;
        if names.len() < count {
            return Err(TargetError::Failed(format!(
                "kwok cluster {} has {} node(s), the fault wants {count}",
                self.cluster,
                names.len()
            )));
        }
        Ok(api::choose(names, count, step_seed(ctx.seed, step)))
    }

    /// SIGKILL to kube-apiserver (as kwokctl itself stops components: a
    /// SIGTERM leaves it in a minute-long graceful shutdown), and waits until
    /// the process is gone.
    async fn control_plane_down(&self, ctx: &RunContext) -> Result<Injected, TargetError> {
        let pid_file = self
            .cluster_dir(&ctx.run_dir)
            .join("pids")
            .join("kube-apiserver.pid");
        let pid = read_pid(&pid_file)?;
        if !alive(pid) {
            return Err(TargetError::Failed(format!(
                "kube-apiserver (pid {pid} in {}) is not running",
                pid_file.display()
            )));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| TargetError::Failed(format!("cannot kill kube-apiserver (pid {pid}): {e}")))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while exists(pid) && tokio::time::Instant::now() < deadline {
            reap_one(pid);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Injected {
            targets: vec![format!("kube-apiserver (pid {pid})")],
            detail: "SIGKILL".to_owned(),
            undo: Some(Undo::Kwok(KwokUndo::StartControlPlane {
                cluster: self.cluster.clone(),
            })),
        })
    }

    /// Takes the nodes' Leases from kwok: it stops updating them, as if
    /// their kubelets had stopped, and the node lifecycle controller marks
    /// them NotReady after its grace period.
    async fn stop_nodes(
        &self,
        step: &str,
        selector: &NodeSelector,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let nodes = self.select_nodes(step, selector, env, ctx).await?;
        let client = self.client(ctx).await?;
        let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        let mut stopped = Vec::new();
        for node in &nodes {
            let now = chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            let patch = json!({"spec": {
                "holderIdentity": LEASE_HOLDER,
                "leaseDurationSeconds": 86400,
                "renewTime": now,
            }});
            if let Err(e) = leases
                .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                // The nodes stopped so far are undone with the rest.
                if stopped.is_empty() {
                    return Err(TargetError::Failed(format!(
                        "cannot take the Lease of node {node} from kwok: {e}"
                    )));
                }
                tracing::warn!("cannot take the Lease of node {node} from kwok: {e}");
                break;
            }
            stopped.push(node.clone());
        }
        let detail = if selector.node.is_some() {
            "its Lease is held by firedrill: no heartbeats".to_owned()
        } else {
            format!(
                "seed {}; their Leases are held by firedrill: no heartbeats",
                step_seed(ctx.seed, step)
            )
        };
        Ok(Injected {
            targets: stopped.clone(),
            detail,
            undo: Some(Undo::Kwok(KwokUndo::ResumeNodes { nodes: stopped })),
        })
    }

    /// Gives the Leases back (an expired Lease is taken by kwok at its next
    /// renewal), waits for the nodes to be Ready, and marks their pods ready
    /// again as their kubelets would.
    async fn resume_nodes(
        &self,
        nodes: &[String],
        ctx: &RunContext,
    ) -> Result<String, TargetError> {
        if nodes.is_empty() {
            return Err(TargetError::Failed(
                "stop_node: nothing recorded to revert".to_owned(),
            ));
        }
        let client = self.client(ctx).await?;
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let expired = json!({"spec": {
            "leaseDurationSeconds": 1,
            "renewTime": "2000-01-01T00:00:00.000000Z",
        }});
        for node in nodes {
            let lease = leases.get_opt(node).await.map_err(|e| {
                TargetError::Failed(format!("cannot read the Lease of {node}: {e}"))
            })?;
            let held = lease
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .is_some_and(|holder| holder == LEASE_HOLDER);
            if held {
                leases
                    .patch(node, &PatchParams::default(), &Patch::Merge(&expired))
                    .await
                    .map_err(|e| {
                        TargetError::Failed(format!("cannot give the Lease of {node} back: {e}"))
                    })?;
            }
        }
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        wait_named_nodes_ready(&client, &names, NODE_PATIENCE).await?;
        let mut marked = 0;
        for node in nodes {
            marked += mark_pods_ready(&client, node).await?;
        }
        Ok(format!(
            "{} Ready again (Leases back with kwok); {marked} pod(s) marked ready as their kubelet would",
            nodes.join(", ")
        ))
    }
}

#[async_trait]
impl Target for KwokTarget {
    fn describe(&self) -> String {
        format!("kwok:{}", self.cluster)
    }

    fn vars(&self, run_dir: &Path) -> BTreeMap<String, String> {
        let mut vars = kube_vars(run_dir);
        vars.extend([
            ("CLUSTER".to_owned(), self.cluster.clone()),
            (
                "KWOK_WORKDIR".to_owned(),
                kwok_home(run_dir).display().to_string(),
            ),
        ]);
        vars
    }

    fn kube(&self) -> Option<&dyn KubeOps> {
        Some(self)
    }

    async fn setup(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
        if self.runner.find("kwokctl").is_none() {
            return Err(TargetError::Unavailable(
                "`kwokctl` is not installed (not found on PATH): the kwok target needs kwokctl and, for its binary runtime, kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok; in this repository `.ci/install-k8s` builds them all (put its bin dir on PATH), elsewhere see https://kwok.sigs.k8s.io/docs/user/installation/".to_owned(),
            ));
        }
        self.bring_up(ctx).await?;
        Ok(self.vars(&ctx.run_dir))
    }

    fn preview(&self, fault: &FaultSpec, ctx: &RunContext) -> String {
        let cluster = &self.cluster;
        let nodes = |selector: &NodeSelector| match &selector.node {
            Some(node) => format!("node {}", expand(node, &ctx.env)),
            None => format!(
                "{} node(s) chosen with the run's seed",
                selector.count.unwrap_or(1)
            ),
        };
        let what = match fault {
            FaultSpec::Kwok(KwokFault::DeleteCluster) => {
                format!("`kwokctl --name {cluster} delete cluster`")
            }
            FaultSpec::Kwok(KwokFault::ControlPlaneDown) => {
                "SIGKILL to the kube-apiserver process".to_owned()
            }
            FaultSpec::Kwok(KwokFault::StopNode(_, selector)) => format!(
                "take the Lease of {} from kwok, so it stops heartbeating and goes NotReady",
                nodes(selector)
            ),
            FaultSpec::Kube(fault) => fault.preview(
                &ctx.env,
                &fault.node_selector().map(nodes).unwrap_or_default(),
            ),
            FaultSpec::Local(_) | FaultSpec::Kind(_) | FaultSpec::Shell(_) => {
                return format!("{} is not a fault of the kwok target", fault.kind());
            }
        };
        format!("{what} (kwok cluster {cluster}; its kube-system UID is checked first)")
    }

    async fn inject(
        &self,
        step: &str,
        fault: &FaultSpec,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let kind = fault.kind();
        if !matches!(fault, FaultSpec::Kwok(_) | FaultSpec::Kube(_)) {
            return Err(TargetError::Failed(format!(
                "fault kind `{kind}` is not supported by the kwok target"
            )));
        }
        self.check_identity(&format!("inject {kind}"), ctx).await?;
        let injected = match fault {
            FaultSpec::Kwok(KwokFault::DeleteCluster) => {
                let kubeconfig = run_kubeconfig(&ctx.run_dir).display().to_string();
                self.kwokctl(&["delete", "cluster", "--kubeconfig", &kubeconfig], ctx)
                    .await?;
                Injected {
                    targets: vec![self.cluster.clone()],
                    detail: String::new(),
                    undo: None,
                }
            }
            FaultSpec::Kwok(KwokFault::ControlPlaneDown) => self.control_plane_down(ctx).await?,
            FaultSpec::Kwok(KwokFault::StopNode(_, selector)) => {
                self.stop_nodes(step, selector, env, ctx).await?
            }
            FaultSpec::Kube(fault) => {
                let nodes = match fault.node_selector() {
                    Some(selector) => self.select_nodes(step, selector, env, ctx).await?,
                    None => Vec::new(),
                };
                let client = self.client(ctx).await?;
                self.scope.check(&client, fault, env).await?;
                fault
                    .inject(&client, nodes, env, step_seed(ctx.seed, step))
                    .await?
            }
            FaultSpec::Local(_) | FaultSpec::Kind(_) | FaultSpec::Shell(_) => {
                return Err(TargetError::Failed(format!(
                    "fault kind `{kind}` is not supported by the kwok target"
                )));
            }
        };
        Ok(injected)
    }

    async fn revert(&self, undo: &Undo, ctx: &RunContext) -> Result<String, TargetError> {
        match undo {
            Undo::Kube(undo) => {
                let client = self.client(ctx).await?;
                undo.revert(&client).await
            }
            Undo::Kwok(KwokUndo::StartControlPlane { .. }) => {
                let lock = create_lock().await?;
                let pids = self.cluster_dir(&ctx.run_dir).join("pids");
                // kube-controller-manager and kube-scheduler exit once they
                // cannot renew their leader lease, which happens when the
                // API server is down longer than the lease's renew deadline
                // (a slow restart on a loaded host): one that exits after
                // `kwokctl start` skipped it as running is started again.
                let mut down = Vec::new();
                for _ in 0..START_ROUNDS {
                    self.start_components(ctx).await?;
                    let client = self.client(ctx).await?;
                    if let Err(e) = wait_ready(&client, START_PATIENCE).await {
                        let taken = self.ports_taken(ctx);
                        let why = if taken.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", taken.join("; "))
                        };
                        return Err(TargetError::Failed(format!(
                            "kwokctl start cluster: {e}{why}"
                        )));
                    }
                    down = dead_components(&pids);
                    if down.is_empty() {
                        break;
                    }
                    tracing::info!(
                        ?down,
                        "components died while the API server was down; starting them again"
                    );
                }
                drop(lock);
                if !down.is_empty() {
                    return Err(TargetError::Failed(format!(
                        "kube-apiserver answers again but these components are not running after {START_ROUNDS} rounds of `kwokctl start cluster`: {}",
                        down.join(", ")
                    )));
                }
                Ok("`kwokctl start cluster`: the API server answers /readyz and every component runs".to_owned())
            }
            Undo::Kwok(KwokUndo::ResumeNodes { nodes }) => self.resume_nodes(nodes, ctx).await,
            Undo::Local(_) | Undo::Kind(_) => Err(TargetError::Failed(
                "the kwok target cannot undo a fault of another target".to_owned(),
            )),
        }
    }

    async fn collect_evidence(&self, dir: &Path, ctx: &RunContext) {
        let _ = std::fs::create_dir_all(dir);
        let mut problems = Vec::new();
        match self.client(ctx).await {
            Ok(client) => problems.extend(api::collect_evidence(&client, dir).await),
            Err(e) => problems.push(e.to_string()),
        }
        // The components' own logs: why the API server did not come back.
        let logs = self.cluster_dir(&ctx.run_dir).join("logs");
        if let Ok(entries) = std::fs::read_dir(&logs) {
            let out = dir.join("kwok-logs");
            let _ = std::fs::create_dir_all(&out);
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    let _ = std::fs::write(
                        out.join(entry.file_name()),
                        crate::process::last_lines(&text, 500),
                    );
                }
            }
        }
        if !problems.is_empty() {
            let _ = std::fs::write(dir.join("kwok-problems.txt"), problems.join("\n") + "\n");
        }
    }

    async fn teardown(&self, ctx: &RunContext, keep: bool) {
        if let Some(task) = self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        self.delete_at_teardown(ctx, keep).await;
        // The cluster is gone or kept; a kept one gets its ports again from
        // a run that reuses it.
        if let Err(e) = ports::Registry::default().release(&kwok_home(&ctx.run_dir)) {
            tracing::warn!("kwok cluster {}: {e}", self.cluster);
        }
    }
}

#[async_trait]
impl KubeOps for KwokTarget {
    async fn confirm_cluster(&self, what: &str, ctx: &RunContext) -> Result<(), TargetError> {
        self.check_identity(what, ctx).await
    }

    async fn repin(&self, ctx: &RunContext) -> Result<String, TargetError> {
        self.conn.repin(&run_kubeconfig(&ctx.run_dir)).await
    }

    async fn probe(&self, probe: &K8sProbe, ctx: &RunContext) -> ProbeOutcome {
        match self.client(ctx).await {
            Ok(client) => api::probe(&client, probe, &ctx.env).await,
            Err(e) => ProbeOutcome::fail(e.to_string()),
        }
    }

    async fn apply(&self, manifests: &[PathBuf], ctx: &RunContext) -> Result<String, TargetError> {
        let client = self.client(ctx).await?;
        super::kube::apply_manifests(&client, manifests, ctx).await
    }
}

/// kwokctl's home for the run (`KWOK_WORKDIR`).
pub fn kwok_home(run_dir: &Path) -> PathBuf {
    run_dir.join("kwok")
}

/// The kwokctl configuration to use: `FIREDRILL_KWOK_CONFIG`, else the one
/// `.ci/install-k8s` writes beside its bin dir (`<bin>/../kwok.yaml`, when
/// `kwokctl` is found there), else the user's `~/.kwok/kwok.yaml` (read
/// only). `None`: kwokctl's own defaults (which download the binaries).
pub fn kwokctl_config(kwokctl: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FIREDRILL_KWOK_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let beside = kwokctl
        .and_then(|k| std::fs::canonicalize(k).ok())
        .and_then(|k| Some(k.parent()?.parent()?.join("kwok.yaml")));
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kwok").join("kwok.yaml"));
    [beside, home].into_iter().flatten().find(|p| p.is_file())
}

/// The file whose lock makes kwokctl creates on this host take turns
/// (`${TMPDIR:-/tmp}/firedrill-kwokctl-create.lock`, the one runbooks and
/// `tools/k8s/smoke.sh` take with `flock`), opened, not locked.
pub fn create_lock_file() -> Result<std::fs::File, TargetError> {
    let path = std::env::temp_dir().join("firedrill-kwokctl-create.lock");
    ports::open_shared(&path).map_err(TargetError::Failed)
}

/// Takes the create lock (see [`create_lock_file`]), waiting for it.
async fn create_lock() -> Result<std::fs::File, TargetError> {
    let file = create_lock_file()?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| TargetError::Failed(format!("cannot lock the kwokctl create lock: {e}")))?
        .map_err(|e| TargetError::Failed(format!("cannot lock the kwokctl create lock: {e}")))
}

/// Waits until the API server answers `/readyz` (kwokctl exits 0 even when
/// its own wait failed).
pub async fn wait_ready(client: &Client, patience: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let request = http::Request::get("/readyz").body(Vec::new());
        let last = match request {
            Ok(request) => match client.request_text(request).await {
                Ok(text) if text.trim() == "ok" => return Ok(()),
                Ok(text) => text,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the API server is not ready after {}: {}",
                crate::duration::format_duration(patience),
                crate::process::tail_on_one_line(&last, 5)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A simulated node kwok manages (`--manage-all-nodes`), with room for pods.
fn node_object(name: &str) -> serde_json::Value {
    let resources = json!({"cpu": "32", "memory": "256Gi", "pods": "110"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/worker": "",
                "type": "kwok",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    })
}

/// Creates the nodes `node-0` .. `node-<count-1>`.
async fn create_nodes(client: &Client, count: u32) -> Result<(), TargetError> {
    let docs = (0..count)
        .map(|i| node_object(&format!("node-{i}")))
        .collect();
    api::apply(client, docs).await.map(|_| ())
}

/// Waits until at least `count` nodes are Ready.
async fn wait_nodes_ready(
    client: &Client,
    count: usize,
    patience: Duration,
) -> Result<(), TargetError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let ready = nodes
            .list(&ListParams::default())
            .await
            .map(|list| list.items.iter().filter(|n| api::node_ready(n)).count())
            .unwrap_or(0);
        if ready >= count {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TargetError::Failed(format!(
                "{ready} of {count} simulated nodes Ready after {}: is the kwok controller running?",
                crate::duration::format_duration(patience)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until these nodes are Ready.
async fn wait_named_nodes_ready(
    client: &Client,
    names: &[&str],
    patience: Duration,
) -> Result<(), TargetError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let mut waiting = Vec::new();
        for name in names {
            let ready = nodes
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .is_some_and(|n| api::node_ready(&n));
            if !ready {
                waiting.push(*name);
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TargetError::Failed(format!(
                "{} not Ready after {}",
                waiting.join(", "),
                crate::duration::format_duration(patience)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Marks the not-ready pods of a node ready again, as its kubelet would on
/// coming back (kwok does not: it leaves the Ready=False the node lifecycle
/// controller gave them). Returns how many it marked.
async fn mark_pods_ready(client: &Client, node: &str) -> Result<usize, TargetError> {
    let all: Api<Pod> = Api::all(client.clone());
    let pods = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(|e| TargetError::Failed(format!("cannot list the pods of {node}: {e}")))?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut marked = 0;
    for pod in pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !api::pod_ready(p))
    {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = kube::ResourceExt::name_any(pod);
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ]}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(|e| {
                TargetError::Failed(format!("cannot mark pod {namespace}/{name} ready: {e}"))
            })?;
        marked += 1;
    }
    Ok(marked)
}

fn read_pid(path: &Path) -> Result<i32, TargetError> {
    std::fs::read_to_string(path)
        .map_err(|e| TargetError::Failed(format!("cannot read {}: {e}", path.display())))?
        .trim()
        .parse()
        .ok()
        // Never 0 or 1 (init), whatever a run directory says: a SIGKILL goes
        // to this pid.
        .filter(|pid| *pid > 1)
        .ok_or_else(|| TargetError::Failed(format!("{} does not hold a pid", path.display())))
}

/// `(parent pid, zombie)` of a process, if it exists.
fn proc_stat(pid: i32) -> Option<(i32, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state == "Z" || state == "X"))
}

/// The process exists (a zombie too).
fn exists(pid: i32) -> bool {
    proc_stat(pid).is_some()
}

/// The process runs (not a zombie).
fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(_, zombie)| !zombie)
}

/// Reaps `pid` if it is a zombie child of this process: one of the
/// cluster's components, orphaned to us (never a child tokio waits for:
/// those are kwokctl itself, which never is a component).
fn reap_one(pid: i32) {
    if proc_stat(pid).is_some_and(|(ppid, zombie)| zombie && ppid == std::process::id() as i32) {
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
}

/// The component pids in a cluster's `pids/` directory, by component.
fn component_pids(pids_dir: &Path) -> Vec<(String, i32)> {
    let mut found: Vec<(String, i32)> = std::fs::read_dir(pids_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_string_lossy()
                .strip_suffix(".pid")?
                .to_owned();
            let pid = std::fs::read_to_string(entry.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((name, pid))
        })
        .collect();
    found.sort();
    found
}

/// Reaps the cluster's components that died as our orphans.
fn reap(pids_dir: &Path) {
    for (_, pid) in component_pids(pids_dir) {
        reap_one(pid);
    }
}

/// Waits until no component of the cluster is a zombie (reaping ours).
async fn settle_zombies(pids_dir: &Path, patience: Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        reap(pids_dir);
        let zombies = component_pids(pids_dir)
            .into_iter()
            .any(|(_, pid)| proc_stat(pid).is_some_and(|(_, zombie)| zombie));
        if !zombies || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The components whose pid file names no running process.
fn dead_components(pids_dir: &Path) -> Vec<String> {
    down_components(pids_dir)
        .into_iter()
        .map(|(name, pid)| format!("{name} (pid {pid})"))
        .collect()
}

/// The components, with their pids, whose pid file names no running process.
fn down_components(pids_dir: &Path) -> Vec<(String, i32)> {
    component_pids(pids_dir)
        .into_iter()
        .filter(|(_, pid)| !alive(*pid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crafted_run_directory_neither_redirects_writes_nor_names_init_as_a_component() {
        let dir = tempfile::tempdir().unwrap();
        // kwok.yaml planted as a link to a file not there yet, and as a hard
        // link to one that is: neither is created nor written through.
        let canary = dir.path().join("canary");
        let link = dir.path().join("kwok.yaml");
        std::os::unix::fs::symlink(&canary, &link).unwrap();
        assert!(write_private(&link, "ports").is_err());
        assert!(!canary.exists());
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "keep me").unwrap();
        let hard = dir.path().join("hard.yaml");
        std::fs::hard_link(&precious, &hard).unwrap();
        assert!(write_private(&hard, "ports").is_err());
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        let fresh = dir.path().join("fresh.yaml");
        write_private(&fresh, "ports").unwrap();
        write_private(&fresh, "again").unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "again");
        // A pid file naming init (or 0) is not a component's.
        for pid in ["1", "0", "-1"] {
            let file = dir.path().join("kube-apiserver.pid");
            std::fs::write(&file, pid).unwrap();
            assert!(read_pid(&file).is_err(), "{pid}");
        }
        std::fs::write(dir.path().join("ok.pid"), "4242\n").unwrap();
        assert_eq!(read_pid(&dir.path().join("ok.pid")).unwrap(), 4242);
    }

    fn parse(raw: &RawFault) -> Result<FaultSpec, Vec<String>> {
        crate::target::check_fault(parse_fault, raw)
    }

    fn selector(node: Option<&str>, role: Option<&str>) -> NodeSelector {
        NodeSelector {
            node: node.map(str::to_owned),
            role: role.map(|r| Located::new(r.to_owned())),
            count: None,
        }
    }

    #[test]
    fn kwok_takes_its_own_faults_and_the_api_faults() {
        let stop = RawFault {
            stop_node: Some(selector(Some("node-1"), None)),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&stop),
            Ok(FaultSpec::Kwok(KwokFault::StopNode(
                "stop_node",
                selector(Some("node-1"), None)
            )))
        );
        let kubelet = RawFault {
            stop_kubelet: Some(selector(None, Some("worker"))),
            ..RawFault::default()
        };
        assert_eq!(parse(&kubelet).unwrap().kind(), "stop_kubelet");
        let down = RawFault {
            control_plane_down: Some(crate::target::Empty {}),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&down),
            Ok(FaultSpec::Kwok(KwokFault::ControlPlaneDown))
        );
        let drain = RawFault {
            drain_node: Some(selector(Some("node-0"), None)),
            ..RawFault::default()
        };
        assert!(matches!(
            parse(&drain),
            Ok(FaultSpec::Kube(KubeFault::DrainNode(_)))
        ));
    }

    #[test]
    fn faults_kwok_cannot_do_are_refused_with_the_reason() {
        for kind in ["kill_node", "pause_node", "partition_node"] {
            let mut raw = RawFault::default();
            let s = Some(selector(Some("node-0"), None));
            match kind {
                "kill_node" => raw.kill_node = s,
                "pause_node" => raw.pause_node = s,
                _ => raw.partition_node = s,
            }
            let problems = parse(&raw).unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].starts_with(&format!(
                    "fault `{kind}` is not supported by the kwok target | kwok's nodes are simulated"
                )) && problems[0].contains("stop_node"),
                "{problems:?}"
            );
        }
        let kill = RawFault {
            kill: Some(crate::target::local::KillFault {
                service: crate::located::OneOrMany(vec![Located::new("web".to_owned())]),
                signal: None,
            }),
            ..RawFault::default()
        };
        assert!(parse(&kill).unwrap_err()[0].contains("local target fault"));
    }

    #[test]
    fn kwok_has_no_control_plane_node() {
        for raw in [
            RawFault {
                stop_node: Some(selector(None, Some("control-plane"))),
                ..RawFault::default()
            },
            RawFault {
                drain_node: Some(selector(None, Some("control-plane"))),
                ..RawFault::default()
            },
        ] {
            assert_eq!(
                parse(&raw),
                Err(vec!["a kwok cluster has no control-plane node: its control plane runs as processes | use `role: worker` or `node: node-0`; `control_plane_down` stops the API server".to_owned()])
            );
        }
    }

    #[test]
    fn a_node_stop_is_undone_from_the_record_events_jsonl_keeps() {
        let undo = Undo::Kwok(KwokUndo::ResumeNodes {
            nodes: vec!["node-1".into()],
        });
        let recorded = serde_json::to_value(&undo).unwrap();
        assert_eq!(
            recorded,
            serde_json::json!({"kwok": {"resume_nodes": {"nodes": ["node-1"]}}})
        );
        assert_eq!(serde_json::from_value::<Undo>(recorded).unwrap(), undo);
    }

    #[test]
    fn the_run_keeps_kwokctl_and_kubectl_in_its_own_directory() {
        let spec = KwokSpec {
            cluster: Located::new("shop".to_owned()),
            nodes: None,
            reuse: false,
            keep: false,
        };
        let target = KwokTarget::new(&spec);
        let vars = target.vars(Path::new("/runs/r1"));
        assert_eq!(
            vars,
            BTreeMap::from([
                ("CLUSTER".to_owned(), "shop".to_owned()),
                ("KUBECONFIG".to_owned(), "/runs/r1/kubeconfig".to_owned()),
                ("KUBECACHEDIR".to_owned(), "/runs/r1/kube-cache".to_owned()),
                ("KWOK_WORKDIR".to_owned(), "/runs/r1/kwok".to_owned()),
            ])
        );
        assert_eq!(vars.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut names = VAR_NAMES.to_vec();
            names.sort();
            names
        });
        assert_eq!(target.nodes, DEFAULT_NODES);
    }
}
