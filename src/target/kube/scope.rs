//! Blast radius (docs/drill-format.md, "scope"): the namespaces a drill's
//! API faults may touch.
//!
//! `scope: {namespaces: [..]}`, by default the namespaces the drill's
//! manifests create. A `pod_kill` or `delete` outside them is refused: at
//! validation when the namespace (or the Namespace's name) is written
//! literally, at run time once `${VAR}`s are expanded or a selector is
//! resolved (exit 3).
//!
//! Objects that live in no namespace (a Node drained, a PersistentVolume,
//! a ClusterRole, a cluster-scoped custom resource) are outside every
//! namespace scope. On kind and kwok, whose cluster the drill itself sets
//! up, they are allowed; on `cluster`, an existing cluster others use, they
//! are refused, and so is `kube-system`, whatever `scope` says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{KubeDelete, KubeFault, api};
use crate::located::Located;
use crate::target::TargetError;
use crate::vars::expand;

/// The namespace no drill may touch on a shared cluster.
pub const KUBE_SYSTEM: &str = "kube-system";

/// `scope:` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    /// The namespaces API faults may touch (default: the namespaces the
    /// drill's manifests create).
    pub namespaces: Vec<Located<String>>,
}

/// The blast radius of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// Namespaces API faults may touch.
    pub namespaces: BTreeSet<String>,
    /// The cluster is shared (the `cluster` target): no cluster-scoped
    /// object, no drain, and never `kube-system`.
    pub shared: bool,
    /// Where the namespaces came from, for messages (`scope` or the manifests).
    pub source: String,
}

impl Scope {
    /// A scope of these namespaces.
    pub fn new(namespaces: impl IntoIterator<Item = String>, shared: bool, source: &str) -> Scope {
        Scope {
            namespaces: namespaces.into_iter().collect(),
            shared,
            source: source.to_owned(),
        }
    }

    /// Whether a fault may touch `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        !(self.shared && namespace == KUBE_SYSTEM) && self.namespaces.contains(namespace)
    }

    fn outside(&self, what: &str, namespace: &str) -> String {
        let listed = if self.namespaces.is_empty() {
            "in it: it holds no namespace".to_owned()
        } else {
            format!(
                "one of {}",
                self.namespaces
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let never = if self.shared && namespace == KUBE_SYSTEM {
            " (kube-system is never in scope on a `cluster` target)"
        } else {
            ""
        };
        format!(
            "{what} is outside the drill's scope: namespace `{namespace}` is not {listed} ({}){never}",
            self.source
        )
    }

    fn cluster_wide(&self, what: &str) -> String {
        format!(
            "{what} touches objects of no namespace, outside every namespace scope: refused on a `cluster` target (an existing cluster others use)"
        )
    }

    /// What in `fault` is outside the scope, judged on what is written:
    /// values with `${VAR}` and selectors of Namespaces are left to
    /// [`Scope::check`] at run time.
    pub fn check_written(&self, fault: &KubeFault) -> Vec<String> {
        let literal = |value: &str| (!value.contains("${")).then(|| value.to_owned());
        let mut problems = Vec::new();
        match fault {
            KubeFault::PodKill(pod_kill) => {
                if let Some(namespace) = literal(&pod_kill.namespace)
                    && !self.allows(&namespace)
                {
                    problems.push(self.outside("`pod_kill`", &namespace));
                }
            }
            KubeFault::Delete(delete) => match delete_reach(delete, known_namespaced) {
                Reach::Namespace(Some(namespace)) => {
                    if let Some(namespace) = literal(&namespace)
                        && !self.allows(&namespace)
                    {
                        problems.push(
                            self.outside(&format!("`delete` of {}", delete.kind), &namespace),
                        );
                    }
                }
                Reach::ClusterWide if self.shared => {
                    problems.push(self.cluster_wide(&format!("`delete` of {}", delete.kind)));
                }
                Reach::Namespace(None) | Reach::ClusterWide | Reach::Unknown => {}
            },
            KubeFault::DrainNode(_) => {
                if self.shared {
                    problems.push(self.cluster_wide("`drain_node` (it evicts pods of every namespace on the node, kube-system's too)"));
                }
            }
        }
        problems
    }

    /// Refuses (exit 3) a fault outside the scope, with `${VAR}`s expanded
    /// and a Namespace selector or a custom kind resolved through `client`.
    pub async fn check(
        &self,
        client: &Client,
        fault: &KubeFault,
        env: &BTreeMap<String, String>,
    ) -> Result<(), TargetError> {
        let refuse = |why: String| Err(TargetError::Refused(format!("refusing to inject: {why}")));
        match fault {
            KubeFault::PodKill(pod_kill) => {
                let namespace = expand(&pod_kill.namespace, env);
                if !self.allows(&namespace) {
                    return refuse(self.outside("`pod_kill`", &namespace));
                }
            }
            KubeFault::Delete(delete) => {
                let delete = KubeDelete {
                    kind: delete.kind.clone(),
                    namespace: delete.namespace.as_ref().map(|v| expand(v, env)),
                    name: delete.name.as_ref().map(|v| expand(v, env)),
                    selector: delete.selector.as_ref().map(|v| expand(v, env)),
                };
                let what = format!("`delete` of {}", delete.kind);
                let reach = match delete_reach(&delete, known_namespaced) {
                    Reach::Unknown => {
                        let namespaced = served_namespaced(client, &delete.kind).await?;
                        delete_reach(&delete, |_| Some(namespaced))
                    }
                    reach => reach,
                };
                match reach {
                    Reach::Namespace(Some(namespace)) => {
                        if !self.allows(&namespace) {
                            return refuse(self.outside(&what, &namespace));
                        }
                    }
                    Reach::Namespace(None) => {
                        // Namespaces by selector: every one it matches now.
                        let selector = delete.selector.clone().unwrap_or_default();
                        let namespaces: Api<Namespace> = Api::all(client.clone());
                        let matching = namespaces
                            .list(&ListParams::default().labels(&selector))
                            .await
                            .map_err(|e| {
                                TargetError::Refused(format!(
                                    "refusing to inject: cannot list the namespaces matching `{selector}` to check the scope: {e}"
                                ))
                            })?;
                        if let Some(outside) = matching
                            .items
                            .iter()
                            .map(ResourceExt::name_any)
                            .find(|name| !self.allows(name))
                        {
                            return refuse(self.outside(&what, &outside));
                        }
                    }
                    Reach::ClusterWide if self.shared => return refuse(self.cluster_wide(&what)),
                    Reach::ClusterWide | Reach::Unknown => {}
                }
            }
            KubeFault::DrainNode(_) => {
                if self.shared {
                    return refuse(self.cluster_wide("`drain_node`"));
                }
            }
        }
        Ok(())
    }
}

/// Where a `delete` reaches.
#[derive(Debug, PartialEq)]
enum Reach {
    /// Objects in this namespace; `None`: Namespaces chosen by a selector.
    Namespace(Option<String>),
    /// Objects of no namespace (a Node, a ClusterRole).
    ClusterWide,
    /// A kind firedrill does not know before asking the API server.
    Unknown,
}

fn known_namespaced(kind: &str) -> Option<bool> {
    api::known_resource(kind).map(|resource| resource.namespaced)
}

fn delete_reach(delete: &KubeDelete, namespaced: impl Fn(&str) -> Option<bool>) -> Reach {
    if delete.kind == "Namespace" {
        return Reach::Namespace(delete.name.clone());
    }
    match namespaced(&delete.kind) {
        Some(true) => Reach::Namespace(Some(
            delete
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
        )),
        Some(false) => Reach::ClusterWide,
        None => Reach::Unknown,
    }
}

/// Whether the API server serves `kind` (a custom resource, maybe written
/// `Kind.group`) in namespaces. Unknown kinds are refused: their reach
/// cannot be judged.
async fn served_namespaced(client: &Client, kind: &str) -> Result<bool, TargetError> {
    let (name, group) = match kind.split_once('.') {
        Some((name, group)) => (name, Some(group)),
        None => (kind, None),
    };
    let discovery = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(|e| {
            TargetError::Refused(format!(
                "refusing to inject: cannot discover kind `{kind}` to check the scope: {e}"
            ))
        })?;
    let scopes: BTreeSet<bool> = discovery
        .groups()
        .filter(|g| group.is_none_or(|group| g.name() == group))
        .filter_map(|g| g.recommended_kind(name))
        .map(|(_, caps)| caps.scope == kube::discovery::Scope::Namespaced)
        .collect();
    match scopes.into_iter().collect::<Vec<_>>().as_slice() {
        [namespaced] => Ok(*namespaced),
        _ => Err(TargetError::Refused(format!(
            "refusing to inject: cannot tell whether kind `{kind}` lives in namespaces, so not whether it is in scope"
        ))),
    }
}

/// The namespaces the manifests create (their `kind: Namespace` objects),
/// for the default scope. Paths resolve against `dir`; a path with
/// `${VAR}`, or one that cannot be read, adds nothing (its `apply` step
/// reports the problem).
pub fn manifest_namespaces<'a>(
    dir: &Path,
    manifests: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<String> {
    manifests
        .into_iter()
        .filter(|path| !path.contains("${"))
        .filter_map(|path| api::read_manifests(&dir.join(path)).ok())
        .flatten()
        .filter(|doc| doc["kind"] == "Namespace")
        .filter_map(|doc| doc["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::kube::PodKillFault;

    fn pod_kill(namespace: &str) -> KubeFault {
        KubeFault::PodKill(PodKillFault {
            namespace: namespace.into(),
            selector: "app=web".into(),
            count: None,
            percent: None,
        })
    }

    fn delete(kind: &str, namespace: Option<&str>, name: Option<&str>) -> KubeFault {
        KubeFault::Delete(KubeDelete {
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            selector: name.is_none().then(|| "app=web".to_owned()),
        })
    }

    #[test]
    fn written_namespaces_outside_the_scope_are_refused() {
        let scope = Scope::new(["shop".to_owned()], false, "`scope`");
        assert!(scope.check_written(&pod_kill("shop")).is_empty());
        assert_eq!(
            scope.check_written(&pod_kill("billing")),
            [
                "`pod_kill` is outside the drill's scope: namespace `billing` is not one of shop (`scope`)"
            ]
        );
        // Left to the run: a variable, Namespaces by selector.
        assert!(scope.check_written(&pod_kill("${NS}")).is_empty());
        assert!(
            scope
                .check_written(&delete("Namespace", None, None))
                .is_empty()
        );
        assert_eq!(
            scope
                .check_written(&delete("Namespace", None, Some("billing")))
                .len(),
            1
        );
        assert!(
            scope
                .check_written(&delete("Namespace", None, Some("shop")))
                .is_empty()
        );
        // A namespaced kind without a namespace is in `default`.
        assert_eq!(
            scope.check_written(&delete("ConfigMap", None, Some("x"))),
            [
                "`delete` of ConfigMap is outside the drill's scope: namespace `default` is not one of shop (`scope`)"
            ]
        );
        assert!(
            scope
                .check_written(&delete("ConfigMap", Some("shop"), Some("x")))
                .is_empty()
        );
        // The run's own cluster: objects of no namespace are allowed.
        assert!(
            scope
                .check_written(&delete("ClusterRole", None, Some("x")))
                .is_empty()
        );
    }

    #[test]
    fn a_shared_cluster_never_has_kube_system_nor_cluster_wide_objects_in_scope() {
        let scope = Scope::new(["shop".to_owned(), KUBE_SYSTEM.to_owned()], true, "`scope`");
        assert!(!scope.allows(KUBE_SYSTEM));
        let problems = scope.check_written(&pod_kill(KUBE_SYSTEM));
        assert!(
            problems[0].ends_with("(kube-system is never in scope on a `cluster` target)"),
            "{problems:?}"
        );
        assert_eq!(
            scope.check_written(&delete("Node", None, Some("n1"))).len(),
            1
        );
        assert_eq!(
            scope
                .check_written(&delete("Namespace", None, Some(KUBE_SYSTEM)))
                .len(),
            1
        );
        let drain = KubeFault::DrainNode(crate::target::kube::NodeSelector {
            node: Some("n1".into()),
            role: None,
            count: None,
        });
        assert_eq!(scope.check_written(&drain).len(), 1);
        assert!(
            Scope::new(["shop".to_owned()], false, "x")
                .check_written(&drain)
                .is_empty()
        );
    }

    #[test]
    fn the_default_scope_is_the_namespaces_the_manifests_create() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: other}\n",
        )
        .unwrap();
        assert_eq!(
            manifest_namespaces(dir.path(), ["a.yaml", "missing.yaml", "${X}/b.yaml"]),
            BTreeSet::from(["shop".to_owned()])
        );
    }
}
