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
use schemars::JsonSchema;

use super::RawFault;
use crate::located::{Located, Problem};
use crate::vars::expand;

pub mod api;
pub mod conn;
#[cfg(test)]
pub mod mock;
pub mod scope;

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

    /// Moves the identity pin to the cluster the API server is now, after a
    /// legitimate rebuild; returns both UIDs for the journal. Only an
    /// explicit request calls it.
    async fn repin(&self, ctx: &RunContext) -> Result<String, TargetError> {
        let _ = ctx;
        Err(TargetError::Failed(
            "this target's identity cannot be re-pinned".to_owned(),
        ))
    }
}

/// Which nodes: `node: name` or `role: worker` with `count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeSelector {
    /// A node (container) name.
    pub node: Option<String>,
    /// `worker` or `control-plane`.
    pub role: Option<Located<String>>,
    /// How many nodes of the role (default 1).
    pub count: Option<u32>,
}

/// `pod_kill: {namespace, selector, count | percent}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodKillFault {
    /// Namespace.
    pub namespace: String,
    /// Label selector.
    pub selector: String,
    /// How many pods (default 1).
    pub count: Option<u32>,
    /// Or what share of the matching pods.
    pub percent: Option<u32>,
}

// Validated; loaded part by part (see `load`), so it is never deserialized
// whole. (The doc comment is the schema's description.)
/// `k8s: {kind, namespace, name, selector, condition, count}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct K8sProbe {
    /// `Node`, `Deployment`, `StatefulSet`, `Pod`, or any kind for an existence check.
    pub kind: Located<String>,
    /// Namespace of namespaced objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Label selector.
    pub selector: Option<String>,
    /// `Ready` (Node, Pod), `Available` (Deployment), `Exists`.
    pub condition: Option<String>,
    /// How many must meet the condition (default: all that match, at least 1).
    pub count: Option<u32>,
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
                let mut detail = Vec::new();
                for node in &nodes {
                    let drained = api::drain(client, node, api::DRAIN_PATIENCE).await?;
                    detail.push(describe_drain(node, &drained));
                }
                let detail = detail.join("; ");
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

/// What a drain did to a node, for the journal.
pub fn describe_drain(node: &str, drained: &api::Drained) -> String {
    let mut text = format!(
        "{node}: evicted {} pod(s): {}",
        drained.evicted.len(),
        drained.evicted.join(", ")
    );
    if drained.retries > 0 {
        text.push_str(&format!(
            "; a disruption budget refused {} time(s) before",
            drained.retries
        ));
    }
    if !drained.refused.is_empty() {
        text.push_str(&format!(
            "; evictions refused: {}",
            drained.refused.join("; ")
        ));
    }
    if !drained.still_there.is_empty() {
        text.push_str(&format!(
            "; still on the node: {}",
            drained.still_there.join(", ")
        ));
    }
    text
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
            Problem::at(role.loc, format!("unknown node role `{}`", role.value)).help((check
                .value_help)(
                &role.value,
                &["worker", "control-plane"],
                "role",
            )),
        ),
        (Some(_), None) | (None, Some(_)) => {}
    }
    if selector.count == Some(0) {
        check.problem(format!("step `{step}`: `count: 0` hits no node"));
    }
    (check.problems.len() == before).then(|| selector.clone())
}

/// Reads the manifests of an `apply` step (paths as written, `${VAR}`
/// expanded, relative to the drill's directory) and applies them.
pub async fn apply_manifests(
    client: &Client,
    manifests: &[PathBuf],
    ctx: &RunContext,
) -> Result<String, TargetError> {
    let mut docs = Vec::new();
    for manifest in manifests {
        let written = expand(&manifest.to_string_lossy(), &ctx.env);
        let path = ctx.scenario_dir.join(written);
        docs.extend(api::read_manifests(&path)?);
    }
    let applied = api::apply(client, docs).await?;
    Ok(format!(
        "applied {} object(s): {}",
        applied.len(),
        applied.join(", ")
    ))
}

fn expand_opt(value: &Option<String>, env: &BTreeMap<String, String>) -> Option<String> {
    value.as_ref().map(|v| expand(v, env))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::located::OneOrMany;
    use crate::target::{DeleteFault, FaultSpec};

    fn parse(raw: &RawFault) -> Result<FaultSpec, Vec<String>> {
        crate::target::check_fault(kube_fault, raw)
    }

    /// The Kubernetes faults every cluster target parses the same way.
    fn kube_fault(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<FaultSpec> {
        KubeFault::parse(kind, raw, check)
            .expect("a Kubernetes fault kind")
            .map(FaultSpec::Kube)
    }

    fn pod_kill(count: Option<u32>, percent: Option<u32>) -> RawFault {
        RawFault {
            pod_kill: Some(PodKillFault {
                namespace: "shop".into(),
                selector: "app=web".into(),
                count,
                percent,
            }),
            ..RawFault::default()
        }
    }

    #[test]
    fn pod_kill_takes_a_count_or_a_percent() {
        assert!(matches!(
            parse(&pod_kill(Some(2), None)),
            Ok(FaultSpec::Kube(KubeFault::PodKill(PodKillFault {
                count: Some(2),
                ..
            })))
        ));
        assert_eq!(
            parse(&pod_kill(Some(2), Some(50))),
            Err(vec![
                "step `hit`: `pod_kill` takes `count` or `percent`, not both".to_owned()
            ])
        );
        for percent in [0, 101] {
            assert_eq!(
                parse(&pod_kill(None, Some(percent))),
                Err(vec!["step `hit`: `percent` must be 1 to 100".to_owned()])
            );
        }
    }

    #[test]
    fn delete_takes_a_kind_and_a_name_or_selector_and_no_path() {
        let delete = |kind: Option<&str>, name: Option<&str>, path: bool| RawFault {
            delete: Some(DeleteFault {
                path: path.then(|| OneOrMany(vec![Located::new("x".to_owned())])),
                kind: kind.map(str::to_owned),
                namespace: None,
                name: name.map(str::to_owned),
                selector: None,
            }),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&delete(Some("Namespace"), Some("shop"), false)),
            Ok(FaultSpec::Kube(KubeFault::Delete(KubeDelete {
                kind: "Namespace".into(),
                namespace: None,
                name: Some("shop".into()),
                selector: None,
            })))
        );
        assert_eq!(
            parse(&delete(Some("Namespace"), None, true)),
            Err(vec![
                "step `hit`: `delete: {path}` deletes local files, on the local target only | on kind, use a `run` fault to delete files inside a node".to_owned(),
                "step `hit`: `delete` needs `kind` and `name` or `selector` | e.g. `delete: {kind: Namespace, name: shop}`".to_owned(),
            ])
        );
    }

    #[test]
    fn drain_node_needs_one_known_node_selector() {
        let drain = |node: Option<&str>, role: Option<&str>, count| RawFault {
            drain_node: Some(NodeSelector {
                node: node.map(str::to_owned),
                role: role.map(|r| Located::new(r.to_owned())),
                count,
            }),
            ..RawFault::default()
        };
        assert!(matches!(
            parse(&drain(None, Some("worker"), Some(2))),
            Ok(FaultSpec::Kube(KubeFault::DrainNode(_)))
        ));
        assert_eq!(
            parse(&drain(Some("c-worker"), Some("worker"), None)),
            Err(vec![
                "step `hit`: give `node` or `role`, not both".to_owned()
            ])
        );
        assert_eq!(
            parse(&drain(None, None, None)),
            Err(vec![
                "step `hit`: which node? give `node: <name>` or `role: worker`".to_owned()
            ])
        );
        let unknown = parse(&drain(None, Some("workers"), Some(0))).unwrap_err();
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert!(
            unknown[0].starts_with("unknown node role `workers` | ")
                && unknown[0].contains("control-plane"),
            "{unknown:?}"
        );
        assert_eq!(unknown[1], "step `hit`: `count: 0` hits no node");
    }

    #[test]
    fn api_faults_describe_what_they_hit_and_preview_it_expanded() {
        let env = BTreeMap::from([("NS".to_owned(), "shop".to_owned())]);
        let pod_kill = KubeFault::PodKill(PodKillFault {
            namespace: "${NS}".into(),
            selector: "app=web".into(),
            count: None,
            percent: Some(50),
        });
        assert_eq!(pod_kill.describe(), "${NS}/app=web");
        assert_eq!(
            pod_kill.preview(&env, ""),
            "delete 50% of the pods matching `app=web` in namespace shop, chosen with the run's seed"
        );
        let delete = KubeFault::Delete(KubeDelete {
            kind: "ConfigMap".into(),
            namespace: Some("${NS}".into()),
            name: None,
            selector: Some("tier=config".into()),
        });
        assert_eq!(delete.describe(), "ConfigMap tier=config");
        assert_eq!(
            delete.preview(&env, ""),
            "delete ConfigMap matching `tier=config` in namespace shop"
        );
        let drain = KubeFault::DrainNode(NodeSelector {
            node: Some("c-worker".into()),
            role: None,
            count: None,
        });
        assert_eq!(drain.describe(), "c-worker");
        assert_eq!(
            drain.preview(&env, "node c-worker"),
            "cordon and evict the pods of node c-worker"
        );
    }

    #[test]
    fn a_drain_is_undone_from_the_record_events_jsonl_keeps() {
        let undo = Undo::Kube(KubeUndo::Uncordon {
            nodes: vec!["c-worker".into()],
        });
        let recorded = serde_json::to_value(&undo).unwrap();
        assert_eq!(
            recorded,
            serde_json::json!({"kube": {"uncordon": {"nodes": ["c-worker"]}}})
        );
        assert_eq!(serde_json::from_value::<Undo>(recorded).unwrap(), undo);
    }
}
