//! Targets: the system a drill runs against.
//!
//! The engine owns the graph, the clock, probes that are plain commands,
//! HTTP or TCP, `run` faults and their `revert:` shells. A target owns what is
//! specific to it: bringing the system up and down, its built-in variables,
//! its fault kinds (their validation, description, injection and typed undo
//! record), and evidence. Kubernetes targets also offer [`kube::KubeOps`]
//! (`k8s` probes, `apply`, the cluster identity check).
//!
//! - `local`: processes on this host, signals and file damage.
//! - `kube`: the Kubernetes layer Kubernetes targets share (API faults, probes, apply).
//! - `kind`: a kind cluster, faults on its node containers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};

use schemars::JsonSchema;

use crate::event::Emitter;
use crate::located::{Loc, OneOrMany, Problem};
use kube::{NodeSelector, PodKillFault};
use local::{CorruptFault, KillFault, PauseFault};

pub mod kind;
pub mod kube;
pub mod local;

/// What a target's fault validation needs and where its problems go.
pub struct FaultCheck<'a> {
    /// The step's id, for messages.
    pub step: &'a str,
    /// Where the fault is written.
    pub loc: Loc,
    /// Every service the drill defines (parsed or not).
    pub known_services: &'a [String],
    /// The drill's problems.
    pub problems: &'a mut Vec<Problem>,
    /// The help for a name that is not defined: `(wrong, defined, what,
    /// section)`, e.g. a did-you-mean. Given by the drill's validation, so
    /// that every reference in a drill is helped the same way.
    pub name_help: fn(&str, &[String], &str, &str) -> String,
    /// The help for a value that is not one of a fixed few: `(wrong,
    /// allowed, what)`.
    pub value_help: fn(&str, &[&str], &str) -> String,
}

impl FaultCheck<'_> {
    /// A problem.
    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// A problem at the fault.
    pub fn problem(&mut self, message: String) {
        self.problems.push(Problem::at(self.loc, message));
    }

    /// The fault `kind` is not one of `target`'s.
    pub fn unsupported(&mut self, kind: &str, target: &str, other: &str, own: &[&str]) {
        self.push(
            Problem::at(
                self.loc,
                format!("fault `{kind}` is not supported by the {target} target"),
            )
            .help(format!(
                "{other}; {target} target faults: {}",
                with_shell(own).join(", ")
            )),
        );
    }
}

/// A target's own fault kinds, then `run`, which every target has.
pub fn with_shell<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(["run"]).collect()
}

/// `revert: auto | never | <shell>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Revert {
    /// Undo at the end if the kind is reversible and recovery did not already.
    #[default]
    Auto,
    /// Never undo.
    Never,
    /// Run this shell to undo.
    Shell(String),
}

impl Serialize for Revert {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Revert::Auto => serializer.serialize_str("auto"),
            Revert::Never => serializer.serialize_str("never"),
            Revert::Shell(shell) => serializer.serialize_str(shell),
        }
    }
}

impl JsonSchema for Revert {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Revert".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`auto` (undo at the end if the kind is reversible), `never`, or a shell command that undoes the fault",
            "anyOf": [
                {"const": "auto"},
                {"const": "never"},
                {"type": "string"}
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Revert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "auto" => Revert::Auto,
            "never" => Revert::Never,
            // `Never` would otherwise run as a command named `Never`.
            other if other.eq_ignore_ascii_case("auto") || other.eq_ignore_ascii_case("never") => {
                return Err(de::Error::custom(format!(
                    "`{other}`: write `{}` in lower case (anything else is run as the revert shell command)",
                    other.to_ascii_lowercase()
                )));
            }
            _ => Revert::Shell(text),
        })
    }
}

/// A fault of one kind. Each target module owns its faults: their fields,
/// validation, description, injection and undo.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultSpec {
    /// A fault of the local target (processes and files on this host).
    Local(local::LocalFault),
    /// A fault through the Kubernetes API, on any Kubernetes target.
    Kube(kube::KubeFault),
    /// A fault of the kind target's nodes and cluster.
    Kind(kind::KindFault),
    /// `run`: any shell, with `revert:` as its undo; run by the engine on every target.
    Shell(String),
}

impl FaultSpec {
    /// The fault's key as written (`kill`, `pod_kill`, `run`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Local(fault) => fault.kind(),
            FaultSpec::Kube(fault) => fault.kind(),
            FaultSpec::Kind(fault) => fault.kind(),
            FaultSpec::Shell(_) => "run",
        }
    }

    /// What it hits, in a few words, for `plan` (empty if nothing to add).
    pub fn describe(&self) -> String {
        match self {
            FaultSpec::Local(fault) => fault.describe(),
            FaultSpec::Kube(fault) => fault.describe(),
            FaultSpec::Kind(fault) => fault.describe(),
            FaultSpec::Shell(script) => crate::text::short_line(script),
        }
    }
}

// As written: every kind is optional here; validation checks that there is
// exactly one and that the target supports it, and turns it into a `Fault`.
// (The doc comment is the schema's description.)
/// `fault: {<kind>: {...}, revert: ...}` (SPEC §4). Exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Fault")]
pub struct RawFault {
    /// How to undo it.
    #[serde(default)]
    pub revert: Revert,
    /// Local: send a signal to services.
    pub kill: Option<KillFault>,
    /// Local: SIGSTOP services, SIGCONT on revert.
    pub pause: Option<PauseFault>,
    /// Local: delete paths. Kind: delete Kubernetes objects.
    pub delete: Option<DeleteFault>,
    /// Local: overwrite bytes of a file at random offsets.
    pub corrupt: Option<CorruptFault>,
    /// Any shell, with `revert:` as its undo.
    pub run: Option<String>,
    /// Kind: delete the whole cluster.
    pub delete_cluster: Option<Empty>,
    /// Kind: stop node containers (revert: start).
    pub stop_node: Option<NodeSelector>,
    /// Kind: kill node containers.
    pub kill_node: Option<NodeSelector>,
    /// Kind: pause node containers (revert: unpause).
    pub pause_node: Option<NodeSelector>,
    /// Kind: disconnect nodes from the `kind` network (revert: reconnect).
    pub partition_node: Option<NodeSelector>,
    /// Kind: stop the kubelet on nodes (revert: start it).
    pub stop_kubelet: Option<NodeSelector>,
    /// Kind: delete pods by selector.
    pub pod_kill: Option<PodKillFault>,
    /// Kind: cordon and drain nodes (revert: uncordon).
    pub drain_node: Option<NodeSelector>,
    /// Kind: move the kube-apiserver static pod manifest away (revert: move it back).
    pub control_plane_down: Option<Empty>,
}

impl RawFault {
    /// The kinds present (validation requires exactly one), in the order of
    /// the fields.
    pub fn kinds(&self) -> Vec<&'static str> {
        let present = [
            ("kill", self.kill.is_some()),
            ("pause", self.pause.is_some()),
            ("delete", self.delete.is_some()),
            ("corrupt", self.corrupt.is_some()),
            ("run", self.run.is_some()),
            ("delete_cluster", self.delete_cluster.is_some()),
            ("stop_node", self.stop_node.is_some()),
            ("kill_node", self.kill_node.is_some()),
            ("pause_node", self.pause_node.is_some()),
            ("partition_node", self.partition_node.is_some()),
            ("stop_kubelet", self.stop_kubelet.is_some()),
            ("pod_kill", self.pod_kill.is_some()),
            ("drain_node", self.drain_node.is_some()),
            ("control_plane_down", self.control_plane_down.is_some()),
        ];
        present
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(kind, _)| kind)
            .collect()
    }
}

/// A key that takes no fields: `delete_cluster: {}` or `delete_cluster:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `delete:` — local `{path}`, kind `{kind, namespace, name | selector}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteFault {
    /// Local: path or paths (files or directories).
    pub path: Option<OneOrMany>,
    /// Kind: object kind (`Namespace`, `Deployment`, `ConfigMap`, ...).
    pub kind: Option<String>,
    /// Kind: namespace.
    pub namespace: Option<String>,
    /// Kind: object name.
    pub name: Option<String>,
    /// Kind: label selector.
    pub selector: Option<String>,
}

/// Validates `raw`'s one fault kind with `parse` (a target module's
/// `parse_fault`) in a drill that defines the services `web` and `db`: the
/// fault, or each problem as `message | help`.
#[cfg(test)]
pub(crate) fn check_fault(
    parse: fn(&str, &RawFault, &mut FaultCheck) -> Option<FaultSpec>,
    raw: &RawFault,
) -> Result<FaultSpec, Vec<String>> {
    let mut problems = Vec::new();
    let kinds = raw.kinds();
    let mut check = FaultCheck {
        step: "hit",
        loc: Loc::default(),
        known_services: &["web".to_owned(), "db".to_owned()],
        problems: &mut problems,
        name_help: |wrong, known, what, _| format!("no {what} `{wrong}` among {known:?}"),
        value_help: |wrong, allowed, what| format!("no {what} `{wrong}` among {allowed:?}"),
    };
    let fault = parse(kinds[0], raw, &mut check);
    let shown = problems
        .iter()
        .map(|problem| match &problem.help {
            Some(help) => format!("{} | {help}", problem.message),
            None => problem.message.clone(),
        })
        .collect();
    fault.ok_or(shown)
}

/// A target's record of how to undo a fault it injected. `events.jsonl`
/// records it, so that `resume` can undo a fault of a runner that died.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    /// Of a local fault.
    Local(local::LocalUndo),
    /// Of a fault through the Kubernetes API.
    Kube(kube::KubeUndo),
    /// Of a kind node or cluster fault.
    Kind(kind::KindUndo),
}

/// The kind target for a drill. `resuming`: the cluster exists already
/// because the run created it before its runner died, so it is reused.
pub fn kind_target(
    spec: &kind::KindSpec,
    scenario_dir: &Path,
    resuming: bool,
) -> std::sync::Arc<dyn Target> {
    let mut spec = spec.clone();
    if resuming {
        spec.reuse = true;
    }
    std::sync::Arc::new(kind::KindTarget::new(&spec, scenario_dir))
}

/// A target that cannot run anything (exit 4 with its reason).
pub struct Unsupported(pub String);

#[async_trait]
impl Target for Unsupported {
    fn describe(&self) -> String {
        "unsupported".to_owned()
    }
    async fn setup(&self, _ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
        Err(TargetError::Unavailable(self.0.clone()))
    }
    fn preview(&self, _fault: &FaultSpec, _ctx: &RunContext) -> String {
        self.0.clone()
    }
    async fn inject(
        &self,
        _step: &str,
        _fault: &FaultSpec,
        _env: &BTreeMap<String, String>,
        _ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        Err(TargetError::Unavailable(self.0.clone()))
    }
    async fn revert(&self, _undo: &Undo, _ctx: &RunContext) -> Result<String, TargetError> {
        Err(TargetError::Unavailable(self.0.clone()))
    }
    async fn collect_evidence(&self, _dir: &Path, _ctx: &RunContext) {}
    async fn teardown(&self, _ctx: &RunContext, _keep: bool) {}
}

/// What every target gets from the run.
#[derive(Clone)]
pub struct RunContext {
    /// The run's id (also the `FIREDRILL_RUN_ID` marker of its processes).
    pub run_id: String,
    /// Where the run's records go.
    pub run_dir: PathBuf,
    /// The per-run work directory.
    pub workdir: PathBuf,
    /// Directory of the drill file; relative paths resolve against it.
    pub scenario_dir: PathBuf,
    /// The environment every command of the run gets (process env excluded):
    /// built-ins, `vars`, `--var`.
    pub env: BTreeMap<String, String>,
    /// Seed of random choices.
    pub seed: u64,
    /// The run's event stream.
    pub emitter: Emitter,
}

/// Why a target could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A tool or permission is missing: the run ends with exit 4.
    #[error("{0}")]
    Unavailable(String),
    /// A safety check refused a destructive action (wrong cluster, path outside
    /// the drill's own): the run aborts (exit 3).
    #[error("{0}")]
    Refused(String),
    /// The action was tried and failed.
    #[error("{0}")]
    Failed(String),
}

/// A fault that was injected, with what it needs to be undone.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// What it hit (service names, paths, nodes, pods).
    pub targets: Vec<String>,
    /// Extra facts for the journal (signal, seed, offsets).
    pub detail: String,
    /// The target's own record of how to undo it; `None` if it cannot be undone.
    pub undo: Option<Undo>,
}

/// The result of one attempt of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// It passed.
    pub ok: bool,
    /// Why not (or what it saw).
    pub detail: String,
}

impl ProbeOutcome {
    /// A pass.
    pub fn pass(detail: impl Into<String>) -> ProbeOutcome {
        ProbeOutcome {
            ok: true,
            detail: detail.into(),
        }
    }
    /// A failure.
    pub fn fail(detail: impl Into<String>) -> ProbeOutcome {
        ProbeOutcome {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// A system under test.
#[async_trait]
pub trait Target: Send + Sync {
    /// `local` or `kind:<cluster>`, for the journal.
    fn describe(&self) -> String;

    /// The variables the target adds to every command's environment, known
    /// before setup (kind: `CLUSTER`, `KUBECONFIG`, `KUBECACHEDIR`); names
    /// in `drill::Target::var_names`.
    fn vars(&self, run_dir: &Path) -> BTreeMap<String, String> {
        let _ = run_dir;
        BTreeMap::new()
    }

    /// Brings the system up before the first step. Returns variables it
    /// learnt on the way, added to every command's environment.
    async fn setup(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError>;

    /// What a fault would hit, without touching anything (`--dry-run`).
    fn preview(&self, fault: &FaultSpec, ctx: &RunContext) -> String;

    /// Injects a fault other than a `run` shell (which the engine runs).
    async fn inject(
        &self,
        step: &str,
        fault: &FaultSpec,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError>;

    /// Undoes a fault with the record [`Target::inject`] returned.
    async fn revert(&self, undo: &Undo, ctx: &RunContext) -> Result<String, TargetError>;

    /// What a Kubernetes target offers beyond this trait; `None` elsewhere.
    fn kube(&self) -> Option<&dyn kube::KubeOps> {
        None
    }

    /// Copies what explains a failure into `dir` (service logs; cluster events,
    /// node conditions, logs of pods that are not ready).
    async fn collect_evidence(&self, dir: &Path, ctx: &RunContext);

    /// Brings the system down at the end of the run (success, error, abort or
    /// Ctrl-C). Must not fail: problems are logged.
    async fn teardown(&self, ctx: &RunContext, keep: bool);
}
