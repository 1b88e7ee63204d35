//! The checks beyond the shape of the file: references, the graph, targets,
//! files. Every check adds to one list, so all problems are reported at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use super::diag::Problem;
use super::model::{
    Action, ActionKind, Drill, Fault, FaultSpec, Probe, ProbeRef, RawFault, RawStep, Recover, Step,
    Target,
};
use super::yaml::{self, Loc, Located, Node};

/// What validation needs besides the typed drill: the tree it came from,
/// for locations, and the names of parts that did not parse.
pub(crate) struct Context<'a> {
    pub dir: &'a Path,
    pub root: &'a Node,
    pub step_nodes: &'a [&'a Node],
    pub steps_key: Option<Loc>,
    pub unparsed_step_ids: &'a [String],
    /// Steps that did not parse, with or without an id: the graph-wide
    /// checks (a fault step, a recover step) would guess wrong without them.
    pub unparsed_steps: usize,
    pub known_probes: &'a [String],
    /// The same names, to look references up in.
    pub probe_set: &'a HashSet<&'a str>,
    pub known_services: &'a [String],
    pub version_loc: Option<Loc>,
    pub name_loc: Option<Loc>,
    pub services_loc: Option<Loc>,
    pub target_loc: Option<Loc>,
    pub scope_loc: Option<Loc>,
    /// The blast radius on a Kubernetes target.
    pub scope: Option<crate::target::kube::scope::Scope>,
}

/// Names of steps, probes and services: `[a-z0-9-]+`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_valid_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Variables every run sets.
pub const BUILTIN_VARS: &[&str] = &[
    "WORKDIR",
    "RUN_ID",
    "DRILL",
    "SCENARIO_DIR",
    "RUN_DIR",
    "FIREDRILL_OUTPUT",
];

/// Checks `drill` (whose steps are still empty) and its steps as written;
/// returns the steps, each with its one action, that passed their checks
/// (all of them when no problem was found).
pub(crate) fn validate(
    drill: &Drill,
    raw_steps: &[RawStep],
    cx: &Context,
    problems: &mut Vec<Problem>,
) -> Vec<Step> {
    let top = Loc { line: 1, column: 1 };
    if drill.version != 1 {
        problems.push(
            Problem::at(
                cx.version_loc.unwrap_or(top),
                format!("unsupported drill format version `{}`", drill.version),
            )
            .help("this firedrill reads `version: 1`"),
        );
    }
    if cx.name_loc.is_some() && !is_valid_name(&drill.name) {
        problems.push(
            Problem::at(
                cx.name_loc.unwrap_or(top),
                format!("invalid drill name `{}`", drill.name),
            )
            .help("use lower-case letters, digits and `-`, e.g. `etcd-quorum-loss`"),
        );
    }
    for name in drill.vars.keys() {
        let problem = if !is_valid_var_name(name) {
            Problem::at(top, format!("invalid variable name `{name}`"))
                .help("variables are exported to commands: use letters, digits and `_`, not starting with a digit")
        } else if crate::vars::is_reserved(name) {
            Problem::at(top, format!("variable `{name}` is reserved: firedrill sets it"))
                .help("WORKDIR, RUN_ID, DRILL, SCENARIO_DIR, RUN_DIR, CLUSTER, KUBECONFIG, KUBECACHEDIR and every FIREDRILL_* or KIND_* name belong to firedrill; rename the variable")
        } else {
            continue;
        };
        let loc = cx
            .root
            .map_value("vars")
            .and_then(|vars| vars.map_key(name))
            .map_or(top, |n| n.loc);
        problems.push(Problem { loc, ..problem });
    }
    check_target(drill, cx, problems);
    check_probes(drill, cx, problems);
    check_services(drill, cx, problems);
    for (list, what) in [
        (&drill.steady_state, "steady_state"),
        (&drill.guards, "guards"),
        (&drill.detect, "detect"),
    ] {
        for name in list {
            check_probe_name(name, cx, problems, what);
        }
    }
    if let Some(rpo) = &drill.objectives.rpo
        && drill.data.is_none()
    {
        problems.push(
            Problem::at(
                rpo.loc,
                "`objectives.rpo` needs a `data:` section to measure data loss",
            )
            .help("add `data: {write: ..., read: ...}`, or remove `rpo`"),
        );
    }
    if let Some(min_score) = drill.objectives.min_score
        && min_score > 100
    {
        let loc = cx
            .root
            .map_value("objectives")
            .and_then(|o| o.map_value("min_score"))
            .map_or(top, |n| n.loc);
        problems.push(
            Problem::at(loc, format!("min_score {min_score} is above 100"))
                .help("scores run from 0 to 100"),
        );
    }
    check_steps(drill, raw_steps, cx, problems)
}

fn check_target(drill: &Drill, cx: &Context, problems: &mut Vec<Problem>) {
    if let Target::Cluster(cluster) = &drill.target {
        crate::target::cluster::check_spec(cluster, problems);
    }
    if let Some(scope) = &drill.scope {
        let loc = cx.scope_loc.unwrap_or_default();
        if !drill.target.is_kube() {
            problems.push(
                Problem::at(loc, "`scope` is for Kubernetes targets")
                    .help("it limits the namespaces API faults may touch; the local target has none: remove it"),
            );
        }
        for namespace in &scope.namespaces {
            if matches!(drill.target, Target::Cluster(_))
                && namespace.value == crate::target::kube::scope::KUBE_SYSTEM
            {
                problems.push(
                    Problem::at(
                        namespace.loc,
                        "kube-system is never in scope on a `cluster` target",
                    )
                    .help(
                        "a drill on an existing cluster touches its own namespaces only: remove it",
                    ),
                );
            }
        }
    }
    // Services are processes on this host, which only the local target
    // starts and ends; on a Kubernetes target the workload is the cluster's.
    if drill.target.is_kube() && !drill.services.is_empty() {
        let loc = cx
            .root
            .map_key("services")
            .map(|key| key.loc)
            .or(cx.services_loc)
            .or(cx.target_loc)
            .unwrap_or_default();
        problems.push(
            Problem::at(loc, "`services` are for the local target only").help(format!(
                "on a {} target, deploy workloads with an `apply` step instead",
                drill.target.name()
            )),
        );
    }
    let cluster = match &drill.target {
        Target::Local | Target::Cluster(_) => return,
        Target::Kind(kind) => {
            if let Some(config) = &kind.config {
                check_file(cx.dir, config, "kind config", problems);
            }
            &kind.cluster
        }
        Target::Kwok(kwok) => {
            if let Some(nodes) = &kwok.nodes
                && !(1..=crate::target::kwok::MAX_NODES).contains(&nodes.value)
            {
                problems.push(
                    Problem::at(
                        nodes.loc,
                        format!("`nodes: {}` is out of range", nodes.value),
                    )
                    .help(format!(
                        "a kwok cluster gets 1 to {} simulated nodes",
                        crate::target::kwok::MAX_NODES
                    )),
                );
            }
            &kwok.cluster
        }
    };
    let name = drill.target.name();
    if !is_valid_name(cluster) {
        problems.push(
            Problem::at(
                cluster.loc,
                format!("invalid {name} cluster name `{}`", cluster.value),
            )
            .help(format!(
                "{name} cluster names use lower-case letters, digits and `-`"
            )),
        );
    }
}

fn check_file(dir: &Path, path: &Located<String>, what: &str, problems: &mut Vec<Problem>) {
    let resolved = dir.join(&path.value);
    if !resolved.is_file() {
        problems.push(
            Problem::at(path.loc, format!("{what} `{}` does not exist", path.value)).help(format!(
                "paths are relative to the drill file's directory; looked for {}",
                tidy_path(&resolved).display()
            )),
        );
    }
}

/// A runbook that exists must also be readable as one: a fence attribute
/// the runner does not know would otherwise only show up mid-recovery.
fn check_runbook(dir: &Path, path: &Located<String>, problems: &mut Vec<Problem>) {
    let resolved = dir.join(&path.value);
    if !resolved.is_file() {
        return;
    }
    if let Err(errors) = crate::runbook::load(&resolved) {
        for error in errors {
            let shown = crate::runbook::RunbookError {
                path: tidy_path(&resolved),
                ..error
            };
            problems.push(
                Problem::at(path.loc, format!("runbook `{}`: {shown}", path.value)).help(
                    "fix the runbook; `firedrill runbook lint FILE` checks it without running anything",
                ),
            );
        }
    }
}

/// `a/b/../c` as `a/c`, for messages: the path the user would look at.
fn tidy_path(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut tidy = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(tidy.components().next_back(), Some(Component::Normal(_))) =>
            {
                tidy.pop();
            }
            other => tidy.push(other),
        }
    }
    if tidy.as_os_str().is_empty() {
        tidy.push(".");
    }
    tidy
}

fn check_probe_name(name: &Located<String>, cx: &Context, problems: &mut Vec<Problem>, what: &str) {
    if !cx.probe_set.contains(name.as_str()) {
        let help = unknown_name_help(&name.value, cx.known_probes, "probe", "probes");
        problems.push(
            Problem::at(
                name.loc,
                format!("unknown probe `{}` in {what}", name.value),
            )
            .help(help),
        );
    }
}

/// A did-you-mean for a misspelt step in `needs`, with (some of) the ids it
/// can name. Without `suggest` only the ids are listed: looking for the
/// closest id costs a pass over all of them, too much to do for every one
/// of thousands of unknown needs.
fn unknown_step_help(wrong: &str, ids: &[&str], own_id: &str, suggest: bool) -> String {
    const LISTED: usize = 10;
    let others = || ids.iter().copied().filter(|id| *id != own_id);
    let mut listed = others()
        .take(LISTED)
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let more = ids.len().saturating_sub(LISTED + 1);
    if more > 0 && others().nth(LISTED).is_some() {
        listed.push_str(&format!(" and {more} more"));
    }
    let best = if suggest {
        yaml::closest(wrong, others())
    } else {
        None
    };
    match best {
        Some(best) => format!("did you mean `{best}`? (other steps: {listed})"),
        None if others().next().is_none() => {
            "no other step is defined; `needs` lists the ids of steps that must finish first"
                .to_owned()
        }
        None => format!("`needs` lists ids of other steps: {listed}"),
    }
}

/// How many names a did-you-mean for a reference compares with.
const MAX_SUGGESTION_CANDIDATES: usize = 1000;

/// A did-you-mean for a misspelt reference, or else where to define it.
fn unknown_name_help(wrong: &str, known: &[String], what: &str, section: &str) -> String {
    const LISTED: usize = 10;
    let known_list = || {
        let mut list = known
            .iter()
            .take(LISTED)
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if known.len() > LISTED {
            list.push_str(&format!(" and {} more", known.len() - LISTED));
        }
        list
    };
    // With thousands of names, a did-you-mean per unknown reference would
    // make validation quadratic.
    let candidates = known
        .iter()
        .map(String::as_str)
        .take(MAX_SUGGESTION_CANDIDATES);
    match yaml::closest(wrong, candidates) {
        Some(best) => format!("did you mean `{best}`? (defined {what}s: {})", known_list()),
        None if known.is_empty() => {
            format!("no {what}s are defined; define `{wrong}` under `{section}:`")
        }
        None => format!(
            "define `{wrong}` under `{section}:`, or use one of: {}",
            known_list()
        ),
    }
}

fn check_probes(drill: &Drill, cx: &Context, problems: &mut Vec<Problem>) {
    let probes_node = cx.root.map_value("probes");
    for (name, probe) in &drill.probes {
        let key_loc = probes_node
            .and_then(|node| node.map_key(name))
            .map_or(Loc::default(), |node| node.loc);
        if !is_valid_name(name) {
            problems.push(
                Problem::at(key_loc, format!("invalid probe name `{name}`"))
                    .help("use lower-case letters, digits and `-`"),
            );
        }
        check_probe(probe, key_loc, &format!("probe `{name}`"), drill, problems);
    }
}

/// The shortest probe interval: a probe polled in a hot loop would load the
/// system under test and fill the journal.
pub const MIN_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

fn check_probe(probe: &Probe, loc: Loc, what: &str, drill: &Drill, problems: &mut Vec<Problem>) {
    if probe.interval.is_some_and(|i| i.0 < MIN_PROBE_INTERVAL) {
        problems.push(
            Problem::at(loc, format!("{what}: `interval` is shorter than 50ms"))
                .help("a probe is polled every `interval` for the whole run; 50ms is the shortest, 500ms to 1s is usual"),
        );
    }
    let kinds = probe.kinds();
    match kinds.as_slice() {
        [] => problems.push(
            Problem::at(loc, format!("{what} has no check"))
                .help("give it one of `command`, `http`, `tcp`, `k8s`"),
        ),
        [_] => {}
        several => problems.push(
            Problem::at(
                loc,
                format!(
                    "{what} has {} checks: {}",
                    several.len(),
                    several.join(", ")
                ),
            )
            .help("a probe does one check; split it into several probes and list them all"),
        ),
    }
    if probe.expect.is_some() && probe.command.is_none() {
        problems.push(Problem::at(
            loc,
            format!("{what}: `expect` applies to `command` probes only"),
        ));
    }
    if let Some(pattern) = probe
        .expect
        .as_ref()
        .and_then(|expect| expect.stdout_matches.as_ref())
        && let Err(error) = regex::Regex::new(pattern)
    {
        problems.push(
            Problem::at(pattern.loc, format!("{what}: `stdout_matches` is not a valid regular expression: {}", regex_reason(&error)))
                .help("escape characters such as `(`, `[`, `.` with `\\` to match them literally, or use `stdout_contains` for plain text"),
        );
    }
    if let Some(http) = &probe.http
        && !(http.url.starts_with("http://")
            || http.url.starts_with("https://")
            // `${URL}/health`: known only after expansion at run time.
            || http.url.starts_with("${"))
    {
        problems.push(Problem::at(
            loc,
            format!("{what}: `{}` is not an http:// or https:// URL", http.url),
        ));
    }
    if let Some(tcp) = &probe.tcp
        && !tcp.address.contains("${")
        && tcp
            .address
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        problems.push(
            Problem::at(
                loc,
                format!("{what}: `{}` is not a host:port address", tcp.address),
            )
            .help("write it like `127.0.0.1:2379`"),
        );
    }
    if let Some(k8s) = &probe.k8s {
        if !drill.target.is_kube() {
            problems.push(
                Problem::at(k8s.kind.loc, format!("{what}: `k8s` probes need a Kubernetes target"))
                    .help("set `target: {kwok: {cluster: ...}}` or `target: {kind: {cluster: ..., config: ...}}`, or use a command, http or tcp probe"),
            );
        }
        let condition = k8s.condition.as_deref().unwrap_or("");
        let valid = match k8s.kind.as_str() {
            "Node" | "Pod" => matches!(condition, "" | "Ready" | "Exists"),
            "Deployment" => matches!(condition, "" | "Available" | "Exists"),
            "StatefulSet" => matches!(condition, "" | "Ready" | "Exists"),
            _ => matches!(condition, "" | "Exists"),
        };
        if !valid {
            problems.push(
                Problem::at(k8s.kind.loc, format!("{what}: condition `{condition}` is not checked for kind `{}`", k8s.kind.value))
                    .help("Node and Pod: Ready; Deployment: Available; StatefulSet: Ready; any kind: Exists"),
            );
        }
    }
}

/// The reason a regex does not compile, without the multi-line caret diagram.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    match text
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
    {
        Some(reason) => reason.to_owned(),
        None => one_line(&text),
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_services(drill: &Drill, cx: &Context, problems: &mut Vec<Problem>) {
    let services_node = cx.root.map_value("services");
    for (name, service) in &drill.services {
        let key_loc = services_node
            .and_then(|node| node.map_key(name))
            .map_or(Loc::default(), |node| node.loc);
        if !is_valid_name(name) {
            problems.push(
                Problem::at(key_loc, format!("invalid service name `{name}`"))
                    .help("use lower-case letters, digits and `-`"),
            );
        }
        match &service.ready {
            Some(ProbeRef::Name(probe)) => {
                check_probe_name(probe, cx, problems, &format!("service `{name}` ready"))
            }
            Some(ProbeRef::Inline(probe)) => check_probe(
                probe,
                key_loc,
                &format!("service `{name}` ready probe"),
                drill,
                problems,
            ),
            None => {}
        }
        for var in service.env.keys() {
            if !is_valid_var_name(var) {
                problems.push(Problem::at(
                    key_loc,
                    format!("service `{name}`: invalid environment variable name `{var}`"),
                ));
            } else if crate::vars::is_reserved(var) {
                // FIREDRILL_RUN_ID here would hide the service from the sweep.
                problems.push(Problem::at(
                    key_loc,
                    format!("service `{name}`: variable `{var}` is reserved: firedrill sets it"),
                ));
            }
        }
    }
}

fn check_steps(
    drill: &Drill,
    raw_steps: &[RawStep],
    cx: &Context,
    problems: &mut Vec<Problem>,
) -> Vec<Step> {
    let mut seen: HashMap<&str, Loc> = HashMap::with_capacity(raw_steps.len());
    let mut duplicate_ids = false;
    let mut ids: Vec<&str> = raw_steps.iter().map(|step| step.id.as_str()).collect();
    ids.extend(cx.unparsed_step_ids.iter().map(String::as_str));
    // A set for the lookups: a Vec searched per need made validation
    // quadratic in the number of steps.
    let known_ids: HashSet<&str> = ids.iter().copied().collect();
    // Past this many unknown needs, something other than typos is wrong, and
    // a did-you-mean for each would make validation quadratic.
    const MAX_SUGGESTED_NEEDS: usize = 100;
    let mut unknown_needs = 0;
    let mut steps = Vec::new();
    for (index, step) in raw_steps.iter().enumerate() {
        let node = cx.step_nodes.get(index).copied();
        if !is_valid_name(&step.id) {
            problems.push(
                Problem::at(step.id.loc, format!("invalid step id `{}`", step.id.value))
                    .help("use lower-case letters, digits and `-`, e.g. `restore-snapshot`"),
            );
        }
        if let Some(first) = seen.get(step.id.as_str()) {
            duplicate_ids = true;
            problems.push(
                Problem::at(
                    step.id.loc,
                    format!("duplicate step id `{}`", step.id.value),
                )
                .help(format!(
                    "it is already used at line {}; give each step its own id",
                    first.line
                )),
            );
        } else {
            seen.insert(step.id.as_str(), step.id.loc);
        }
        for need in &step.needs {
            if need.value == step.id.value {
                problems.push(
                    Problem::at(
                        need.loc,
                        format!(
                            "step `{}` needs itself: {} -> {}",
                            step.id.value, step.id.value, step.id.value
                        ),
                    )
                    .help("remove it from its own `needs`"),
                );
            } else if !known_ids.contains(need.as_str()) {
                unknown_needs += 1;
                let suggest = unknown_needs <= MAX_SUGGESTED_NEEDS;
                problems.push(
                    Problem::at(need.loc, format!("unknown step `{}` in needs", need.value)).help(
                        unknown_step_help(&need.value, &ids, &step.id.value, suggest),
                    ),
                );
            }
        }
        if let Some(repin) = step.repin.as_ref().filter(|repin| repin.value) {
            let why = match drill.target {
                Target::Kind(_) | Target::Kwok(_) => None,
                Target::Cluster(_) => Some(
                    "the `cluster` target's identity is the drill's `uid`: a drill never rebuilds an existing cluster",
                ),
                Target::Local => Some(
                    "`repin` re-pins a Kubernetes cluster's identity; the local target has none",
                ),
            };
            if let Some(why) = why {
                problems.push(
                    Problem::at(
                        repin.loc,
                        format!("step `{}`: `repin` does not apply here", step.id.value),
                    )
                    .help(why),
                );
            }
        }
        if step.timeout.is_some_and(|timeout| timeout.0.is_zero()) {
            let loc = node
                .and_then(|n| n.map_value("timeout"))
                .map_or(step.id.loc, |n| n.loc);
            problems.push(
                Problem::at(
                    loc,
                    format!("step `{}`: `timeout` is zero: the step could never finish", step.id.value),
                )
                .help("give it the time it needs, e.g. `timeout: 30s`; without `timeout` a step gets 5m"),
            );
        }
        if let Some(action) = check_action(drill, cx, step, node, problems) {
            steps.push(Step {
                id: step.id.clone(),
                needs: step.needs.clone(),
                description: step.description.clone(),
                timeout: step.timeout,
                retries: step.retries,
                retry_delay: step.retry_delay,
                repin: step.repin.as_ref().is_some_and(|repin| repin.value),
                action,
            });
        }
    }

    let has = |kind: ActionKind| raw_steps.iter().any(|step| step.actions().contains(&kind));
    let steps_loc = cx.steps_key.unwrap_or(Loc { line: 1, column: 1 });
    if cx.steps_key.is_some() && cx.unparsed_steps == 0 {
        if !has(ActionKind::Fault) {
            problems.push(
                Problem::at(steps_loc, "the drill has no `fault` step")
                    .help("a drill rehearses a disaster: add a step with `fault: {...}`"),
            );
        }
        if !has(ActionKind::Recover) {
            problems.push(
                Problem::at(steps_loc, "the drill has no `recover` step")
                    .help("add a step with `recover: {runbook: ../runbooks/....md}` or `recover: {run: ...}`"),
            );
        }
    }
    if cx.unparsed_steps == 0 && !duplicate_ids {
        check_recover_after_fault(raw_steps, problems);
    }
    // With two steps of one id the graph merges them, and the cycles it
    // finds are artefacts of the duplicate, not of the user's `needs`.
    let cycles = if duplicate_ids {
        Vec::new()
    } else {
        super::cycles::cycles(raw_steps)
    };
    for cycle in cycles {
        let first = cycle
            .first()
            .map_or(steps_loc, |&start| raw_steps[start].id.loc);
        let mut path: Vec<&str> = cycle
            .iter()
            .map(|&index| raw_steps[index].id.as_str())
            .collect();
        if let Some(start) = path.first().copied() {
            path.push(start);
        }
        problems.push(
            Problem::at(first, format!("dependency cycle: {}", path.join(" -> ")))
                .help("each step needs the next, so none of them can ever start; remove one of these `needs`"),
        );
    }
    steps
}

/// A `recover` step that needs no fault step, even through other steps, may
/// run before any fault and then counts as the recovery of nothing.
fn check_recover_after_fault(raw_steps: &[RawStep], problems: &mut Vec<Problem>) {
    let by_id: HashMap<&str, &RawStep> = raw_steps
        .iter()
        .map(|step| (step.id.as_str(), step))
        .collect();
    let is_fault = |step: &RawStep| step.actions().contains(&ActionKind::Fault);
    let faults: Vec<&str> = raw_steps
        .iter()
        .filter(|step| is_fault(step))
        .map(|step| step.id.as_str())
        .collect();
    let Some(first_fault) = faults.first() else {
        return;
    };
    for step in raw_steps {
        if !step.actions().contains(&ActionKind::Recover) {
            continue;
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut todo: Vec<&str> = step.needs.iter().map(|n| n.as_str()).collect();
        let mut after_fault = false;
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            // An unknown need is reported as such.
            let Some(need) = by_id.get(id) else {
                after_fault = true;
                break;
            };
            if is_fault(need) {
                after_fault = true;
                break;
            }
            todo.extend(need.needs.iter().map(|n| n.as_str()));
        }
        if !after_fault {
            problems.push(
                Problem::at(
                    step.id.loc,
                    format!(
                        "recover step `{}` needs no fault step: it may run before any fault and count as the recovery",
                        step.id.value
                    ),
                )
                .help(format!(
                    "add `needs: [{first_fault}]` (or the fault step it recovers from)"
                )),
            );
        }
    }
}

/// Checks a step's action keys; returns its one action if it has exactly
/// one and that one passed its checks.
fn check_action(
    drill: &Drill,
    cx: &Context,
    step: &RawStep,
    node: Option<&Node>,
    problems: &mut Vec<Problem>,
) -> Option<Action> {
    let actions = step.actions();
    let id = &step.id.value;
    let before = problems.len();
    match actions.as_slice() {
        [] => problems.push(
            Problem::at(step.id.loc, format!("step `{id}` has no action"))
                .help("give it exactly one of `run`, `fault`, `recover`, `probe`, `wait`, `apply`"),
        ),
        [_] => {}
        [first, second, ..] => {
            let loc = node
                .and_then(|n| n.map_key(second.key()))
                .map_or(step.id.loc, |key| key.loc);
            problems.push(
                Problem::at(
                    loc,
                    format!(
                        "step `{id}` has two actions: `{}` and `{}`",
                        first.key(),
                        second.key()
                    ),
                )
                .help(
                    "a step does one thing; split it into two steps and connect them with `needs`",
                ),
            );
        }
    }
    let fault = step
        .fault
        .as_ref()
        .and_then(|fault| check_fault(drill, cx, id, fault, problems));
    if let Some(recover) = &step.recover {
        check_recover(drill, cx, id, recover, problems);
    }
    if let Some(probes) = &step.probe {
        if probes.0.is_empty() {
            problems.push(Problem::at(
                step.id.loc,
                format!("step `{id}`: `probe` lists no probes"),
            ));
        }
        for name in &probes.0 {
            check_probe_name(name, cx, problems, "probe step");
        }
    }
    if let Some(manifests) = &step.apply {
        if !drill.target.is_kube() {
            let loc = node
                .and_then(|n| n.map_key("apply"))
                .map_or(step.id.loc, |key| key.loc);
            problems.push(
                Problem::at(
                    loc,
                    format!("step `{id}`: `apply` needs a Kubernetes target"),
                )
                .help("the local target runs processes; use `run` there"),
            );
        } else {
            for manifest in manifests {
                check_file(cx.dir, manifest, "manifest", problems);
            }
        }
    }
    if step.retries.is_some_and(|retries| retries > 100) {
        problems.push(
            Problem::at(step.id.loc, format!("step `{id}`: more than 100 retries"))
                .help("retries are for flaky commands, not for waiting: use a `probe` step"),
        );
    }
    if problems.len() != before {
        return None;
    }
    let [action] = actions.as_slice() else {
        return None;
    };
    match action {
        ActionKind::Run => step.run.clone().map(Action::Run),
        ActionKind::Fault => fault.map(Action::Fault),
        ActionKind::Recover => step.recover.clone().map(Action::Recover),
        ActionKind::Probe => step.probe.clone().map(Action::Probe),
        ActionKind::Wait => step.wait.map(Action::Wait),
        ActionKind::Apply => step.apply.clone().map(Action::Apply),
    }
}

/// Checks a fault: exactly one kind, which the target supports (the target
/// module checks its own faults); returns it if it passed.
fn check_fault(
    drill: &Drill,
    cx: &Context,
    id: &str,
    fault: &Located<RawFault>,
    problems: &mut Vec<Problem>,
) -> Option<Fault> {
    let kind = match fault.kinds().as_slice() {
        [] => {
            problems.push(
                Problem::at(
                    fault.loc,
                    format!("step `{id}`: the fault names no fault kind"),
                )
                .help(format!(
                    "{} target faults: {}",
                    drill.target.name(),
                    drill.target.fault_kinds().join(", ")
                )),
            );
            return None;
        }
        [kind] => *kind,
        several => {
            problems.push(
                Problem::at(fault.loc, format!("step `{id}`: one fault step injects one fault, found {}", several.join(", ")))
                    .help("split them into steps; steps without `needs` between them run at the same time"),
            );
            return None;
        }
    };
    // A shell revert on any kind is allowed: it replaces the built-in undo.
    let spec = match &fault.run {
        Some(run) if run.trim().is_empty() => {
            problems.push(Problem::at(
                fault.loc,
                format!("step `{id}`: the `run` fault is empty"),
            ));
            None
        }
        Some(run) => Some(FaultSpec::Shell(run.clone())),
        None => drill.target.parse_fault(
            kind,
            fault,
            &mut crate::target::FaultCheck {
                step: id,
                loc: fault.loc,
                known_services: cx.known_services,
                problems,
                name_help: unknown_name_help,
                value_help: |wrong, allowed, what| {
                    yaml::suggest(wrong, allowed.iter().copied(), what)
                },
            },
        ),
    };
    let spec = spec?;
    if let (FaultSpec::Kube(kube), Some(scope)) = (&spec, &cx.scope) {
        let found = scope.check_written(kube);
        let outside = !found.is_empty();
        for problem in found {
            problems.push(
                Problem::at(fault.loc, format!("step `{id}`: {problem}")).help(
                    "`scope: {namespaces: [...]}` lists the namespaces API faults may touch (default: those the drill's manifests create); kube-system and objects of no namespace are never in scope on a `cluster` target",
                ),
            );
        }
        if outside {
            return None;
        }
    }
    Some(Fault {
        spec,
        revert: fault.revert.clone(),
    })
}

/// Every name a drill's commands may use: its vars and the built-ins.
pub fn known_vars(drill: &Drill) -> BTreeSet<String> {
    let mut vars: BTreeSet<String> = drill.vars.keys().cloned().collect();
    vars.extend(BUILTIN_VARS.iter().map(|name| (*name).to_owned()));
    vars.extend(
        drill
            .target
            .var_names()
            .iter()
            .map(|name| (*name).to_owned()),
    );
    vars
}

fn check_recover(
    drill: &Drill,
    cx: &Context,
    id: &str,
    recover: &Located<Recover>,
    problems: &mut Vec<Problem>,
) {
    let given = [
        recover.runbook.is_some(),
        recover.run.is_some(),
        recover.manual.is_some(),
    ]
    .iter()
    .filter(|given| **given)
    .count();
    if given == 0 {
        problems.push(
            Problem::at(recover.loc, format!("step `{id}`: `recover` needs `runbook`, `run` or `manual`"))
                .help("`recover: {runbook: ../runbooks/restore.md}` runs a Markdown runbook as written; `recover: {manual: {timeout: 30m}}` waits while people recover by hand"),
        );
        return;
    }
    if given > 1 {
        problems.push(
            Problem::at(recover.loc, format!("step `{id}`: `recover` gives more than one of `runbook`, `run` and `manual`"))
                .help("keep one; a runbook is scored for accuracy, a command is not, and `manual` waits for people"),
        );
        return;
    }
    if let Some(runbook) = &recover.runbook {
        check_file(cx.dir, runbook, "runbook", problems);
        check_runbook(cx.dir, runbook, problems);
    } else if recover.check.is_some() {
        problems.push(Problem::at(
            recover.loc,
            format!("step `{id}`: `check` applies to runbooks firedrill runs only"),
        ));
    }
    if let Some(manual) = &recover.manual {
        if let Some(runbook) = &manual.runbook {
            check_file(cx.dir, runbook, "runbook", problems);
            check_runbook(cx.dir, runbook, problems);
        }
        if drill.steady_state.is_empty() {
            problems.push(
                Problem::at(recover.loc, format!("step `{id}`: `recover: {{manual: ...}}` ends when the steady state holds again, and the drill has no `steady_state`"))
                    .help("list the probes that define \"healthy\" under `steady_state:`"),
            );
        }
        if manual.timeout.0.is_zero() {
            problems.push(
                Problem::at(
                    recover.loc,
                    format!("step `{id}`: `manual.timeout` is zero: people get no time to recover"),
                )
                .help("give them the time a real incident would, e.g. `timeout: 45m`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_messages_are_tidied_without_touching_the_file_system() {
        let tidy = |path: &str| tidy_path(Path::new(path)).display().to_string();
        assert_eq!(tidy("invalid/../../runbooks/x.md"), "../runbooks/x.md");
        assert_eq!(tidy("./a/./b/../c"), "a/c");
        assert_eq!(tidy("../x"), "../x");
        assert_eq!(tidy("a/.."), ".");
    }

    #[test]
    fn unknown_need_help_lists_a_few_ids_and_suggests_only_when_asked() {
        let names: Vec<String> = (0..50).map(|i| format!("step-{i}")).collect();
        let ids: Vec<&str> = names.iter().map(String::as_str).collect();
        let help = unknown_step_help("step-7x", &ids, "step-0", true);
        assert!(help.starts_with("did you mean `step-7`?"), "{help}");
        assert!(help.ends_with("`step-10` and 39 more)"), "{help}");
        let help = unknown_step_help("step-7x", &ids, "step-0", false);
        assert!(
            help.starts_with("`needs` lists ids of other steps: `step-1`,"),
            "{help}"
        );
        assert_eq!(
            unknown_step_help("x", &["a"], "a", true),
            "no other step is defined; `needs` lists the ids of steps that must finish first"
        );
    }
}
