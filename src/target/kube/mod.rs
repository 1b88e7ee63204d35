//! The Kubernetes layer every Kubernetes target shares (kind today; kwok and
//! an existing cluster next): the faults made through the API server
//! (`pod_kill`, `delete`, `drain_node`) with their validation, description,
//! injection and undo, and [`KubeOps`], what a Kubernetes target offers
//! beyond the [`Target`](super::Target) trait (`k8s` probes, `apply`, the
//! check that the API server is still the cluster set up by the run).
//!
//! Which nodes a `drain_node` hits is the target's choice (kind names its
//! nodes after its containers), so the target resolves the selector and
//! hands the names in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use kube::Client;
use serde::{Deserialize, Serialize};

use super::{FaultCheck, Injected, ProbeOutcome, RunContext, TargetError, Undo};
use crate::drill::yaml;
use crate::drill::{K8sProbe, NodeSelector, PodKillFault, Problem, RawFault};
use crate::vars::expand;

pub mod api;

/// What a Kubernetes target offers beyond [`Target`](super::Target).
#[async_trait]
pub trait KubeOps: Send + Sync {
    /// Refuses unless the API server is still the cluster set up by this
    /// run; `what` says what would be refused. Checked before every
    /// destructive action, also a `run` fault the engine runs itself.
    async fn confirm_cluster(&self, what: &str, ctx: &RunContext) -> Result<(), TargetError>;

    /// One attempt of a `k8s` probe.
    async fn probe(&self, probe: &K8sProbe, ctx: &RunContext) -> ProbeOutcome;

    /// Server-side apply of manifests (paths as written, resolved against
    /// the drill's directory after `${VAR}` expansion).
    async fn apply(&self, manifests: &[PathBuf], ctx: &RunContext) -> Result<String, TargetError>;
}

/// A fault made through the Kubernetes API.
#[derive(Debug, Clone, PartialEq)]
pub enum KubeFault {
    /// `pod_kill`: delete pods chosen with the run's seed.
    PodKill(PodKillFault),
    /// `delete`: delete objects by name or selector.
    Delete(KubeDelete),
    /// `drain_node`: cordon nodes and evict their pods (revert: uncordon).
    DrainNode(NodeSelector),
}

/// `delete: {kind, namespace, name | selector}`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeDelete {
    /// Object kind (`Namespace`, `Deployment`, `ConfigMap`, ...).
    pub kind: String,
    /// Namespace (default `default`).
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Label selector, when no name is given.
    pub selector: Option<String>,
}

/// How to undo a [`KubeFault`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeUndo {
    /// Mark these nodes schedulable again.
    Uncordon {
        /// Node names.
        nodes: Vec<String>,
    },
}

/// The `fault:` keys of [`KubeFault`], in the order they are listed.
pub const FAULT_KINDS: &[&str] = &["pod_kill", "delete", "drain_node"];

impl KubeFault {
    /// The key as written.
    pub fn kind(&self) -> &'static str {
        match self {
            KubeFault::PodKill(_) => "pod_kill",
            KubeFault::Delete(_) => "delete",
            KubeFault::DrainNode(_) => "drain_node",
        }
    }

    /// What it hits, for `plan`.
    pub fn describe(&self) -> String {
        match self {
            KubeFault::PodKill(pod_kill) => {
                format!("{}/{}", pod_kill.namespace, pod_kill.selector)
            }
            KubeFault::Delete(delete) => format!(
                "{} {}",
                delete.kind,
                delete
                    .name
                    .as_deref()
                    .or(delete.selector.as_deref())
                    .unwrap_or("")
            ),
            KubeFault::DrainNode(selector) => describe_selector(selector),
        }
    }

    /// What it would do, with `${VAR}` expanded (`--dry-run`); `nodes`
    /// describes the nodes a node selector would hit.
    pub fn preview(&self, env: &BTreeMap<String, String>, nodes: &str) -> String {
        match self {
            KubeFault::PodKill(f) => format!(
                "delete {} of the pods matching `{}` in namespace {}, chosen with the run's seed",
                f.percent
                    .map_or_else(|| f.count.unwrap_or(1).to_string(), |p| format!("{p}%")),
                expand(&f.selector, env),
                expand(&f.namespace, env)
            ),
            KubeFault::Delete(f) => format!(
                "delete {} {} in namespace {}",
                f.kind,
                expand_opt(&f.name, env)
                    .or_else(|| expand_opt(&f.selector, env).map(|s| format!("matching `{s}`")))
                    .unwrap_or_default(),
                expand_opt(&f.namespace, env).unwrap_or_else(|| "default".to_owned())
            ),
            KubeFault::DrainNode(_) => format!("cordon and evict the pods of {nodes}"),
        }
    }

    /// The node selector of a fault that hits nodes.
    pub fn node_selector(&self) -> Option<&NodeSelector> {
        match self {
            KubeFault::DrainNode(selector) => Some(selector),
            KubeFault::PodKill(_) | KubeFault::Delete(_) => None,
        }
    }

    /// Validates the `kind` key of `raw` if it is a Kubernetes API fault:
    /// `None` if it is not one; `Some(None)` if it is one with problems.
    pub fn parse(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<Option<KubeFault>> {
        let step = check.step;
        Some(match kind {
            "pod_kill" => raw.pod_kill.as_ref().and_then(|pod_kill| {
                let before = check.problems.len();
                if pod_kill.count.is_some() && pod_kill.percent.is_some() {
                    check.problem(format!(
                        "step `{step}`: `pod_kill` takes `count` or `percent`, not both"
                    ));
                }
                if pod_kill.percent.is_some_and(|p| p == 0 || p > 100) {
                    check.problem(format!("step `{step}`: `percent` must be 1 to 100"));
                }
                (check.problems.len() == before).then(|| KubeFault::PodKill(pod_kill.clone()))
            }),
            "delete" => raw.delete.as_ref().and_then(|delete| {
                let before = check.problems.len();
                if delete.path.is_some() {
                    check.push(Problem::at(check.loc, format!("step `{step}`: `delete: {{path}}` deletes local files, on the local target only")).help("on kind, use a `run` fault to delete files inside a node"));
                }
                let kind = match (&delete.kind, &delete.name, &delete.selector) {
                    (Some(kind), Some(_), _) | (Some(kind), _, Some(_)) => Some(kind.clone()),
                    _ => {
                        check.push(
                            Problem::at(
                                check.loc,
                                format!("step `{step}`: `delete` needs `kind` and `name` or `selector`"),
                            )
                            .help("e.g. `delete: {kind: Namespace, name: shop}`"),
                        );
                        None
                    }
                };
                let kind = kind.filter(|_| check.problems.len() == before)?;
                Some(KubeFault::Delete(KubeDelete {
                    kind,
                    namespace: delete.namespace.clone(),
                    name: delete.name.clone(),
                    selector: delete.selector.clone(),
                }))
            }),
            "drain_node" => raw
                .drain_node
                .as_ref()
                .and_then(|selector| check_node_selector(selector, check))
                .map(KubeFault::DrainNode),
            _ => return None,
        })
    }

    /// Injects the fault through `client`; `nodes` are the nodes the
    /// target chose for a node selector.
    pub async fn inject(
        &self,
        client: &Client,
        nodes: Vec<String>,
        env: &BTreeMap<String, String>,
        seed: u64,
    ) -> Result<Injected, TargetError> {
        match self {
            KubeFault::PodKill(pod_kill) => {
                let mut pod_kill = pod_kill.clone();
                pod_kill.namespace = expand(&pod_kill.namespace, env);
                pod_kill.selector = expand(&pod_kill.selector, env);
                let hit = api::pod_kill(client, &pod_kill, seed).await?;
                Ok(Injected {
                    targets: hit,
                    detail: format!("seed {seed}"),
                    undo: None,
                })
            }
            KubeFault::Delete(delete) => {
                let delete = KubeDelete {
                    kind: delete.kind.clone(),
                    namespace: expand_opt(&delete.namespace, env),
                    name: expand_opt(&delete.name, env),
                    selector: expand_opt(&delete.selector, env),
                };
                let hit = api::delete_objects(client, &delete).await?;
                Ok(Injected {
                    targets: hit,
                    detail: String::new(),
                    undo: None,
                })
            }
            KubeFault::DrainNode(_) => {
                let mut evicted = Vec::new();
                let mut refused = Vec::new();
                for node in &nodes {
                    let (ok, no) = api::drain(client, node).await?;
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
                    undo: Some(Undo::Kube(KubeUndo::Uncordon { nodes })),
                })
            }
        }
    }
}

impl KubeUndo {
    /// Undoes the fault through `client`.
    pub async fn revert(&self, client: &Client) -> Result<String, TargetError> {
        match self {
            KubeUndo::Uncordon { nodes } => {
                if nodes.is_empty() {
                    return Err(TargetError::Failed(
                        "drain_node: nothing recorded to revert".to_owned(),
                    ));
                }
                let mut done = Vec::new();
                for node in nodes {
                    api::set_unschedulable(client, node, false).await?;
                    done.push(format!("uncordoned {node}"));
                }
                Ok(done.join("; "))
            }
        }
    }
}

/// A node selector in a few words, for `plan`.
pub fn describe_selector(selector: &NodeSelector) -> String {
    match (&selector.node, &selector.role) {
        (Some(node), _) => node.clone(),
        (_, Some(role)) => format!("{} × {}", selector.count.unwrap_or(1), role.value),
        (None, None) => String::new(),
    }
}

/// Checks a node selector: one of `node` and `role`, a known role, a count
/// above 0. Returns it when it is valid.
pub fn check_node_selector(
    selector: &NodeSelector,
    check: &mut FaultCheck,
) -> Option<NodeSelector> {
    let step = check.step;
    let before = check.problems.len();
    match (&selector.node, &selector.role) {
        (Some(_), Some(_)) => {
            check.problem(format!("step `{step}`: give `node` or `role`, not both"))
        }
        (None, None) => check.problem(format!(
            "step `{step}`: which node? give `node: <name>` or `role: worker`"
        )),
        (None, Some(role)) if !matches!(role.as_str(), "worker" | "control-plane") => check.push(
            Problem::at(role.loc, format!("unknown node role `{}`", role.value)).help(
                yaml::suggest(&role.value, ["worker", "control-plane"], "role"),
            ),
        ),
        (Some(_), None) | (None, Some(_)) => {}
    }
    if selector.count == Some(0) {
        check.problem(format!("step `{step}`: `count: 0` hits no node"));
    }
    (check.problems.len() == before).then(|| selector.clone())
}

fn expand_opt(value: &Option<String>, env: &BTreeMap<String, String>) -> Option<String> {
    value.as_ref().map(|v| expand(v, env))
}
