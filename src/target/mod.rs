//! Targets: the system a drill runs against.
//!
//! The engine owns the graph, the clock, probes that are plain commands,
//! HTTP or TCP, `run` faults and their `revert:` shells. A target owns what is
//! specific to it: bringing the system up and down, its built-in variables,
//! its fault kinds (their validation, description, injection and typed undo
//! record), and evidence. Kubernetes targets also offer [`kube::KubeOps`]
//! (`k8s` probes, `apply`, the cluster identity check).
//!
//! - `fault`: a fault as written and as validated, shared by every target.
//! - `local`: processes on this host, signals and file damage.
//! - `kube`: the Kubernetes layer Kubernetes targets share (API faults, probes, apply).
//! - `kind`: a kind cluster, faults on its node containers.
//! - `kwok`: a kwok cluster (a real control plane, simulated nodes).
//! - `cluster`: an existing cluster, pinned by identity; API faults only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::event::Emitter;

pub mod cluster;
mod fault;
pub mod kind;
pub mod kube;
pub mod kwok;
pub mod local;

#[cfg(test)]
pub(crate) use fault::check_fault;
pub use fault::{DeleteFault, Empty, FaultCheck, FaultSpec, RawFault, Revert, with_shell};

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
    /// Of a kwok node or control-plane fault.
    Kwok(kwok::KwokUndo),
}

/// The kind target for a drill, whose API faults may touch `scope`.
/// `resuming`: the cluster exists already because the run created it before
/// its runner died, so it is reused.
pub fn kind_target(
    spec: &kind::KindSpec,
    scenario_dir: &Path,
    scope: kube::scope::Scope,
    resuming: bool,
) -> std::sync::Arc<dyn Target> {
    let mut spec = spec.clone();
    if resuming {
        spec.reuse = true;
    }
    std::sync::Arc::new(kind::KindTarget::new(&spec, scenario_dir).with_scope(scope))
}

/// The kwok target for a drill, whose API faults may touch `scope`.
/// `resuming`: the cluster exists already in the run's directory because
/// the run created it before its runner died, so it is reused (its
/// components started again).
pub fn kwok_target(
    spec: &kwok::KwokSpec,
    scope: kube::scope::Scope,
    resuming: bool,
) -> std::sync::Arc<dyn Target> {
    let mut spec = spec.clone();
    if resuming {
        spec.reuse = true;
    }
    std::sync::Arc::new(kwok::KwokTarget::new(&spec).with_scope(scope))
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

/// What `resume` knows of the system the dead runner left.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Each service's last recorded pid (the leader of its process group).
    pub services: BTreeMap<String, u32>,
    /// Services a fault may have hit, each with why: down, they stay down.
    pub hit: BTreeMap<String, String>,
    /// When each service's leader started (ticks after boot), recorded on
    /// this boot: a live pid with another start time (or one recorded on
    /// another boot, or without one) is somebody else's process.
    pub started: BTreeMap<String, u64>,
}

/// How [`Target::preview`] marks a fault the run would refuse (its reason
/// follows): `--dry-run` then exits as the run would.
pub const REFUSED: &str = "REFUSED: ";

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

    /// On `resume`: takes the system over as the dead runner left it,
    /// instead of setting it up anew (docs/cli.md, `resume`). The default
    /// sets up (a kind target reuses the cluster the run created).
    async fn resume(
        &self,
        ctx: &RunContext,
        found: &Found,
    ) -> Result<BTreeMap<String, String>, TargetError> {
        let _ = found;
        self.setup(ctx).await
    }

    /// How to undo a fault whose injection the runner's death interrupted
    /// (no undo record was written): a `pause` may have stopped its
    /// services, so they are continued at the end.
    fn undo_interrupted(&self, fault: &FaultSpec) -> Option<Undo> {
        let _ = fault;
        None
    }

    /// What a fault would hit, without touching anything (`--dry-run`);
    /// what a run would refuse to touch starts with [`REFUSED`].
    fn preview(&self, fault: &FaultSpec, ctx: &RunContext) -> String;

    /// Injects a fault other than a `run` shell (which the engine runs).
    async fn inject(
        &self,
        step: &str,
        fault: &FaultSpec,
        env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError>;

    /// Whether a service's own process still lives; `None` where the target has
    /// no services. A service is ready only while it does
    /// (docs/drill-format.md, `services`).
    fn service_alive(&self, service: &str) -> Option<bool> {
        let _ = service;
        None
    }

    /// Resolves when a service's own process has exited, with how (`exit
    /// 1`, `killed by SIGKILL`); never where the target cannot watch its
    /// services. The engine waits for readiness on this and the ready probe
    /// at once: a service that dies while starting is seen at once.
    async fn service_exited(&self, service: &str) -> String {
        let _ = service;
        std::future::pending().await
    }

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
