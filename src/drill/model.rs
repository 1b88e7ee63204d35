//! The drill file format, version 1 (docs/drill-format.md).
//!
//! These types are both what drills deserialize into and what `firedrill
//! schema` describes, so editors autocomplete exactly what the loader accepts.
//! Choices between alternatives (one action per step, one kind per fault or
//! probe) are optional fields checked by validation rather than untagged
//! enums, so a mistake is reported at its own line and not as "did not match
//! any variant".
//!
//! Validation then turns each [`RawStep`] into a [`Step`] with one typed
//! [`Action`], and each fault into a [`FaultSpec`] of the target that
//! injects it. The parts of the format that belong to a target (a fault's
//! fields, the kind target's settings, `k8s` probes) are defined in its
//! module under `target/` and re-exported here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::yaml::Located;
pub use crate::duration::Dur;
pub use crate::located::OneOrMany;
// The parts of the format that belong to a target live with it.
pub use crate::target::cluster::ClusterSpec as ClusterTarget;
pub use crate::target::kind::KindSpec as KindTarget;
pub use crate::target::kube::scope::ScopeSpec;
pub use crate::target::kube::{K8sProbe, NodeSelector, PodKillFault};
pub use crate::target::kwok::KwokSpec as KwokTarget;
pub use crate::target::local::{CorruptFault, KillFault, PauseFault};
pub use crate::target::{DeleteFault, Empty, FaultSpec, RawFault, Revert};

/// The system under test: processes on this host, a kind cluster, a kwok
/// cluster, or an existing cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Processes on this host (the default).
    #[default]
    Local,
    /// A kind cluster.
    Kind(KindTarget),
    /// A kwok cluster: a real control plane, simulated nodes.
    Kwok(KwokTarget),
    /// An existing cluster, pinned by its identity.
    Cluster(ClusterTarget),
}

impl Target {
    /// `local`, `kind`, `kwok` or `cluster`.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Kind(_) => "kind",
            Target::Kwok(_) => "kwok",
            Target::Cluster(_) => "cluster",
        }
    }

    /// Whether it is a Kubernetes cluster (`k8s` probes, `apply`, API faults, `scope`).
    pub fn is_kube(&self) -> bool {
        match self {
            Target::Local => false,
            Target::Kind(_) | Target::Kwok(_) | Target::Cluster(_) => true,
        }
    }

    /// The fault kinds it supports (its own, then `run`), for messages.
    pub fn fault_kinds(&self) -> Vec<&'static str> {
        let own = match self {
            Target::Local => crate::target::local::FAULT_KINDS.to_vec(),
            Target::Kind(_) => crate::target::kind::fault_kinds(),
            Target::Kwok(_) => crate::target::kwok::fault_kinds(),
            Target::Cluster(_) => crate::target::kube::FAULT_KINDS.to_vec(),
        };
        crate::target::with_shell(&own)
    }

    /// Validates the one fault kind `kind` of `raw` with the target's module:
    /// whether the target supports it, and what its fields say. `run`, which
    /// every target supports, is not the target's.
    pub(crate) fn parse_fault(
        &self,
        kind: &str,
        raw: &RawFault,
        check: &mut crate::target::FaultCheck,
    ) -> Option<FaultSpec> {
        match self {
            Target::Local => crate::target::local::parse_fault(kind, raw, check),
            Target::Kind(_) => crate::target::kind::parse_fault(kind, raw, check),
            Target::Kwok(_) => crate::target::kwok::parse_fault(kind, raw, check),
            Target::Cluster(_) => crate::target::cluster::parse_fault(kind, raw, check),
        }
    }

    /// The names of the variables it sets, known before the run.
    pub fn var_names(&self) -> &'static [&'static str] {
        match self {
            Target::Local => &[],
            Target::Kind(_) => crate::target::kind::VAR_NAMES,
            Target::Kwok(_) => crate::target::kwok::VAR_NAMES,
            Target::Cluster(_) => crate::target::cluster::VAR_NAMES,
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case", deny_unknown_fields)]
        enum Tagged {
            Local,
            Kind(KindTarget),
            Kwok(KwokTarget),
            Cluster(ClusterTarget),
        }
        Ok(match Tagged::deserialize(deserializer)? {
            Tagged::Local => Target::Local,
            Tagged::Kind(kind) => Target::Kind(kind),
            Tagged::Kwok(kwok) => Target::Kwok(kwok),
            Tagged::Cluster(cluster) => Target::Cluster(cluster),
        })
    }
}

impl JsonSchema for Target {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Target".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let kind = generator.subschema_for::<KindTarget>();
        let kwok = generator.subschema_for::<KwokTarget>();
        let cluster = generator.subschema_for::<ClusterTarget>();
        schemars::json_schema!({
            "description": "`local` (processes on this host, the default), `{kind: {...}}`, `{kwok: {...}}` or `{cluster: {...}}`",
            "anyOf": [
                {"const": "local"},
                {"type": "object", "properties": {"kind": kind}, "required": ["kind"], "additionalProperties": false},
                {"type": "object", "properties": {"kwok": kwok}, "required": ["kwok"], "additionalProperties": false},
                {"type": "object", "properties": {"cluster": cluster}, "required": ["cluster"], "additionalProperties": false}
            ]
        })
    }
}

/// `objectives:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// Recovery time objective.
    pub rto: Dur,
    /// Recovery point objective; needs `data:`.
    pub rpo: Option<Located<Dur>>,
    /// The run exits 1 below this score (default 70).
    pub min_score: Option<u32>,
    /// Whether the faults must cause an observable outage (default true):
    /// a run in which no steady-state probe failed after the first fault is
    /// `failed` ("no outage observed") unless this is `false`, for a
    /// resilience check where holding is the point.
    pub expect_outage: Option<bool>,
    /// How long the recovery check after the last step may wait for every
    /// steady-state probe to hold (default: 10s, or longer for slow probes,
    /// see [`Drill::settle`]).
    pub settle: Option<Dur>,
}

/// A service of the local target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The shell command that runs it in the foreground.
    pub run: String,
    /// A probe name, or an inline probe, awaited after start.
    pub ready: Option<ProbeRef>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the drill file.
    pub cwd: Option<String>,
    /// How long `ready` may take (default 60s).
    pub ready_timeout: Option<Dur>,
}

/// A probe named or written inline.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ProbeRef {
    /// The name of a probe under `probes:`.
    Name(Located<String>),
    /// A probe written in place.
    Inline(Box<Probe>),
}

impl<'de> Deserialize<'de> for ProbeRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read through `Located` so that a probe name keeps its location.
        let located = Located::<ProbeRefRaw>::deserialize(deserializer)?;
        Ok(match located.value.0 {
            ProbeRef::Name(name) => ProbeRef::Name(Located {
                value: name.value,
                loc: located.loc,
            }),
            inline => inline,
        })
    }
}

struct ProbeRefRaw(ProbeRef);

impl<'de> Deserialize<'de> for ProbeRefRaw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = ProbeRefRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a probe name or an inline probe")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<ProbeRefRaw, E> {
                Ok(ProbeRefRaw(ProbeRef::Name(Located::new(value.to_owned()))))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ProbeRefRaw, A::Error> {
                Probe::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|probe| ProbeRefRaw(ProbeRef::Inline(Box::new(probe))))
            }
        }
        deserializer.deserialize_any(RefVisitor)
    }
}

/// A named check. Exactly one of `command`, `http`, `tcp`, `k8s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// A shell command; see `expect`.
    pub command: Option<String>,
    /// What the command must do (default: exit 0).
    pub expect: Option<Expect>,
    /// An HTTP GET.
    pub http: Option<HttpProbe>,
    /// A TCP connect.
    pub tcp: Option<TcpProbe>,
    /// A Kubernetes object condition (kind target).
    pub k8s: Option<K8sProbe>,
    /// How often it is polled while monitored (default 1s).
    pub interval: Option<Dur>,
    /// Per attempt (default 10s).
    pub timeout: Option<Dur>,
    /// Consecutive passes that count as holding (default 1).
    pub success_threshold: Option<u32>,
}

impl Probe {
    /// Poll interval.
    pub fn interval(&self) -> Duration {
        self.interval.map_or(Duration::from_secs(1), |d| d.0)
    }
    /// Per-attempt timeout.
    pub fn attempt_timeout(&self) -> Duration {
        self.timeout.map_or(Duration::from_secs(10), |d| d.0)
    }
    /// Consecutive passes needed.
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold.unwrap_or(1).max(1)
    }
    /// The keys naming the probe's kind that are present.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if self.command.is_some() {
            kinds.push("command");
        }
        if self.http.is_some() {
            kinds.push("http");
        }
        if self.tcp.is_some() {
            kinds.push("tcp");
        }
        if self.k8s.is_some() {
            kinds.push("k8s");
        }
        kinds
    }
}

/// What a command probe's result must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exit code (default 0).
    pub exit: Option<i32>,
    /// Standard output contains this text.
    pub stdout_contains: Option<String>,
    /// Standard output matches this regular expression.
    pub stdout_matches: Option<Located<String>>,
}

/// `http: {url, status, body_contains}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// The URL to GET.
    pub url: String,
    /// Expected status (default: any 2xx).
    pub status: Option<u16>,
    /// The body contains this text.
    pub body_contains: Option<String>,
}

/// `tcp: {address}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    /// `host:port`.
    pub address: String,
}

/// `data:` — the heartbeat writer for RPO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Writes a heartbeat (a millisecond timestamp).
    pub write: String,
    /// Prints the last heartbeat that survived, in epoch milliseconds.
    pub read: String,
    /// How often `write` runs (default 1s).
    pub every: Option<Dur>,
}

// As written: every action key is optional here, and validation turns the
// one that is given into `Step::action`. Kept apart from `Step` so that a
// mistake is reported at its own line rather than as "did not match any
// variant". (The doc comment is the schema's description.)
/// One node of the graph. Exactly one action key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Step")]
pub struct RawStep {
    /// Unique id, `[a-z0-9-]+`.
    pub id: Located<String>,
    /// Steps that must be done first.
    #[serde(default)]
    pub needs: Vec<Located<String>>,
    /// What the step is for.
    pub description: Option<String>,
    /// Default 5m; on expiry the step's process group is killed.
    pub timeout: Option<Dur>,
    /// Default 0.
    pub retries: Option<u32>,
    /// Default 1s.
    pub retry_delay: Option<Dur>,
    /// A shell command.
    pub run: Option<String>,
    /// A fault injection.
    pub fault: Option<Located<RawFault>>,
    /// The recovery under test.
    pub recover: Option<Located<Recover>>,
    /// Wait until these probes pass.
    pub probe: Option<OneOrMany>,
    /// Sleep.
    pub wait: Option<Dur>,
    /// Server-side apply of Kubernetes manifests (kind target).
    pub apply: Option<Vec<Located<String>>>,
    /// Kubernetes targets the drill sets up (kind, kwok): once this step
    /// succeeds, the cluster's identity is re-pinned to the API server the
    /// run's kubeconfig reaches now, after a rebuild the step did
    /// (docs/drill-format.md, `repin` under `steps`). Without it, every
    /// later fault on the rebuilt cluster is refused.
    pub repin: Option<Located<bool>>,
}

impl RawStep {
    /// The action keys present, in the order docs/drill-format.md lists them.
    pub fn actions(&self) -> Vec<ActionKind> {
        let present = [
            (self.run.is_some(), ActionKind::Run),
            (self.fault.is_some(), ActionKind::Fault),
            (self.recover.is_some(), ActionKind::Recover),
            (self.probe.is_some(), ActionKind::Probe),
            (self.wait.is_some(), ActionKind::Wait),
            (self.apply.is_some(), ActionKind::Apply),
        ];
        present
            .into_iter()
            .filter(|(present, _)| *present)
            .map(|(_, kind)| kind)
            .collect()
    }
}

/// One node of the graph, validated: it has exactly one action.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unique id, `[a-z0-9-]+`.
    pub id: Located<String>,
    /// Steps that must be done first.
    pub needs: Vec<Located<String>>,
    /// What the step is for.
    pub description: Option<String>,
    /// Default 5m; on expiry the step's process group is killed.
    pub timeout: Option<Dur>,
    /// Default 0.
    pub retries: Option<u32>,
    /// Default 1s.
    pub retry_delay: Option<Dur>,
    /// Re-pin the cluster's identity once the step succeeded.
    pub repin: bool,
    /// What the step does.
    pub action: Action,
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RawStep::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawStep::json_schema(generator)
    }
}

/// What a step does: the one action key it gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `run`: a shell command.
    Run(String),
    /// `fault`: a fault injection.
    Fault(Fault),
    /// `recover`: the recovery under test.
    Recover(Located<Recover>),
    /// `probe`: wait until these probes pass.
    Probe(OneOrMany),
    /// `wait`: sleep.
    Wait(Dur),
    /// `apply`: server-side apply of Kubernetes manifests.
    Apply(Vec<Located<String>>),
}

impl Action {
    /// Which action it is.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Run(_) => ActionKind::Run,
            Action::Fault(_) => ActionKind::Fault,
            Action::Recover(_) => ActionKind::Recover,
            Action::Probe(_) => ActionKind::Probe,
            Action::Wait(_) => ActionKind::Wait,
            Action::Apply(_) => ActionKind::Apply,
        }
    }
}

/// The action of a step, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// `run`
    Run,
    /// `fault`
    Fault,
    /// `recover`
    Recover,
    /// `probe`
    Probe,
    /// `wait`
    Wait,
    /// `apply`
    Apply,
}

impl ActionKind {
    /// The key as written.
    pub fn key(self) -> &'static str {
        match self {
            ActionKind::Run => "run",
            ActionKind::Fault => "fault",
            ActionKind::Recover => "recover",
            ActionKind::Probe => "probe",
            ActionKind::Wait => "wait",
            ActionKind::Apply => "apply",
        }
    }
}

impl Step {
    /// The step's action kind.
    pub fn action(&self) -> ActionKind {
        self.action.kind()
    }

    /// The fault this step injects, if it is a fault step.
    pub fn fault(&self) -> Option<&Fault> {
        match &self.action {
            Action::Fault(fault) => Some(fault),
            Action::Run(_)
            | Action::Recover(_)
            | Action::Probe(_)
            | Action::Wait(_)
            | Action::Apply(_) => None,
        }
    }

    /// The step's timeout (default 5m).
    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(Duration::from_secs(300), |d| d.0)
    }

    /// Delay between attempts (default 1s).
    pub fn retry_delay(&self) -> Duration {
        self.retry_delay.map_or(Duration::from_secs(1), |d| d.0)
    }
}

/// `recover: {runbook: ...}`, `recover: {run: ...}` or `recover: {manual: ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// A Markdown runbook, relative to the drill file.
    pub runbook: Option<Located<String>>,
    /// A shell command.
    pub run: Option<String>,
    /// People recover by hand; the run waits until the steady state holds
    /// again, or the timeout (docs/game-days.md).
    pub manual: Option<Manual>,
    /// `idempotent`: run every runbook step a second time afterwards.
    pub check: Option<Check>,
}

/// `recover: {manual: {runbook: PATH?, timeout: DURATION}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manual {
    /// A Markdown runbook people follow, shown step by step; relative to the
    /// drill file.
    pub runbook: Option<Located<String>>,
    /// How long people have: after it, the system is not recovered.
    pub timeout: Dur,
}

/// Extra checks on a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Every step must succeed a second time.
    Idempotent,
}

/// A validated fault: what it does, and how to undo it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The fault, owned by the target that injects it.
    pub spec: FaultSpec,
    /// How to undo it.
    pub revert: Revert,
}

/// A drill.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// Format version; must be 1.
    pub version: u32,
    /// `[a-z0-9-]+`.
    pub name: String,
    /// What disaster this rehearses.
    pub description: Option<String>,
    /// `local` (default), `{kind: {...}}` or `{cluster: {...}}`.
    #[serde(default)]
    pub target: Target,
    /// Kubernetes targets: the namespaces API faults may touch (default:
    /// the namespaces the drill's manifests create).
    pub scope: Option<ScopeSpec>,
    /// Exported to every command; `${NAME}` expanded in non-shell fields.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// RTO, RPO, minimum score.
    pub objectives: Objectives,
    /// Local target: processes started before the first step.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Named checks.
    #[serde(default)]
    pub probes: BTreeMap<String, Probe>,
    /// Probe names that define "healthy".
    #[serde(default)]
    pub steady_state: Vec<Located<String>>,
    /// Probe names that must hold throughout, else abort.
    #[serde(default)]
    pub guards: Vec<Located<String>>,
    /// Probe names that pass once the team's own monitoring noticed (an
    /// alert fired): polled from the first fault, they measure the time to
    /// alert (docs/game-days.md).
    #[serde(default)]
    pub detect: Vec<Located<String>>,
    /// Heartbeat writer for RPO.
    pub data: Option<DataSpec>,
    /// The graph.
    pub steps: Vec<Step>,
}

/// The shortest default settle window of the recovery check.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(10);

impl Drill {
    /// `objectives.min_score`, default 70.
    pub fn min_score(&self) -> u32 {
        self.objectives.min_score.unwrap_or(70)
    }

    /// `objectives.expect_outage`, default true.
    pub fn expect_outage(&self) -> bool {
        self.objectives.expect_outage.unwrap_or(true)
    }

    /// `objectives.settle`; by default the larger of 10s and, for the
    /// slowest steady-state probe, `(success_threshold + 2) × interval`: a
    /// restarting server gets time to come back, and a probe polled rarely
    /// still gets a few chances.
    pub fn settle(&self) -> Duration {
        if let Some(settle) = &self.objectives.settle {
            return settle.0;
        }
        self.steady_state
            .iter()
            .filter_map(|name| self.probes.get(&name.value))
            .map(|probe| probe.interval() * (probe.success_threshold() + 2))
            .fold(DEFAULT_SETTLE, Duration::max)
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id.value == id)
    }

    /// The manifests of its `apply` steps, as written.
    pub fn manifests(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().flat_map(|step| match &step.action {
            Action::Apply(paths) => paths.iter().map(|p| p.value.as_str()).collect(),
            _ => Vec::new(),
        })
    }

    /// The blast radius on a Kubernetes target (docs/drill-format.md,
    /// "scope"): `scope`, or the namespaces `manifests` (paths against `dir`)
    /// create. `None` on the local target.
    pub fn blast_radius<'a>(
        &self,
        dir: &std::path::Path,
        manifests: impl IntoIterator<Item = &'a str>,
    ) -> Option<crate::target::kube::scope::Scope> {
        use crate::target::kube::scope::{Scope, manifest_namespaces};
        if !self.target.is_kube() {
            return None;
        }
        let shared = matches!(self.target, Target::Cluster(_));
        Some(match &self.scope {
            Some(scope) => Scope::new(
                scope.namespaces.iter().map(|n| n.value.clone()),
                shared,
                "`scope`",
            ),
            None => Scope::new(
                manifest_namespaces(dir, manifests),
                shared,
                "no `scope`: the namespaces the drill's manifests create",
            ),
        })
    }
}
