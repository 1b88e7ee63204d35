//! What a Kubernetes target asks of the Kubernetes API: the identity of the
//! cluster, `k8s` probes, the API faults (`pod_kill`, `delete`, `drain_node`),
//! server-side apply, and evidence. Decisions (is this Node Ready?) are pure
//! functions; the rest is one request per line so tests can assert them.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::{K8sProbe, KubeDelete, PodKillFault};
use crate::target::{ProbeOutcome, TargetError};

/// The field manager of firedrill's server-side applies.
pub const FIELD_MANAGER: &str = "firedrill";

fn failed(what: &str, error: kube::Error) -> TargetError {
    TargetError::Failed(format!("{what}: {error}"))
}

/// The UID of the `kube-system` namespace: the identity of a cluster.
pub async fn kube_system_uid(client: &Client) -> Result<String, TargetError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = namespaces
        .get("kube-system")
        .await
        .map_err(|e| failed("cannot read namespace kube-system", e))?;
    namespace
        .metadata
        .uid
        .ok_or_else(|| TargetError::Failed("namespace kube-system has no UID".to_owned()))
}

/// A kind the target knows without asking the API server: group, version,
/// plural, namespaced.
struct Known {
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const KNOWN: &[Known] = &[
    known("Namespace", "", "v1", "namespaces", false),
    known("Node", "", "v1", "nodes", false),
    known("PersistentVolume", "", "v1", "persistentvolumes", false),
    known("Pod", "", "v1", "pods", true),
    known("Service", "", "v1", "services", true),
    known("ConfigMap", "", "v1", "configmaps", true),
    known("Secret", "", "v1", "secrets", true),
    known("ServiceAccount", "", "v1", "serviceaccounts", true),
    known(
        "PersistentVolumeClaim",
        "",
        "v1",
        "persistentvolumeclaims",
        true,
    ),
    known("Endpoints", "", "v1", "endpoints", true),
    known("Deployment", "apps", "v1", "deployments", true),
    known("StatefulSet", "apps", "v1", "statefulsets", true),
    known("DaemonSet", "apps", "v1", "daemonsets", true),
    known("ReplicaSet", "apps", "v1", "replicasets", true),
    known("Job", "batch", "v1", "jobs", true),
    known("CronJob", "batch", "v1", "cronjobs", true),
    known("Ingress", "networking.k8s.io", "v1", "ingresses", true),
    known(
        "NetworkPolicy",
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        true,
    ),
    known(
        "PodDisruptionBudget",
        "policy",
        "v1",
        "poddisruptionbudgets",
        true,
    ),
    known("Role", "rbac.authorization.k8s.io", "v1", "roles", true),
    known(
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        true,
    ),
    known(
        "ClusterRole",
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        false,
    ),
    known(
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        false,
    ),
    known(
        "StorageClass",
        "storage.k8s.io",
        "v1",
        "storageclasses",
        false,
    ),
    known(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        false,
    ),
];

const fn known(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Known {
    Known {
        kind,
        group,
        version,
        plural,
        namespaced,
    }
}

/// A resource to talk to, and whether it lives in namespaces.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The API resource.
    pub api: ApiResource,
    /// Namespaced or cluster-wide.
    pub namespaced: bool,
}

/// The resource of a built-in kind (`Deployment`), if firedrill knows it.
pub fn known_resource(kind: &str) -> Option<Resource> {
    KNOWN.iter().find(|k| k.kind == kind).map(|k| Resource {
        api: ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(k.group, k.version, k.kind),
            k.plural,
        ),
        namespaced: k.namespaced,
    })
}

/// The resource of `apiVersion` + `kind`: the built-in table when it matches,
/// otherwise one discovery request (custom resources).
async fn resource_of(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> Result<Resource, TargetError> {
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    if let Some(found) = known_resource(kind)
        && found.api.group == group
        && found.api.version == version
    {
        return Ok(found);
    }
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (api, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| {
            failed(
                &format!("the API server does not serve {api_version} {kind}"),
                e,
            )
        })?;
    Ok(Resource {
        api,
        namespaced: caps.scope == kube::discovery::Scope::Namespaced,
    })
}

/// The resource of a kind as a drill writes it: a built-in kind from the
/// table, else what the API server serves under that kind (custom
/// resources), found by discovery. `Kind.group` picks one group when
/// several serve the kind.
pub async fn resolve_kind(client: &Client, kind: &str) -> Result<Resource, TargetError> {
    if let Some(found) = known_resource(kind) {
        return Ok(found);
    }
    let (kind, group) = match kind.split_once('.') {
        Some((kind, group)) => (kind, Some(group)),
        None => (kind, None),
    };
    let discovery = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(|e| failed("cannot discover the kinds the API server serves", e))?;
    let mut found: Vec<Resource> = discovery
        .groups()
        .filter(|g| group.is_none_or(|group| g.name() == group))
        .filter_map(|g| g.recommended_kind(kind))
        .map(|(api, caps)| Resource {
            api,
            namespaced: caps.scope == kube::discovery::Scope::Namespaced,
        })
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(TargetError::Failed(format!(
            "the API server serves no kind `{kind}`{}",
            group.map(|g| format!(" in group {g}")).unwrap_or_default()
        ))),
        _ => Err(TargetError::Failed(format!(
            "several API groups serve kind `{kind}` ({}): write it as `{kind}.<group>`",
            found
                .iter()
                .map(|r| r.api.group.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn dynamic_api(client: &Client, resource: &Resource, namespace: &str) -> Api<DynamicObject> {
    if resource.namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource.api)
    } else {
        Api::all_with(client.clone(), &resource.api)
    }
}

/// `n` of `items`, chosen with `seed` (the same seed chooses the same items).
pub fn choose(mut items: Vec<String>, n: usize, seed: u64) -> Vec<String> {
    items.sort();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    items.shuffle(&mut rng);
    items.truncate(n);
    items.sort();
    items
}

/// How many pods `pod_kill` hits among `matching`: `count` (default 1) or
/// `percent` rounded up, never more than there are.
pub fn pod_kill_count(fault: &PodKillFault, matching: usize) -> usize {
    let wanted = match fault.percent {
        Some(percent) => (matching * percent as usize).div_ceil(100).max(1),
        None => fault.count.unwrap_or(1) as usize,
    };
    wanted.min(matching)
}

/// Deletes pods chosen by `seed` among those matching the selector.
/// Returns the pods hit as `namespace/name`.
pub async fn pod_kill(
    client: &Client,
    fault: &PodKillFault,
    seed: u64,
) -> Result<Vec<String>, TargetError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &fault.namespace);
    let list = pods
        .list(&ListParams::default().labels(&fault.selector))
        .await
        .map_err(|e| failed("cannot list pods", e))?;
    // Pods already on their way out do not count as hits.
    let names: Vec<String> = list
        .items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .map(ResourceExt::name_any)
        .collect();
    if names.is_empty() {
        return Err(TargetError::Failed(format!(
            "no pods match `{}` in namespace {}",
            fault.selector, fault.namespace
        )));
    }
    let count = pod_kill_count(fault, names.len());
    let chosen = choose(names, count, seed);
    let mut hit = Vec::new();
    for name in chosen {
        // Killed, not asked to stop: no grace period.
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await
            .map_err(|e| failed(&format!("cannot delete pod {}/{name}", fault.namespace), e))?;
        hit.push(format!("{}/{name}", fault.namespace));
    }
    Ok(hit)
}

/// Deletes Kubernetes objects by name or selector. Returns them as
/// `Kind/namespace/name` (or `Kind/name` when cluster-wide).
pub async fn delete_objects(
    client: &Client,
    fault: &KubeDelete,
) -> Result<Vec<String>, TargetError> {
    let resource = resolve_kind(client, &fault.kind).await?;
    // As the API server names it (`Widget`, also when written `Widget.<group>`).
    let kind = resource.api.kind.as_str();
    let namespace = fault.namespace.as_deref().unwrap_or("default");
    let api = dynamic_api(client, &resource, namespace);
    let names = match (&fault.name, &fault.selector) {
        (Some(name), _) => vec![name.clone()],
        (None, Some(selector)) => {
            let list = api
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| failed(&format!("cannot list {kind}"), e))?;
            let mut names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
            names.sort();
            if names.is_empty() {
                return Err(TargetError::Failed(format!(
                    "no {kind} matches `{selector}`"
                )));
            }
            names
        }
        (None, None) => {
            return Err(TargetError::Failed(
                "`delete` needs `name` or `selector`".to_owned(),
            ));
        }
    };
    let mut hit = Vec::new();
    for name in names {
        let shown = if resource.namespaced {
            format!("{kind}/{namespace}/{name}")
        } else {
            format!("{kind}/{name}")
        };
        api.delete(&name, &DeleteParams::background())
            .await
            .map_err(|e| failed(&format!("cannot delete {shown}"), e))?;
        hit.push(shown);
    }
    Ok(hit)
}

/// Marks a node unschedulable (cordon) or schedulable again (uncordon).
pub async fn set_unschedulable(
    client: &Client,
    node: &str,
    unschedulable: bool,
) -> Result<(), TargetError> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": unschedulable}})),
        )
        .await
        .map_err(|e| {
            failed(
                &format!(
                    "cannot {} node {node}",
                    if unschedulable { "cordon" } else { "uncordon" }
                ),
                e,
            )
        })?;
    Ok(())
}

/// Whether `kubectl drain` would evict this pod: not a mirror (static) pod,
/// not owned by a DaemonSet, not finished.
pub fn evictable(pod: &Pod) -> bool {
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let daemon = pod
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|owners| owners.iter().any(|o| o.kind == "DaemonSet"));
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
    !mirror && !daemon && !finished
}

/// How long a drain keeps asking for evictions a disruption budget refuses,
/// and waits for the evicted pods to leave.
pub const DRAIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// What a drain did to one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drained {
    /// Pods evicted, as `namespace/name`.
    pub evicted: Vec<String>,
    /// Pods whose eviction was still refused at the end, with why.
    pub refused: Vec<String>,
    /// How many times a disruption budget refused an eviction (429) before
    /// it was granted or given up.
    pub retries: u32,
    /// Evicted pods still on the node when the patience ran out.
    pub still_there: Vec<String>,
}

/// Cordons a node, evicts its pods (as `kubectl drain --ignore-daemonsets`)
/// and waits for them to leave. An eviction a disruption budget refuses
/// (429) is asked again every second, as kubectl does, until `patience`
/// runs out; then it is reported as refused.
pub async fn drain(
    client: &Client,
    node: &str,
    patience: std::time::Duration,
) -> Result<Drained, TargetError> {
    let deadline = tokio::time::Instant::now() + patience;
    set_unschedulable(client, node, true).await?;
    let all: Api<Pod> = Api::all(client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let list = all
        .list(&on_node)
        .await
        .map_err(|e| failed(&format!("cannot list the pods of node {node}"), e))?;
    let mut drained = Drained::default();
    let mut evicted_uids = Vec::new();
    for pod in list.items.iter().filter(|pod| evictable(pod)) {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        // The Eviction as kubectl sends it (policy/v1).
        let eviction = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        });
        loop {
            let result: Result<Value, _> = pods
                .create_subresource("eviction", &name, &PostParams::default(), &eviction)
                .await;
            match result {
                Ok(_) => {
                    drained.evicted.push(format!("{namespace}/{name}"));
                    evicted_uids.push(pod.uid().unwrap_or_default());
                }
                // Gone already: nothing to evict.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                // A disruption budget says not now: ask again, as kubectl does.
                Err(kube::Error::Api(status))
                    if status.code == 429 && tokio::time::Instant::now() < deadline =>
                {
                    drained.retries += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => drained.refused.push(format!("{namespace}/{name}: {e}")),
            }
            break;
        }
    }
    // Evicted is not gone: wait until the pods have left the node.
    loop {
        let left: Vec<String> = all
            .list(&on_node)
            .await
            .map_err(|e| failed(&format!("cannot list the pods of node {node}"), e))?
            .items
            .iter()
            .filter(|pod| evicted_uids.contains(&pod.uid().unwrap_or_default()))
            .map(|pod| format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()))
            .collect();
        if left.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            drained.still_there = left;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Ok(drained)
}

fn condition_true<'a>(
    conditions: impl IntoIterator<Item = (&'a str, &'a str)>,
    wanted: &str,
) -> bool {
    conditions
        .into_iter()
        .any(|(kind, status)| kind == wanted && status == "True")
}

/// A Node whose `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    condition_true(
        conditions
            .into_iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str())),
        "Ready",
    )
}

/// A Pod whose `Ready` condition is `True`.
pub fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    condition_true(
        conditions
            .into_iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str())),
        "Ready",
    )
}

/// A Deployment whose `Available` condition is `True` for its current
/// spec: a status the controller wrote for an older generation (just
/// after a change) says nothing about the Deployment as it is now.
pub fn deployment_available(deployment: &Deployment) -> bool {
    let observed = deployment
        .status
        .as_ref()
        .and_then(|s| s.observed_generation);
    if observed < deployment.metadata.generation {
        return false;
    }
    let conditions = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref());
    condition_true(
        conditions.into_iter().flatten().map(|c| {
            (
                c.type_.as_deref().unwrap_or_default(),
                c.status.as_deref().unwrap_or_default(),
            )
        }),
        "Available",
    )
}

/// A StatefulSet whose ready replicas reach the wanted replicas, in a
/// status written for its current generation.
pub fn statefulset_ready(set: &StatefulSet) -> bool {
    let observed = set.status.as_ref().and_then(|s| s.observed_generation);
    if observed < set.metadata.generation {
        return false;
    }
    let wanted = set.spec.replicas.unwrap_or(1);
    let ready = set
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    ready >= wanted
}

/// The condition a probe checks: as written, or the kind's usual one.
pub fn probe_condition(probe: &K8sProbe) -> &str {
    match (probe.condition.as_deref(), probe.kind.value.as_str()) {
        (Some(condition), _) if !condition.is_empty() => condition,
        (_, "Node" | "Pod" | "StatefulSet") => "Ready",
        (_, "Deployment") => "Available",
        _ => "Exists",
    }
}

/// The verdict of a probe on `passing` of `total` matching objects.
pub fn judge(probe: &K8sProbe, condition: &str, passing: usize, total: usize) -> ProbeOutcome {
    let kind = &probe.kind.value;
    let wanted = probe.count.map(|c| c as usize);
    let ok = match wanted {
        Some(wanted) => passing >= wanted,
        None => total > 0 && passing == total,
    };
    let detail = match wanted {
        Some(wanted) => format!("{passing} {kind} {condition} (want {wanted}; {total} match)"),
        None => format!("{passing}/{total} {kind} {condition}"),
    };
    if ok {
        ProbeOutcome::pass(detail)
    } else {
        ProbeOutcome::fail(detail)
    }
}

/// The objects a probe looks at: one by name, or those matching the selector.
async fn probe_list<K>(
    api: Api<K>,
    probe: &K8sProbe,
    env: &BTreeMap<String, String>,
) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if let Some(name) = &probe.name {
        let name = crate::vars::expand(name, env);
        return Ok(api.get_opt(&name).await?.into_iter().collect());
    }
    let mut params = ListParams::default();
    if let Some(selector) = &probe.selector {
        params = params.labels(&crate::vars::expand(selector, env));
    }
    Ok(api.list(&params).await?.items)
}

/// One attempt of a `k8s` probe.
pub async fn probe(
    client: &Client,
    probe: &K8sProbe,
    env: &BTreeMap<String, String>,
) -> ProbeOutcome {
    let condition = probe_condition(probe).to_owned();
    let namespace = crate::vars::expand(probe.namespace.as_deref().unwrap_or("default"), env);
    let result = match (probe.kind.value.as_str(), condition.as_str()) {
        ("Node", "Ready") => probe_list::<Node>(Api::all(client.clone()), probe, env)
            .await
            .map(|items| (items.iter().filter(|n| node_ready(n)).count(), items.len())),
        ("Pod", "Ready") => {
            probe_list::<Pod>(Api::namespaced(client.clone(), &namespace), probe, env)
                .await
                .map(|items| (items.iter().filter(|p| pod_ready(p)).count(), items.len()))
        }
        ("Deployment", "Available") => {
            probe_list::<Deployment>(Api::namespaced(client.clone(), &namespace), probe, env)
                .await
                .map(|items| {
                    (
                        items.iter().filter(|d| deployment_available(d)).count(),
                        items.len(),
                    )
                })
        }
        ("StatefulSet", "Ready") => {
            probe_list::<StatefulSet>(Api::namespaced(client.clone(), &namespace), probe, env)
                .await
                .map(|items| {
                    (
                        items.iter().filter(|s| statefulset_ready(s)).count(),
                        items.len(),
                    )
                })
        }
        (kind, "Exists") => {
            let resource = match resolve_kind(client, kind).await {
                Ok(resource) => resource,
                Err(e) => return ProbeOutcome::fail(e.to_string()),
            };
            probe_list::<DynamicObject>(dynamic_api(client, &resource, &namespace), probe, env)
                .await
                .map(|items| (items.len(), items.len()))
        }
        (kind, condition) => {
            return ProbeOutcome::fail(format!(
                "condition `{condition}` is not checked for kind `{kind}`"
            ));
        }
    };
    match result {
        Ok((passing, total)) => {
            // `Exists` with no count: one is enough.
            if condition == "Exists" && probe.count.is_none() {
                let mut with_one = probe.clone();
                with_one.count = Some(1);
                return judge(&with_one, &condition, passing, total);
            }
            judge(probe, &condition, passing, total)
        }
        Err(error) => ProbeOutcome::fail(format!("API request failed: {error}")),
    }
}

/// Reads manifests: every YAML document of every file (a directory: its
/// `*.yaml`/`*.yml` files, sorted). Empty documents are skipped.
pub fn read_manifests(path: &Path) -> Result<Vec<Value>, TargetError> {
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| TargetError::Failed(format!("cannot read {}: {e}", path.display())))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| TargetError::Failed(format!("cannot read {}: {e}", file.display())))?;
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| TargetError::Failed(format!("{}: {e}", file.display())))?;
        for doc in parsed {
            if doc.is_null() {
                continue;
            }
            for field in ["apiVersion", "kind"] {
                if !doc[field].is_string() {
                    return Err(TargetError::Failed(format!(
                        "{}: a document has no `{field}`",
                        file.display()
                    )));
                }
            }
            if !doc["metadata"]["name"].is_string() {
                return Err(TargetError::Failed(format!(
                    "{}: a {} has no `metadata.name`",
                    file.display(),
                    doc["kind"].as_str().unwrap_or_default()
                )));
            }
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// How long `apply` waits for a CustomResourceDefinition to be Established
/// before applying objects of its kind.
pub const CRD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Server-side applies documents: Namespaces and CustomResourceDefinitions
/// first, then, once every CRD is Established (its kind is served), the rest
/// in order. Returns what was applied as `Kind/namespace/name`.
pub async fn apply(client: &Client, mut docs: Vec<Value>) -> Result<Vec<String>, TargetError> {
    let first = |doc: &Value| {
        matches!(
            doc["kind"].as_str(),
            Some("Namespace" | "CustomResourceDefinition")
        )
    };
    // Stable: the rest keep their order.
    docs.sort_by_key(|doc| !first(doc));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    let mut crds: Vec<String> = Vec::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        if !first(&doc) && !crds.is_empty() {
            for crd in std::mem::take(&mut crds) {
                wait_established(client, &crd, CRD_PATIENCE).await?;
            }
        }
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let resource = served(client, &api_version, &kind).await?;
        let namespace = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let api = dynamic_api(client, &resource, &namespace);
        let shown = if resource.namespaced {
            format!("{kind}/{namespace}/{name}")
        } else {
            format!("{kind}/{name}")
        };
        api.patch(&name, &params, &Patch::Apply(&doc))
            .await
            .map_err(|e| failed(&format!("cannot apply {shown}"), e))?;
        if kind == "CustomResourceDefinition" {
            crds.push(name.clone());
        }
        applied.push(shown);
    }
    for crd in crds {
        wait_established(client, &crd, CRD_PATIENCE).await?;
    }
    Ok(applied)
}

/// The resource of `apiVersion` + `kind`, asked again for a while when the
/// API server does not serve it yet: a CRD applied a moment ago can be
/// Established before its group shows in discovery.
async fn served(client: &Client, api_version: &str, kind: &str) -> Result<Resource, TargetError> {
    let deadline = tokio::time::Instant::now() + CRD_PATIENCE;
    loop {
        match resource_of(client, api_version, kind).await {
            Ok(resource) => return Ok(resource),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
}

/// Waits until the CustomResourceDefinition `name` is Established: before
/// that, the API server does not serve its kind and objects of it are refused.
pub async fn wait_established(
    client: &Client,
    name: &str,
    patience: std::time::Duration,
) -> Result<(), TargetError> {
    let resource = known_resource("CustomResourceDefinition")
        .ok_or_else(|| TargetError::Failed("no CustomResourceDefinition kind".to_owned()))?;
    let api = dynamic_api(client, &resource, "");
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let crd = api
            .get(name)
            .await
            .map_err(|e| failed(&format!("cannot read CustomResourceDefinition {name}"), e))?;
        let established = crd.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        if established {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TargetError::Failed(format!(
                "CustomResourceDefinition {name} is not Established after {}",
                crate::duration::format_duration(patience)
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn to_text<T: serde::Serialize>(value: &Option<T>) -> String {
    value
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}

/// Writes the cluster's events, node conditions and the logs of pods that are
/// not ready into `dir`. Returns what could not be collected.
pub async fn collect_evidence(client: &Client, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let _ = std::fs::create_dir_all(dir);
    let events: Api<Event> = Api::all(client.clone());
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let mut lines = String::new();
            for event in &list.items {
                let object = &event.involved_object;
                lines.push_str(&format!(
                    "{} {} {} {}/{} {}: {}\n",
                    to_text(&event.last_timestamp),
                    event.metadata.namespace.as_deref().unwrap_or("-"),
                    event.type_.as_deref().unwrap_or("-"),
                    object.kind.as_deref().unwrap_or("-"),
                    object.name.as_deref().unwrap_or("-"),
                    event.reason.as_deref().unwrap_or("-"),
                    event.message.as_deref().unwrap_or("").trim(),
                ));
            }
            let _ = std::fs::write(dir.join("events.txt"), lines);
        }
        Err(e) => problems.push(format!("events: {e}")),
    }
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.list(&ListParams::default()).await {
        Ok(list) => {
            let mut lines = String::new();
            for node in &list.items {
                lines.push_str(&format!("{}\n", node.name_any()));
                let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
                for c in conditions.into_iter().flatten() {
                    lines.push_str(&format!(
                        "  {}={} {} {}\n",
                        c.type_,
                        c.status,
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or("")
                    ));
                }
            }
            let _ = std::fs::write(dir.join("nodes.txt"), lines);
        }
        Err(e) => problems.push(format!("nodes: {e}")),
    }
    let pods: Api<Pod> = Api::all(client.clone());
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            let logs_dir = dir.join("pods");
            for pod in list.items.iter().filter(|p| !pod_ready(p)) {
                let namespace = pod.namespace().unwrap_or_default();
                let name = pod.name_any();
                let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                let containers: Vec<String> = pod
                    .spec
                    .as_ref()
                    .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default();
                // A container that restarted: its previous run holds the crash.
                let restarted: Vec<String> = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten()
                    .filter(|c| c.restart_count > 0)
                    .map(|c| c.name.clone())
                    .collect();
                for container in containers {
                    let mut runs = vec![false];
                    if restarted.contains(&container) {
                        runs.push(true);
                    }
                    for previous in runs {
                        let params = LogParams {
                            container: Some(container.clone()),
                            tail_lines: Some(500),
                            previous,
                            ..LogParams::default()
                        };
                        let text = match api.logs(&name, &params).await {
                            Ok(text) => text,
                            Err(e) => format!("(no logs: {e})\n"),
                        };
                        let suffix = if previous { "-previous" } else { "" };
                        let _ = std::fs::create_dir_all(&logs_dir);
                        let _ = std::fs::write(
                            logs_dir.join(format!("{namespace}_{name}_{container}{suffix}.log")),
                            text,
                        );
                    }
                }
            }
        }
        Err(e) => problems.push(format!("pods: {e}")),
    }
    problems
}
