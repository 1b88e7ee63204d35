//! The kind target (SPEC §3.2): a kind cluster created for the run, faults on
//! its node containers (through `docker`/`podman`) and through its API server,
//! `k8s` probes, server-side apply, and evidence.
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
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use super::local::step_seed;
use super::{Injected, RunContext, Target, TargetError};
use crate::drill::{Fault, K8sProbe, NodeSelector};
use crate::vars::expand;

pub mod api;
pub mod runner;

#[cfg(test)]
mod tests;

use runner::{Output, Runner, SystemRunner};

/// Where the kube-apiserver static pod manifest is moved by `control_plane_down`.
const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const APISERVER_PARKED: &str = "/etc/kubernetes/kube-apiserver.yaml.firedrill";

/// Puts the parked manifest back; succeeds when the manifest is in place at
/// the end, also when a runbook restored it first.
const RESTORE_APISERVER: &str = "if [ -f /etc/kubernetes/kube-apiserver.yaml.firedrill ]; then mv /etc/kubernetes/kube-apiserver.yaml.firedrill /etc/kubernetes/manifests/kube-apiserver.yaml; fi; test -f /etc/kubernetes/manifests/kube-apiserver.yaml";

/// `docker inspect` format printing a node's IPv4 and IPv6 address on the
/// kind network.
const NODE_ADDRESSES: &str =
    "{{with index .NetworkSettings.Networks \"kind\"}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}";

/// The docker network kind puts its nodes on.
const KIND_NETWORK: &str = "kind";

/// What setup found and made.
#[derive(Debug, Default, Clone)]
struct State {
    /// `docker` or `podman`.
    engine: Option<String>,
    /// `RUN_DIR/kubeconfig`.
    kubeconfig: Option<PathBuf>,
    /// UID of `kube-system` at setup.
    identity: Option<String>,
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
    /// A client given by a test instead of one built from the kubeconfig.
    fixed_client: Option<Client>,
    /// The client and the kubeconfig text it was built from: a runbook that
    /// recreates the cluster rewrites the file, and the client follows.
    cached_client: tokio::sync::Mutex<Option<(String, Client)>>,
    state: Mutex<State>,
}

impl KindTarget {
    /// The target a drill's `target: {kind: ...}` describes; `config` resolves
    /// against `scenario_dir`.
    pub fn new(spec: &crate::drill::KindTarget, scenario_dir: &Path) -> KindTarget {
        KindTarget::with_runner(spec, scenario_dir, Arc::new(SystemRunner::new()))
    }

    /// The same, running `kind` and the container engine through `runner`.
    pub fn with_runner(
        spec: &crate::drill::KindTarget,
        scenario_dir: &Path,
        runner: Arc<dyn Runner>,
    ) -> KindTarget {
        KindTarget {
            cluster: spec.cluster.value.clone(),
            config: spec.config.as_ref().map(|c| scenario_dir.join(&c.value)),
            reuse: spec.reuse,
            keep: spec.keep,
            runner,
            fixed_client: None,
            cached_client: tokio::sync::Mutex::new(None),
            state: Mutex::new(State::default()),
        }
    }

    /// Uses `client` for the API instead of one built from the kubeconfig
    /// (tests hand in a mock).
    pub fn with_client(mut self, client: Client) -> KindTarget {
        self.fixed_client = Some(client);
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
            .unwrap_or_else(|| ctx.run_dir.join("kubeconfig"))
    }

    /// The environment every child gets: the cluster's own kubeconfig, and
    /// kind's podman switch when podman is the engine.
    fn child_env(&self, ctx: &RunContext) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([(
            "KUBECONFIG".to_owned(),
            self.kubeconfig(ctx).display().to_string(),
        )]);
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
        if let Some(client) = &self.fixed_client {
            return Ok(client.clone());
        }
        let path = self.kubeconfig(ctx);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TargetError::Failed(format!(
                "cannot read the cluster's kubeconfig {}: {e}",
                path.display()
            ))
        })?;
        let mut cached = self.cached_client.lock().await;
        if let Some((seen, client)) = cached.as_ref()
            && *seen == text
        {
            return Ok(client.clone());
        }
        let client = client_from_file(&path).await?;
        *cached = Some((text, client.clone()));
        Ok(client)
    }

    /// Refuses unless the API server is still the cluster set up by this run.
    async fn check_identity(&self, what: &str, ctx: &RunContext) -> Result<(), TargetError> {
        let Some(recorded) = self.state().identity else {
            return Err(TargetError::Refused(format!(
                "refusing to {what}: the identity of kind cluster {} was not recorded at setup",
                self.cluster
            )));
        };
        let client = self
            .client(ctx)
            .await
            .map_err(|e| TargetError::Refused(format!("refusing to {what}: {e}")))?;
        match api::kube_system_uid(&client).await {
            Ok(uid) if uid == recorded => Ok(()),
            Ok(uid) => Err(TargetError::Refused(format!(
                "refusing to {what}: the API server in {} is not the kind cluster {} this run set up (kube-system UID {uid}, expected {recorded})",
                self.kubeconfig(ctx).display(),
                self.cluster
            ))),
            Err(e) => Err(TargetError::Refused(format!(
                "refusing to {what}: cannot confirm that the API server is kind cluster {}: {e}",
                self.cluster
            ))),
        }
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
    ["is not paused", "already exists in network"]
        .iter()
        .any(|sign| stderr.contains(sign))
}

/// The error of a command that had to succeed, naming it.
fn command_failed(argv: &str, output: &Output) -> TargetError {
    TargetError::Failed(format!(
        "`{argv}` failed (exit {}): {}",
        output.code.map_or("signal".to_owned(), |c| c.to_string()),
        tail(&output.stderr)
    ))
}

/// The last lines of a command's error output.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// Builds a client from exactly this kubeconfig file.
pub async fn client_from_file(path: &Path) -> Result<Client, TargetError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
        TargetError::Failed(format!("cannot read kubeconfig {}: {e}", path.display()))
    })?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| TargetError::Failed(format!("invalid kubeconfig {}: {e}", path.display())))?;
    // A paused or partitioned control plane must make requests fail, not hang:
    // probes, guards and evidence all wait on them.
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    config.read_timeout = Some(std::time::Duration::from_secs(30));
    config.write_timeout = Some(std::time::Duration::from_secs(30));
    Client::try_from(config).map_err(|e| {
        TargetError::Failed(format!("cannot build a client for {}: {e}", path.display()))
    })
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

fn undo_nodes(undo: &Value) -> Vec<String> {
    undo["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A `k8s` probe's fields, with `${VAR}` expanded.
fn expand_opt(value: &Option<String>, env: &BTreeMap<String, String>) -> Option<String> {
    value.as_ref().map(|v| expand(v, env))
}

#[async_trait]
impl Target for KindTarget {
    fn describe(&self) -> String {
        format!("kind:{}", self.cluster)
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
        let kubeconfig = ctx.run_dir.join("kubeconfig");
        self.update(|state| {
            state.engine = Some(engine.to_owned());
            state.kubeconfig = Some(kubeconfig.clone());
        });
        std::fs::create_dir_all(&ctx.run_dir).map_err(|e| {
            TargetError::Unavailable(format!("cannot create {}: {e}", ctx.run_dir.display()))
        })?;
        let info = self
            .exec(engine, &["info", "--format", "{{.ServerVersion}}"], ctx)
            .await?;
        if !info.success() {
            return Err(TargetError::Unavailable(format!(
                "{engine} is installed but does not answer (is its daemon running, and may this user use it?): {}",
                tail(&info.stderr)
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
            // Marked before the command: a half-created cluster is ours to delete.
            self.update(|state| state.created = true);
            self.exec_ok("kind", &args, ctx).await?;
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
        self.update(|state| state.identity = Some(uid));
        Ok(BTreeMap::from([
            ("KUBECONFIG".to_owned(), kubeconfig_arg),
            ("CLUSTER".to_owned(), self.cluster.clone()),
        ]))
    }

    fn preview(&self, fault: &Fault, ctx: &RunContext) -> String {
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
        let kind = fault.kind();
        let what = match kind {
            "delete_cluster" => format!("`kind delete cluster --name {cluster}`"),
            "stop_node" | "kill_node" | "pause_node" => {
                let verb = &kind[..kind.len() - "_node".len()];
                format!(
                    "`{engine} {verb}` on {}",
                    fault.node_selector().map(nodes).unwrap_or_default()
                )
            }
            "partition_node" => format!(
                "`{engine} network disconnect {KIND_NETWORK}` for {}",
                fault.node_selector().map(nodes).unwrap_or_default()
            ),
            "stop_kubelet" => format!(
                "`systemctl stop kubelet` inside {}",
                fault.node_selector().map(nodes).unwrap_or_default()
            ),
            "drain_node" => format!(
                "cordon and evict the pods of {}",
                fault.node_selector().map(nodes).unwrap_or_default()
            ),
            "control_plane_down" => {
                format!("move {APISERVER_MANIFEST} away inside every control-plane node")
            }
            "pod_kill" => {
                let f = fault.pod_kill.as_ref();
                format!(
                    "delete {} of the pods matching `{}` in namespace {}, chosen with the run's seed",
                    f.and_then(|f| f.percent).map_or_else(
                        || f.and_then(|f| f.count).unwrap_or(1).to_string(),
                        |p| format!("{p}%")
                    ),
                    f.map(|f| expand(&f.selector, &ctx.env)).unwrap_or_default(),
                    f.map(|f| expand(&f.namespace, &ctx.env))
                        .unwrap_or_default()
                )
            }
            "delete" => {
                let f = fault.delete.as_ref();
                let env = &ctx.env;
                format!(
                    "delete {} {} in namespace {}",
                    f.and_then(|f| f.kind.clone()).unwrap_or_default(),
                    f.and_then(|f| expand_opt(&f.name, env))
                        .or_else(|| f
                            .and_then(|f| expand_opt(&f.selector, env))
                            .map(|s| format!("matching `{s}`")))
                        .unwrap_or_default(),
                    f.and_then(|f| expand_opt(&f.namespace, env))
                        .unwrap_or_else(|| "default".to_owned())
                )
            }
            other => return format!("{other} is not a fault of the kind target"),
        };
        format!("{what} (kind cluster {cluster}; its kube-system UID is checked first)")
    }

    async fn inject(
        &self,
        step: &str,
        fault: &Fault,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let kind = fault.kind();
        if kind == "run" {
            return Err(TargetError::Failed(
                "`run` faults are run by the engine".to_owned(),
            ));
        }
        self.check_identity(&format!("inject {kind}"), ctx).await?;
        let engine = self.engine();
        let seed = step_seed(ctx.seed, step);
        match kind {
            "delete_cluster" => {
                self.delete_cluster(ctx).await?;
                Ok(Injected {
                    targets: vec![self.cluster.clone()],
                    detail: String::new(),
                    undo: None,
                })
            }
            "stop_node" | "kill_node" | "pause_node" | "partition_node" | "stop_kubelet" => {
                let selector = fault.node_selector().cloned().unwrap_or_default();
                let nodes = self.select_nodes(step, &selector, env, ctx).await?;
                let mut addresses = serde_json::Map::new();
                for node in &nodes {
                    if kind == "partition_node" {
                        // Reconnected with the same addresses: the node's
                        // kubelet and certificates are bound to them.
                        let args = ["inspect", "--format", NODE_ADDRESSES, node];
                        let output = self.exec_ok(&engine, &args, ctx).await?;
                        let mut found = output.stdout.split_whitespace();
                        addresses.insert(
                            node.clone(),
                            json!({"ip": found.next(), "ip6": found.next()}),
                        );
                    }
                    let args: Vec<&str> = match kind {
                        "stop_node" => vec!["stop", node],
                        "kill_node" => vec!["kill", node],
                        "pause_node" => vec!["pause", node],
                        "partition_node" => vec!["network", "disconnect", KIND_NETWORK, node],
                        _ => vec!["exec", node, "systemctl", "stop", "kubelet"],
                    };
                    self.exec_ok(&engine, &args, ctx).await?;
                }
                let undo = (kind != "kill_node")
                    .then(|| json!({"engine": engine, "nodes": nodes, "addresses": addresses}));
                Ok(Injected {
                    targets: nodes,
                    detail: if selector.node.is_some() {
                        String::new()
                    } else {
                        format!("seed {seed}")
                    },
                    undo,
                })
            }
            "control_plane_down" => {
                // Every control-plane node: with several, one left up would
                // keep the API answering behind kind's load balancer.
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
                for node in &control_planes {
                    let args = ["exec", node, "mv", APISERVER_MANIFEST, APISERVER_PARKED];
                    self.exec_ok(&engine, &args, ctx).await?;
                }
                Ok(Injected {
                    targets: control_planes.clone(),
                    detail: format!("{APISERVER_MANIFEST} moved to {APISERVER_PARKED}"),
                    undo: Some(json!({"engine": engine, "nodes": control_planes})),
                })
            }
            "pod_kill" => {
                let mut pod_kill = fault
                    .pod_kill
                    .clone()
                    .ok_or_else(|| TargetError::Failed("pod_kill has no fields".to_owned()))?;
                pod_kill.namespace = expand(&pod_kill.namespace, env);
                pod_kill.selector = expand(&pod_kill.selector, env);
                let client = self.client(ctx).await?;
                let hit = api::pod_kill(&client, &pod_kill, seed).await?;
                Ok(Injected {
                    targets: hit,
                    detail: format!("seed {seed}"),
                    undo: None,
                })
            }
            "delete" => {
                let mut delete = fault
                    .delete
                    .clone()
                    .ok_or_else(|| TargetError::Failed("delete has no fields".to_owned()))?;
                delete.namespace = expand_opt(&delete.namespace, env);
                delete.name = expand_opt(&delete.name, env);
                delete.selector = expand_opt(&delete.selector, env);
                let client = self.client(ctx).await?;
                let hit = api::delete_objects(&client, &delete).await?;
                Ok(Injected {
                    targets: hit,
                    detail: String::new(),
                    undo: None,
                })
            }
            "drain_node" => {
                let selector = fault.node_selector().cloned().unwrap_or_default();
                let nodes = self.select_nodes(step, &selector, env, ctx).await?;
                let client = self.client(ctx).await?;
                let mut evicted = Vec::new();
                let mut refused = Vec::new();
                for node in &nodes {
                    let (ok, no) = api::drain(&client, node).await?;
                    evicted.extend(ok);
                    refused.extend(no);
                }
                let mut detail =
                    format!("evicted {} pod(s): {}", evicted.len(), evicted.join(", "));
                if !refused.is_empty() {
                    detail.push_str(&format!("; evictions refused: {}", refused.join("; ")));
                }
                Ok(Injected {
                    targets: nodes.clone(),
                    detail,
                    undo: Some(json!({"nodes": nodes})),
                })
            }
            other => Err(TargetError::Failed(format!(
                "fault kind `{other}` is not supported by the kind target"
            ))),
        }
    }

    async fn check_before_fault(&self, ctx: &RunContext) -> Result<(), TargetError> {
        self.check_identity("run the `run` fault", ctx).await
    }

    async fn revert(
        &self,
        kind: &str,
        undo: &Value,
        ctx: &RunContext,
    ) -> Result<String, TargetError> {
        let nodes = undo_nodes(undo);
        let engine = undo["engine"]
            .as_str()
            .map_or_else(|| self.engine(), str::to_owned);
        let mut done = Vec::new();
        for node in &nodes {
            let args: Vec<&str> = match kind {
                "stop_node" => vec!["start", node],
                "pause_node" => vec!["unpause", node],
                "partition_node" => {
                    let mut args = vec!["network", "connect"];
                    let address = &undo["addresses"][node.as_str()];
                    for (flag, key) in [("--ip", "ip"), ("--ip6", "ip6")] {
                        if let Some(ip) = address[key].as_str() {
                            args.extend([flag, ip]);
                        }
                    }
                    args.extend([KIND_NETWORK, node]);
                    args
                }
                "stop_kubelet" => vec!["exec", node, "systemctl", "start", "kubelet"],
                "control_plane_down" => vec!["exec", node, "sh", "-c", RESTORE_APISERVER],
                "drain_node" => {
                    let client = self.client(ctx).await?;
                    api::set_unschedulable(&client, node, false).await?;
                    done.push(format!("uncordoned {node}"));
                    continue;
                }
                other => return Err(TargetError::Failed(format!("{other} cannot be reverted"))),
            };
            let output = self.exec(&engine, &args, ctx).await?;
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
        if nodes.is_empty() {
            return Err(TargetError::Failed(format!(
                "{kind}: nothing recorded to revert"
            )));
        }
        Ok(done.join("; "))
    }

    async fn probe_k8s(&self, probe: &K8sProbe, ctx: &RunContext) -> super::ProbeOutcome {
        match self.client(ctx).await {
            Ok(client) => api::probe(&client, probe, &ctx.env).await,
            Err(e) => super::ProbeOutcome::fail(e.to_string()),
        }
    }

    async fn apply(&self, manifests: &[PathBuf], ctx: &RunContext) -> Result<String, TargetError> {
        let mut docs = Vec::new();
        for manifest in manifests {
            let written = expand(&manifest.to_string_lossy(), &ctx.env);
            let path = ctx.scenario_dir.join(written);
            docs.extend(api::read_manifests(&path)?);
        }
        let client = self.client(ctx).await?;
        let applied = api::apply(&client, docs).await?;
        Ok(format!(
            "applied {} object(s): {}",
            applied.len(),
            applied.join(", ")
        ))
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

/// Writes a file only its owner can read (a kubeconfig holds credentials).
fn write_private(path: &Path, text: &str) -> Result<(), TargetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TargetError::Failed(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| TargetError::Failed(format!("cannot write {}: {e}", path.display())))
}
