//! The drill file format, version 1 (SPEC §1–§5).
//!
//! These types are both what drills deserialize into and what `firedrill
//! schema` describes, so editors autocomplete exactly what the loader accepts.
//! Choices between alternatives (one action per step, one kind per fault or
//! probe) are optional fields checked by validation rather than untagged
//! enums, so a mistake is reported at its own line and not as "did not match
//! any variant".

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::yaml::Located;

/// A duration written as `500ms`, `30s`, `2m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::duration::parse_duration(&text)
            .map(Dur)
            .map_err(|error| {
                // `timeout: 30` is the commonest slip: say which unit to add.
                if text.trim().parse::<u64>().is_ok() {
                    de::Error::custom(format!(
                        "{error}; a number needs a unit, e.g. `{}s`",
                        text.trim()
                    ))
                } else if text.contains('.') {
                    de::Error::custom(format!(
                        "{error}; write fractions with a smaller unit, e.g. `1s500ms` or `1500ms`"
                    ))
                } else {
                    de::Error::custom(error)
                }
            })
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h))+$",
            "description": "A duration: 500ms, 30s, 2m, 1h30m",
        })
    }
}

/// One name or a list of names: `service: etcd-2` or `service: [etcd-2, etcd-3]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OneOrMany(pub Vec<Located<String>>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read through `Located` so that a single name keeps its location.
        let located = Located::<OneOrManyRaw>::deserialize(deserializer)?;
        let mut names = located.value.0;
        if let [only] = names.as_mut_slice()
            && only.loc == Default::default()
        {
            only.loc = located.loc;
        }
        Ok(OneOrMany(names))
    }
}

impl OneOrMany {
    /// The names as plain strings.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|name| name.value.clone()).collect()
    }
}

struct OneOrManyRaw(Vec<Located<String>>);

impl<'de> Deserialize<'de> for OneOrManyRaw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrManyRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrManyRaw, E> {
                Ok(OneOrManyRaw(vec![Located::new(value.to_owned())]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrManyRaw, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<Located<String>>()? {
                    names.push(name);
                }
                Ok(OneOrManyRaw(names))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        })
    }
}

/// The system under test: processes on this host, or a kind cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Processes on this host (the default).
    #[default]
    Local,
    /// A kind cluster.
    Kind(KindTarget),
}

impl Target {
    /// `local` or `kind`.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Kind(_) => "kind",
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
        }
        Ok(match Tagged::deserialize(deserializer)? {
            Tagged::Local => Target::Local,
            Tagged::Kind(kind) => Target::Kind(kind),
        })
    }
}

impl JsonSchema for Target {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Target".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let kind = generator.subschema_for::<KindTarget>();
        schemars::json_schema!({
            "description": "`local` (processes on this host, the default) or `{kind: {...}}`",
            "anyOf": [
                {"const": "local"},
                {"type": "object", "properties": {"kind": kind}, "required": ["kind"], "additionalProperties": false}
            ]
        })
    }
}

/// `target: {kind: {...}}` (SPEC §3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KindTarget {
    /// The kind cluster's name.
    pub cluster: Located<String>,
    /// The kind config file, relative to the drill file.
    pub config: Option<Located<String>>,
    /// Use the cluster if it exists already.
    #[serde(default)]
    pub reuse: bool,
    /// Do not delete the cluster at the end.
    #[serde(default)]
    pub keep: bool,
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
    /// resilience check where holding is the point (SPEC §7.2).
    pub expect_outage: Option<bool>,
    /// How long the recovery check after the last step may wait for every
    /// steady-state probe to hold (default: 10s, or longer for slow probes,
    /// see [`Drill::settle`]).
    pub settle: Option<Dur>,
}

/// A service of the local target (SPEC §3.1).
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

/// A named check (SPEC §5). Exactly one of `command`, `http`, `tcp`, `k8s`.
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

/// `data:` — the heartbeat writer for RPO (SPEC §7.3).
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

/// One node of the graph (SPEC §2). Exactly one action key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
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
    pub fault: Option<Located<Fault>>,
    /// The recovery under test.
    pub recover: Option<Located<Recover>>,
    /// Wait until these probes pass.
    pub probe: Option<OneOrMany>,
    /// Sleep.
    pub wait: Option<Dur>,
    /// Server-side apply of Kubernetes manifests (kind target).
    pub apply: Option<Vec<Located<String>>>,
}

/// The action of a step, resolved from its one action key.
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
    /// The action keys present, in the order of SPEC §2.
    pub fn actions(&self) -> Vec<ActionKind> {
        let mut actions = Vec::new();
        if self.run.is_some() {
            actions.push(ActionKind::Run);
        }
        if self.fault.is_some() {
            actions.push(ActionKind::Fault);
        }
        if self.recover.is_some() {
            actions.push(ActionKind::Recover);
        }
        if self.probe.is_some() {
            actions.push(ActionKind::Probe);
        }
        if self.wait.is_some() {
            actions.push(ActionKind::Wait);
        }
        if self.apply.is_some() {
            actions.push(ActionKind::Apply);
        }
        actions
    }

    /// The step's action; validation guarantees there is exactly one.
    pub fn action(&self) -> ActionKind {
        self.actions().first().copied().unwrap_or(ActionKind::Run)
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

/// `recover: {runbook: ...}` or `recover: {run: ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// A Markdown runbook, relative to the drill file.
    pub runbook: Option<Located<String>>,
    /// A shell command.
    pub run: Option<String>,
    /// `idempotent`: run every runbook step a second time afterwards.
    pub check: Option<Check>,
}

/// Extra checks on a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Every step must succeed a second time.
    Idempotent,
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

/// `fault: {<kind>: {...}, revert: ...}` (SPEC §4). Exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Fault {
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

/// Every fault kind, for messages and did-you-mean.
pub const FAULT_KINDS: &[&str] = &[
    "kill",
    "pause",
    "delete",
    "corrupt",
    "run",
    "delete_cluster",
    "stop_node",
    "kill_node",
    "pause_node",
    "partition_node",
    "stop_kubelet",
    "pod_kill",
    "drain_node",
    "control_plane_down",
];

/// Fault kinds the local target supports.
pub const LOCAL_FAULT_KINDS: &[&str] = &["kill", "pause", "delete", "corrupt", "run"];

/// Fault kinds the kind target supports.
pub const KIND_FAULT_KINDS: &[&str] = &[
    "delete_cluster",
    "stop_node",
    "kill_node",
    "pause_node",
    "partition_node",
    "stop_kubelet",
    "pod_kill",
    "delete",
    "drain_node",
    "control_plane_down",
    "run",
];

impl Fault {
    /// The kinds present (validation requires exactly one).
    pub fn kinds(&self) -> Vec<&'static str> {
        let present = [
            self.kill.is_some(),
            self.pause.is_some(),
            self.delete.is_some(),
            self.corrupt.is_some(),
            self.run.is_some(),
            self.delete_cluster.is_some(),
            self.stop_node.is_some(),
            self.kill_node.is_some(),
            self.pause_node.is_some(),
            self.partition_node.is_some(),
            self.stop_kubelet.is_some(),
            self.pod_kill.is_some(),
            self.drain_node.is_some(),
            self.control_plane_down.is_some(),
        ];
        FAULT_KINDS
            .iter()
            .zip(present)
            .filter(|(_, p)| *p)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The node selector of a node fault (`stop_node`, `kill_node`,
    /// `pause_node`, `partition_node`, `stop_kubelet`, `drain_node`).
    pub fn node_selector(&self) -> Option<&NodeSelector> {
        [
            &self.stop_node,
            &self.kill_node,
            &self.pause_node,
            &self.partition_node,
            &self.stop_kubelet,
            &self.drain_node,
        ]
        .into_iter()
        .flatten()
        .next()
    }

    /// The fault's kind; validation guarantees there is exactly one.
    pub fn kind(&self) -> &'static str {
        self.kinds().first().copied().unwrap_or("run")
    }
}

/// A key that takes no fields: `delete_cluster: {}` or `delete_cluster:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `kill: {service, signal}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillFault {
    /// Service name or names.
    pub service: OneOrMany,
    /// Signal name (default KILL): `TERM`, `SIGINT`, ...
    pub signal: Option<Located<String>>,
}

/// `pause: {service, duration}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseFault {
    /// Service name or names.
    pub service: OneOrMany,
    /// Resume after this long; without it, resumed at revert.
    pub duration: Option<Dur>,
}

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

/// `corrupt: {path, bytes}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorruptFault {
    /// The file.
    pub path: String,
    /// How many bytes to overwrite (default 64).
    pub bytes: Option<u64>,
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

/// A drill (SPEC §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// Format version; must be 1.
    pub version: u32,
    /// `[a-z0-9-]+`.
    pub name: String,
    /// What disaster this rehearses.
    pub description: Option<String>,
    /// `local` (default) or `{kind: {...}}`.
    #[serde(default)]
    pub target: Target,
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
}
