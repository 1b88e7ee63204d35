//! The `cluster` target (docs/drill-format.md, "cluster"): an existing
//! cluster, for staging game days. Nothing about it is created or deleted:
//! no lifecycle, no node faults, the Kubernetes API faults and `run` only.
//!
//! Safety:
//! - firedrill reads the user's kubeconfig once, at setup, and copies the
//!   one context the drill names (with its cluster and user, nothing else)
//!   into `RUN_DIR/kubeconfig`; every command, probe and API call uses the
//!   copy, and the original is never written. `in-cluster` writes that file
//!   from the Pod's service account instead.
//! - The drill pins the cluster: before anything starts, the UID of
//!   `kube-system` must be the drill's `uid` (else exit 3, naming both), and
//!   it is checked again before every destructive fault.
//! - The blast radius is the drill's `scope`; `kube-system` and objects of
//!   no namespace are never in it ([`Scope::shared`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use kube::Client;
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kube::conn::{Connection, kube_vars, run_kubeconfig, write_private};
use super::kube::scope::Scope;
use super::kube::{K8sProbe, KubeFault, KubeOps, api};
use super::local::step_seed;
use super::{FaultCheck, FaultSpec, Injected, ProbeOutcome, RawFault, RunContext, Target};
use super::{TargetError, Undo};
use crate::located::{Located, Problem};
use crate::vars::expand;

/// `kubeconfig: in-cluster`: firedrill runs in a Pod.
pub const IN_CLUSTER: &str = "in-cluster";

/// Where a Pod's service account is mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `target: {cluster: {...}}` (docs/drill-format.md, "cluster").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ClusterTarget")]
pub struct ClusterSpec {
    /// A kubeconfig file (`~` is the home directory), or `in-cluster` when
    /// firedrill runs as a Pod.
    pub kubeconfig: Located<String>,
    /// The context to use; required unless `in-cluster`.
    pub context: Option<Located<String>>,
    /// The UID of the cluster's `kube-system` namespace
    /// (`firedrill cluster-id` prints it).
    pub uid: Located<String>,
}

/// The variables the cluster target sets.
pub const VAR_NAMES: &[&str] = &["KUBECONFIG", "KUBECACHEDIR"];

/// The faults of another target that the cluster target refuses, and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "delete_cluster",
        "the cluster target never creates or deletes the cluster",
    ),
    (
        "control_plane_down",
        "the cluster target does not reach into the control plane's machines",
    ),
    ("stop_node", "node-container faults are for kind"),
    ("kill_node", "node-container faults are for kind"),
    ("pause_node", "node-container faults are for kind"),
    ("partition_node", "node-container faults are for kind"),
    ("stop_kubelet", "node-container faults are for kind"),
];

/// Validates the one fault kind `kind` of `raw` for the cluster target: the
/// Kubernetes API's faults only.
pub fn parse_fault(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<FaultSpec> {
    if let Some(fault) = KubeFault::parse(kind, raw, check) {
        return fault.map(FaultSpec::Kube);
    }
    let why = REFUSED
        .iter()
        .find(|(refused, _)| *refused == kind)
        .map_or("it is a local target fault", |(_, why)| *why);
    check.unsupported(
        kind,
        "cluster",
        &format!("{why} (no lifecycle: API faults and `run` only)"),
        super::kube::FAULT_KINDS,
    );
    None
}

/// Checks a cluster target as written.
pub fn check_spec(spec: &ClusterSpec, problems: &mut Vec<Problem>) {
    let in_cluster = spec.kubeconfig.value == IN_CLUSTER;
    match &spec.context {
        None if !in_cluster => problems.push(
            Problem::at(spec.kubeconfig.loc, "the cluster target needs `context`")
                .help("name the context of the kubeconfig to use, e.g. `context: staging-eu`; `kubectl config get-contexts` lists them"),
        ),
        Some(context) if in_cluster => problems.push(
            Problem::at(context.loc, "`context` does not apply to `kubeconfig: in-cluster`")
                .help("in a Pod, firedrill uses its service account; remove `context`"),
        ),
        Some(context) if context.value.trim().is_empty() => {
            problems.push(Problem::at(context.loc, "`context` is empty"));
        }
        _ => {}
    }
    if spec.kubeconfig.value.trim().is_empty() {
        problems.push(
            Problem::at(spec.kubeconfig.loc, "`kubeconfig` is empty")
                .help("a kubeconfig file such as `~/.kube/staging.yaml`, or `in-cluster`"),
        );
    }
    let uid = spec.uid.value.trim();
    if uid.is_empty()
        || uid.contains("...")
        || !uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        problems.push(
            Problem::at(spec.uid.loc, format!("`uid: {}` is not a namespace UID", spec.uid.value))
                .help("the UID of the cluster's kube-system namespace, as `firedrill cluster-id --kubeconfig F --context C` prints it"),
        );
    }
}

/// `~` and `~/...` as the home directory.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(""), Some(home)) => PathBuf::from(home),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

/// The kubeconfig of `path` reduced to `context`, its cluster and its user,
/// with `context` current. File references were made absolute when read.
pub fn one_context(path: &Path, context: &str) -> Result<Kubeconfig, TargetError> {
    let unavailable = |why: String| TargetError::Unavailable(why);
    let full = Kubeconfig::read_from(path)
        .map_err(|e| unavailable(format!("cannot read kubeconfig {}: {e}", path.display())))?;
    let Some(named) = full.contexts.iter().find(|c| c.name == context) else {
        return Err(unavailable(format!(
            "kubeconfig {} has no context `{context}` (contexts: {})",
            path.display(),
            full.contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let Some(ctx) = &named.context else {
        return Err(unavailable(format!(
            "context `{context}` of {} is empty",
            path.display()
        )));
    };
    let cluster = full
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .cloned()
        .ok_or_else(|| {
            unavailable(format!(
                "context `{context}` of {} names cluster `{}`, which it does not define",
                path.display(),
                ctx.cluster
            ))
        })?;
    let user = match &ctx.user {
        Some(user) => Some(
            full.auth_infos
                .iter()
                .find(|u| &u.name == user)
                .cloned()
                .ok_or_else(|| {
                    unavailable(format!(
                        "context `{context}` of {} names user `{user}`, which it does not define",
                        path.display()
                    ))
                })?,
        ),
        None => None,
    };
    Ok(Kubeconfig {
        clusters: vec![cluster],
        auth_infos: user.into_iter().collect(),
        contexts: vec![named.clone()],
        current_context: Some(context.to_owned()),
        kind: Some("Config".to_owned()),
        api_version: Some("v1".to_owned()),
        ..Kubeconfig::default()
    })
}

/// A kubeconfig for the API server a Pod reaches through its service
/// account (`dir` holds `token` and `ca.crt`). The token is read from its
/// file on every use: the kubelet rotates it.
pub fn in_cluster_kubeconfig(dir: &Path, host: &str, port: &str) -> Kubeconfig {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let name = IN_CLUSTER.to_owned();
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(format!("https://{host}:{port}")),
                certificate_authority: Some(dir.join("ca.crt").display().to_string()),
                ..Cluster::default()
            }),
            other: BTreeMap::new(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(AuthInfo {
                token_file: Some(dir.join("token").display().to_string()),
                ..AuthInfo::default()
            }),
            other: BTreeMap::new(),
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                ..Context::default()
            }),
            other: BTreeMap::new(),
        }],
        current_context: Some(name),
        kind: Some("Config".to_owned()),
        api_version: Some("v1".to_owned()),
        ..Kubeconfig::default()
    }
}

/// The kubeconfig a cluster target uses: one context of a file, or the
/// Pod's service account.
pub fn source_kubeconfig(
    kubeconfig: &str,
    context: Option<&str>,
) -> Result<Kubeconfig, TargetError> {
    if kubeconfig == IN_CLUSTER {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        if host.is_empty() || port.is_empty() || !dir.join("token").is_file() {
            return Err(TargetError::Unavailable(format!(
                "`kubeconfig: in-cluster` needs to run in a Pod: KUBERNETES_SERVICE_HOST/PORT set and a service account token in {SERVICE_ACCOUNT_DIR}"
            )));
        }
        return Ok(in_cluster_kubeconfig(dir, &host, &port));
    }
    one_context(&expand_home(kubeconfig), context.unwrap_or_default())
}

/// The UID of `kube-system` in the cluster of `config` (from
/// [`source_kubeconfig`] of `written`; `firedrill cluster-id`). Writes nothing.
pub async fn cluster_id(config: Kubeconfig, written: &str) -> Result<String, TargetError> {
    let path = Path::new(written);
    let client =
        super::kube::conn::client_from(config, &KubeConfigOptions::default(), path).await?;
    api::kube_system_uid(&client).await
}

/// An existing cluster.
pub struct ClusterTarget {
    spec: ClusterSpec,
    conn: Connection,
    scope: Scope,
}

impl ClusterTarget {
    /// The target a drill's `target: {cluster: ...}` describes; API faults
    /// may touch `scope` (kube-system and cluster-wide objects never).
    pub fn new(spec: &ClusterSpec, scope: Scope) -> ClusterTarget {
        ClusterTarget {
            spec: spec.clone(),
            conn: Connection::new(format!("the cluster the drill pins ({})", describe(spec))),
            scope: Scope {
                shared: true,
                ..scope
            },
        }
    }

    /// Uses `client` instead of one built from the kubeconfig (tests).
    pub fn with_client(mut self, client: Client) -> ClusterTarget {
        self.conn = self.conn.with_client(client);
        self
    }

    async fn client(&self, ctx: &RunContext) -> Result<Client, TargetError> {
        self.conn.client(&run_kubeconfig(&ctx.run_dir)).await
    }
}

fn describe(spec: &ClusterSpec) -> String {
    match &spec.context {
        Some(context) => format!("context {} of {}", context.value, spec.kubeconfig.value),
        None => spec.kubeconfig.value.clone(),
    }
}

#[async_trait]
impl Target for ClusterTarget {
    fn describe(&self) -> String {
        format!(
            "cluster:{}",
            self.spec
                .context
                .as_ref()
                .map_or(IN_CLUSTER, |c| c.value.as_str())
        )
    }

    fn vars(&self, run_dir: &Path) -> BTreeMap<String, String> {
        kube_vars(run_dir)
    }

    fn kube(&self) -> Option<&dyn KubeOps> {
        Some(self)
    }

    async fn setup(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
        let source = source_kubeconfig(
            &self.spec.kubeconfig.value,
            self.spec.context.as_ref().map(|c| c.value.as_str()),
        )?;
        std::fs::create_dir_all(&ctx.run_dir).map_err(|e| {
            TargetError::Unavailable(format!("cannot create {}: {e}", ctx.run_dir.display()))
        })?;
        let copy = run_kubeconfig(&ctx.run_dir);
        let text = serde_json::to_string_pretty(&source)
            .map_err(|e| TargetError::Failed(format!("cannot write the run's kubeconfig: {e}")))?;
        write_private(&copy, &text)?;
        let client = self.client(ctx).await?;
        let uid = api::kube_system_uid(&client).await.map_err(|e| {
            TargetError::Unavailable(format!(
                "cannot reach the API server of {}: {e}",
                describe(&self.spec)
            ))
        })?;
        let pinned = self.spec.uid.value.trim();
        if uid != pinned {
            return Err(TargetError::Refused(format!(
                "the API server of {} is not the cluster the drill pins: its kube-system UID is {uid}, the drill's `uid` is {pinned}; nothing was started",
                describe(&self.spec)
            )));
        }
        self.conn.pin(uid);
        Ok(self.vars(&ctx.run_dir))
    }

    fn preview(&self, fault: &FaultSpec, ctx: &RunContext) -> String {
        match fault {
            FaultSpec::Kube(fault) => format!(
                "{} ({}; its kube-system UID must be {})",
                fault.preview(&ctx.env, ""),
                describe(&self.spec),
                self.spec.uid.value
            ),
            other => format!("{} is not a fault of the cluster target", other.kind()),
        }
    }

    async fn inject(
        &self,
        step: &str,
        fault: &FaultSpec,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let FaultSpec::Kube(fault) = fault else {
            return Err(TargetError::Failed(format!(
                "fault kind `{}` is not supported by the cluster target",
                fault.kind()
            )));
        };
        let kubeconfig = run_kubeconfig(&ctx.run_dir);
        self.conn
            .confirm(&format!("inject {}", fault.kind()), &kubeconfig)
            .await?;
        let client = self.client(ctx).await?;
        self.scope.check(&client, fault, env).await?;
        let nodes = match fault.node_selector().and_then(|s| s.node.as_ref()) {
            Some(node) => vec![expand(node, env)],
            None => Vec::new(),
        };
        fault
            .inject(&client, nodes, env, step_seed(ctx.seed, step))
            .await
    }

    async fn revert(&self, undo: &Undo, ctx: &RunContext) -> Result<String, TargetError> {
        match undo {
            Undo::Kube(undo) => undo.revert(&self.client(ctx).await?).await,
            Undo::Local(_) | Undo::Kind(_) | Undo::Kwok(_) => Err(TargetError::Failed(
                "the cluster target undoes only API faults".to_owned(),
            )),
        }
    }

    async fn collect_evidence(&self, dir: &Path, ctx: &RunContext) {
        let _ = std::fs::create_dir_all(dir);
        let problems = match self.client(ctx).await {
            Ok(client) => api::collect_evidence(&client, dir).await,
            Err(e) => vec![e.to_string()],
        };
        if !problems.is_empty() {
            let _ = std::fs::write(dir.join("cluster-problems.txt"), problems.join("\n") + "\n");
        }
    }

    /// The cluster is not the run's: nothing to bring down.
    async fn teardown(&self, _ctx: &RunContext, _keep: bool) {}
}

#[async_trait]
impl KubeOps for ClusterTarget {
    async fn confirm_cluster(&self, what: &str, ctx: &RunContext) -> Result<(), TargetError> {
        self.conn.confirm(what, &run_kubeconfig(&ctx.run_dir)).await
    }

    async fn probe(&self, probe: &K8sProbe, ctx: &RunContext) -> ProbeOutcome {
        match self.client(ctx).await {
            Ok(client) => api::probe(&client, probe, &ctx.env).await,
            Err(e) => ProbeOutcome::fail(e.to_string()),
        }
    }

    async fn apply(&self, manifests: &[PathBuf], ctx: &RunContext) -> Result<String, TargetError> {
        let mut docs = Vec::new();
        for manifest in manifests {
            let written = expand(&manifest.to_string_lossy(), &ctx.env);
            docs.extend(api::read_manifests(&ctx.scenario_dir.join(written))?);
        }
        self.conn
            .confirm("apply manifests", &run_kubeconfig(&ctx.run_dir))
            .await?;
        let client = self.client(ctx).await?;
        let applied = api::apply(&client, docs).await?;
        Ok(format!(
            "applied {} object(s): {}",
            applied.len(),
            applied.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests;
