//! A fault as written (`RawFault`, what `firedrill schema` describes) and
//! as validated (`FaultSpec`), and what a target's validation of its faults
//! gets (`FaultCheck`). The fields of each kind and the typed faults are
//! defined by the target modules that own them.

use schemars::JsonSchema;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};

use super::kube::{NodeSelector, PodKillFault};
use super::local::{CorruptFault, KillFault, PauseFault};
use super::{kind, kube, kwok, local};
use crate::located::{Loc, OneOrMany, Problem};

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
    /// A fault of the kwok target's simulated nodes, control plane and cluster.
    Kwok(kwok::KwokFault),
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
            FaultSpec::Kwok(fault) => fault.kind(),
            FaultSpec::Shell(_) => "run",
        }
    }

    /// What it hits, in a few words, for `plan` (empty if nothing to add).
    pub fn describe(&self) -> String {
        match self {
            FaultSpec::Local(fault) => fault.describe(),
            FaultSpec::Kube(fault) => fault.describe(),
            FaultSpec::Kind(fault) => fault.describe(),
            FaultSpec::Kwok(fault) => fault.describe(),
            FaultSpec::Shell(script) => crate::text::short_line(script),
        }
    }
}

// As written: every kind is optional here; validation checks that there is
// exactly one and that the target supports it, and turns it into a `Fault`.
// (The doc comment is the schema's description.)
/// `fault: {<kind>: {...}, revert: ...}`. Exactly one kind.
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
