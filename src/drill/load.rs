//! Reading a drill file: every part deserialized on its own, so that all the
//! problems of a file are reported together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::diag::{FileProblems, Problem};
use super::model::{DataSpec, Drill, Objectives, Probe, Service, Step, Target};
use super::validate;
use super::yaml::{self, DeError, Loc, Node, NodeKind};

/// A drill that loaded and validated, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedDrill {
    /// The file as named on the command line.
    pub path: PathBuf,
    /// The directory relative paths in the drill resolve against (`SCENARIO_DIR`).
    pub dir: PathBuf,
    /// The drill.
    pub drill: Drill,
}

impl LoadedDrill {
    /// Resolves a path written in the drill against the drill's directory.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

const TOP_LEVEL_FIELDS: &[&str] = &[
    "version",
    "name",
    "description",
    "target",
    "vars",
    "objectives",
    "services",
    "probes",
    "steady_state",
    "guards",
    "data",
    "steps",
];

/// Loads and validates one drill file, collecting every problem in it.
pub fn load(path: &Path) -> Result<LoadedDrill, FileProblems> {
    let bytes = std::fs::read(path).map_err(|error| {
        FileProblems::unreadable(
            path,
            Problem::at(
                Loc::default(),
                format!("cannot read the drill file: {error}"),
            )
            .help(
                "check the path; `firedrill validate scenarios/` checks every drill in a directory",
            ),
        )
    })?;
    if bytes.contains(&0) {
        return Err(FileProblems::unreadable(
            path,
            Problem::at(Loc::default(), "this is a binary file, not a YAML drill")
                .help("a drill is a YAML text file; see `firedrill schema` for its format"),
        ));
    }
    let source = String::from_utf8(bytes).map_err(|error| {
        FileProblems::unreadable(
            path,
            Problem::at(
                Loc::default(),
                format!(
                    "the file is not UTF-8 text (invalid byte at offset {})",
                    error.utf8_error().valid_up_to()
                ),
            )
            .help("save the drill as UTF-8"),
        )
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    match parse_source(&source, &dir) {
        Ok(drill) => Ok(LoadedDrill {
            path: path.to_owned(),
            dir,
            drill,
        }),
        Err(mut problems) => {
            problems.sort_by_key(|problem| problem.loc);
            problems.dedup();
            Err(FileProblems {
                path: path.to_owned(),
                source,
                problems,
            })
        }
    }
}

/// Parses and validates drill text; `dir` is where relative paths resolve.
pub fn parse_source(source: &str, dir: &Path) -> Result<Drill, Vec<Problem>> {
    let mut root = yaml::parse(source)
        .map_err(|error| vec![Problem::at(error.loc, error.message).help(error.help)])?;
    let mut problems: Vec<Problem> = yaml::remove_duplicate_keys(&mut root)
        .into_iter()
        .map(|duplicate| {
            Problem::at(
                duplicate.again,
                format!("`{}` is given twice in the same mapping", duplicate.key),
            )
            .help(format!(
                "it is first given at line {}, column {}; keep one of them",
                duplicate.first.line, duplicate.first.column
            ))
        })
        .collect();
    let root = root;
    let Some(entries) = root.as_map() else {
        return Err(vec![
            Problem::at(
                root.loc,
                format!(
                    "expected a drill (a mapping of `version`, `name`, `steps`, ...), found {}",
                    root.describe()
                ),
            )
            .help("start the file with `version: 1`"),
        ]);
    };
    let mut parts = Parts::default();
    for (key, value) in entries {
        let Some(name) = key.as_str() else {
            problems.push(Problem::at(
                key.loc,
                format!("expected a field name, found {}", key.describe()),
            ));
            continue;
        };
        match name {
            "version" => parts.version = Some(value),
            "name" => parts.name = Some(value),
            "description" => parts.description = Some(value),
            "target" => parts.target = Some(value),
            "vars" => parts.vars = Some(value),
            "objectives" => parts.objectives = Some(value),
            "services" => parts.services = Some(value),
            "probes" => parts.probes = Some(value),
            "steady_state" => parts.steady_state = Some(value),
            "guards" => parts.guards = Some(value),
            "data" => parts.data = Some(value),
            "steps" => parts.steps = Some((key, value)),
            _ => problems.push(
                Problem::at(key.loc, format!("unknown field `{name}`")).help(yaml::suggest(
                    name,
                    TOP_LEVEL_FIELDS.iter().copied(),
                    "field",
                )),
            ),
        }
    }

    let mut report = |result: Result<(), DeError>| {
        if let Err(error) = result {
            problems.push(de_problem(error));
        }
    };
    let version: Option<u32> = field(parts.version, &mut report);
    let name: Option<String> = field(parts.name, &mut report);
    let description: Option<String> = field(parts.description, &mut report);
    let target: Option<Target> = field(parts.target, &mut report);
    let vars: Option<BTreeMap<String, String>> = field(parts.vars, &mut report);
    let objectives: Option<Objectives> = field(parts.objectives, &mut report);
    let steady_state = field(parts.steady_state, &mut report);
    let guards = field(parts.guards, &mut report);
    let data: Option<DataSpec> = field(parts.data, &mut report);
    let (services, known_services) = named_map::<Service>(parts.services, &mut report);
    let (probes, known_probes) = named_map::<Probe>(parts.probes, &mut report);
    let mut steps = Vec::new();
    let mut step_nodes = Vec::new();
    let mut unparsed_step_ids = Vec::new();
    let mut unparsed_steps = 0;
    if let Some((_, node)) = parts.steps {
        match &node.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    match yaml::from_node::<Step>(item) {
                        Ok(step) => {
                            steps.push(step);
                            step_nodes.push(item);
                        }
                        Err(mut error) => {
                            if error.message == "missing field `id`" {
                                error.help = Some("give every step an `id` ([a-z0-9-]+) that other steps can name in `needs`, e.g. `- id: restore`".into());
                            }
                            report(Err(error));
                            unparsed_steps += 1;
                            if let Some(id) = map_value(item, "id").and_then(Node::as_str) {
                                unparsed_step_ids.push(id.to_owned());
                            }
                        }
                    }
                }
            }
            _ => report(Err(DeError {
                loc: Some(node.loc),
                message: format!("expected a list of steps, found {}", node.describe()),
                help: Some("write `steps:` followed by `- id: ...` items".into()),
            })),
        }
    }

    let top = Loc { line: 1, column: 1 };
    for (present, field, help) in [
        (
            parts.version.is_some(),
            "version",
            "add `version: 1` at the top of the file",
        ),
        (
            parts.name.is_some(),
            "name",
            "add `name: my-drill` ([a-z0-9-]+)",
        ),
        (
            parts.objectives.is_some(),
            "objectives",
            "add `objectives: {rto: 2m}`: the recovery time objective the drill is scored against",
        ),
        (
            parts.steps.is_some(),
            "steps",
            "add `steps:` with at least one `fault` step and one `recover` step",
        ),
    ] {
        if !present {
            problems.push(Problem::at(top, format!("missing field `{field}`")).help(help));
        }
    }

    let drill = Drill {
        version: version.unwrap_or(1),
        name: name.unwrap_or_default(),
        description,
        target: target.unwrap_or_default(),
        vars: vars.unwrap_or_default(),
        objectives: objectives.unwrap_or(Objectives {
            rto: super::model::Dur(std::time::Duration::from_secs(300)),
            rpo: None,
            min_score: None,
        }),
        services,
        probes,
        steady_state: steady_state.unwrap_or_default(),
        guards: guards.unwrap_or_default(),
        data,
        steps,
    };
    let context = validate::Context {
        dir,
        root: &root,
        step_nodes: &step_nodes,
        steps_key: parts.steps.map(|(key, _)| key.loc),
        unparsed_step_ids: &unparsed_step_ids,
        unparsed_steps,
        known_probes: &known_probes,
        known_services: &known_services,
        version_loc: parts.version.map(|node| node.loc),
        name_loc: parts.name.map(|node| node.loc),
        services_loc: parts.services.map(|node| node.loc),
        target_loc: parts.target.map(|node| node.loc),
    };
    validate::validate(&drill, &context, &mut problems);
    if problems.is_empty() {
        Ok(drill)
    } else {
        Err(problems)
    }
}

#[derive(Default)]
struct Parts<'a> {
    version: Option<&'a Node>,
    name: Option<&'a Node>,
    description: Option<&'a Node>,
    target: Option<&'a Node>,
    vars: Option<&'a Node>,
    objectives: Option<&'a Node>,
    services: Option<&'a Node>,
    probes: Option<&'a Node>,
    steady_state: Option<&'a Node>,
    guards: Option<&'a Node>,
    data: Option<&'a Node>,
    steps: Option<(&'a Node, &'a Node)>,
}

fn field<'a, T: Deserialize<'a>>(
    node: Option<&'a Node>,
    report: &mut impl FnMut(Result<(), DeError>),
) -> Option<T> {
    let node = node?;
    match yaml::from_node::<T>(node) {
        Ok(value) => Some(value),
        Err(error) => {
            report(Err(error));
            None
        }
    }
}

/// A mapping of names to values, each value deserialized on its own; returns
/// the values that parsed and every name, parsed or not, so that references
/// to a broken definition are not reported as missing too.
fn named_map<'a, T: Deserialize<'a>>(
    node: Option<&'a Node>,
    report: &mut impl FnMut(Result<(), DeError>),
) -> (BTreeMap<String, T>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut names = Vec::new();
    let Some(node) = node else {
        return (values, names);
    };
    let entries = match &node.kind {
        NodeKind::Map(entries) => entries,
        NodeKind::Null => return (values, names),
        _ => {
            report(Err(DeError {
                loc: Some(node.loc),
                message: format!(
                    "expected a mapping of names to definitions, found {}",
                    node.describe()
                ),
                help: None,
            }));
            return (values, names);
        }
    };
    for (key, value) in entries {
        let Some(name) = key.as_str() else {
            report(Err(DeError {
                loc: Some(key.loc),
                message: format!("expected a name, found {}", key.describe()),
                help: None,
            }));
            continue;
        };
        names.push(name.to_owned());
        match yaml::from_node::<T>(value) {
            Ok(parsed) => {
                values.insert(name.to_owned(), parsed);
            }
            Err(error) => report(Err(error)),
        }
    }
    (values, names)
}

/// The value under `key` in a mapping node.
pub(crate) fn map_value<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// The key node `key` in a mapping node.
pub(crate) fn map_key<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(k, _)| k)
}

fn de_problem(error: DeError) -> Problem {
    Problem {
        loc: error.loc.unwrap_or(Loc { line: 1, column: 1 }),
        message: error.message,
        help: error.help,
    }
}
