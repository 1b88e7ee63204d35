//! Reading a drill file: every part deserialized on its own, so that all the
//! problems of a file are reported together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::diag::{FileProblems, Problem};
use super::model::{DataSpec, Drill, Objectives, Probe, RawStep, ScopeSpec, Service, Target};
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
    "scope",
    "vars",
    "objectives",
    "services",
    "probes",
    "steady_state",
    "guards",
    "detect",
    "data",
    "steps",
];

/// Loads and validates one drill file, collecting every problem in it.
pub fn load(path: &Path) -> Result<LoadedDrill, FileProblems> {
    let bytes =
        crate::bounded::read_regular(path, crate::bounded::MAX_INPUT_FILE).map_err(|error| {
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
    if let Some(nul) = bytes.iter().position(|&byte| byte == 0) {
        return Err(FileProblems::unreadable(
            path,
            Problem::at(
                loc_of_byte(&bytes, nul),
                "this is a binary file, not a YAML drill: it has a NUL byte at this position",
            )
            .help("a drill is a YAML text file; `firedrill schema` describes its format"),
        ));
    }
    let source = match String::from_utf8(bytes) {
        Ok(source) => source,
        Err(error) => {
            let bytes = error.as_bytes();
            let bad = error.utf8_error().valid_up_to();
            // Shown with the bad bytes replaced, so the user sees where they are.
            return Err(FileProblems {
                path: path.to_owned(),
                source: lone_cr_to_lf(&String::from_utf8_lossy(bytes)).into_owned(),
                problems: vec![
                    Problem::at(
                        loc_of_byte(bytes, bad),
                        format!(
                            "the file is not UTF-8 text: byte 0x{:02X} here is not valid UTF-8 (shown as \u{FFFD})",
                            bytes[bad]
                        ),
                    )
                    .help("save the drill as UTF-8; other encodings such as Latin-1 or UTF-16 are not read"),
                ],
            });
        }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    // Rendered from the same text the locations were counted in.
    let source = lone_cr_to_lf(&source).into_owned();
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

/// Line and column (in characters, as a text editor counts them) of a byte
/// offset in a file that may not be valid UTF-8.
fn loc_of_byte(bytes: &[u8], offset: usize) -> Loc {
    let before = &bytes[..offset.min(bytes.len())];
    // Line breaks as YAML counts them: `\n`, and a `\r` not followed by `\n`.
    let is_break =
        |i: usize| before[i] == b'\n' || (before[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
    let line_start = (0..before.len())
        .rev()
        .find(|&i| is_break(i))
        .map_or(0, |i| i + 1);
    let line = (0..before.len()).filter(|&i| is_break(i)).count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Loc {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

/// YAML counts a lone `\r` (old Mac line ends) as a line break and so
/// reports lines by it; as `\n` it means the same to YAML, and the lines
/// shown under an error are the lines the parser counted.
fn lone_cr_to_lf(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let lone = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut fixed = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            fixed.push('\n');
        } else {
            fixed.push(c);
        }
    }
    std::borrow::Cow::Owned(fixed)
}

/// Parses and validates drill text; `dir` is where relative paths resolve.
pub fn parse_source(source: &str, dir: &Path) -> Result<Drill, Vec<Problem>> {
    let source = lone_cr_to_lf(source);
    let mut root = yaml::parse(&source)
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
            .help(if matches!(root.kind, NodeKind::Seq(_)) {
                "a drill's top-level fields are keys, not list items: remove the leading `- `"
            } else {
                "start the file with `version: 1`, then `name:`, `objectives:` and `steps:`, each on its own line"
            }),
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
            "scope" => parts.scope = Some(value),
            "vars" => parts.vars = Some(value),
            "objectives" => parts.objectives = Some(value),
            "services" => parts.services = Some(value),
            "probes" => parts.probes = Some(value),
            "steady_state" => parts.steady_state = Some(value),
            "guards" => parts.guards = Some(value),
            "detect" => parts.detect = Some(value),
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
    let version: Option<u32> = field("version", parts.version, &mut report);
    let name: Option<String> = field("name", parts.name, &mut report);
    let description: Option<String> = field("description", parts.description, &mut report);
    let target: Option<Target> = field("target", parts.target, &mut report);
    let scope: Option<ScopeSpec> = field("scope", parts.scope, &mut report);
    let vars: Option<BTreeMap<String, String>> = field("vars", parts.vars, &mut report);
    let objectives: Option<Objectives> = field("objectives", parts.objectives, &mut report);
    let steady_state = field("steady_state", parts.steady_state, &mut report);
    let guards = field("guards", parts.guards, &mut report);
    let detect = field("detect", parts.detect, &mut report);
    let data: Option<DataSpec> = field("data", parts.data, &mut report);
    let (services, known_services) = named_map::<Service>("services", parts.services, &mut report);
    let (probes, known_probes) = named_map::<Probe>("probes", parts.probes, &mut report);
    let mut steps = Vec::new();
    let mut step_nodes = Vec::new();
    let mut unparsed_step_ids = Vec::new();
    let mut unparsed_steps = 0;
    if let Some((_, node)) = parts.steps {
        match &node.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    match yaml::from_node::<RawStep>(item) {
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
                            if let Some(id) = item.map_value("id").and_then(Node::as_str) {
                                unparsed_step_ids.push(id.to_owned());
                            }
                        }
                    }
                }
            }
            _ => {
                // Not a list: the checks that need every step are skipped.
                unparsed_steps += 1;
                report(Err(DeError {
                    loc: Some(node.loc),
                    message: format!(
                        "`steps`: expected a list of steps, found {}",
                        node.describe()
                    ),
                    help: Some("write `steps:` followed by `- id: ...` items".into()),
                }));
            }
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

    let mut drill = Drill {
        version: version.unwrap_or(1),
        name: name.unwrap_or_default(),
        description,
        target: target.unwrap_or_default(),
        scope,
        vars: vars.unwrap_or_default(),
        objectives: objectives.unwrap_or(Objectives {
            rto: super::model::Dur(std::time::Duration::from_secs(300)),
            rpo: None,
            min_score: None,
            expect_outage: None,
            settle: None,
        }),
        services,
        probes,
        steady_state: steady_state.unwrap_or_default(),
        guards: guards.unwrap_or_default(),
        detect: detect.unwrap_or_default(),
        data,
        steps: Vec::new(),
    };
    let context = validate::Context {
        dir,
        root: &root,
        step_nodes: &step_nodes,
        steps_key: parts.steps.map(|(key, _)| key.loc),
        unparsed_step_ids: &unparsed_step_ids,
        unparsed_steps,
        known_probes: &known_probes,
        probe_set: &known_probes.iter().map(String::as_str).collect(),
        known_services: &known_services,
        version_loc: parts.version.map(|node| node.loc),
        name_loc: parts.name.map(|node| node.loc),
        services_loc: parts.services.map(|node| node.loc),
        target_loc: parts.target.map(|node| node.loc),
        scope_loc: parts.scope.map(|node| node.loc),
        scope: drill.blast_radius(
            dir,
            steps
                .iter()
                .filter_map(|step| step.apply.as_ref())
                .flatten()
                .map(|path| path.value.as_str()),
        ),
    };
    drill.steps = validate::validate(&drill, &steps, &context, &mut problems);
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
    scope: Option<&'a Node>,
    vars: Option<&'a Node>,
    objectives: Option<&'a Node>,
    services: Option<&'a Node>,
    probes: Option<&'a Node>,
    steady_state: Option<&'a Node>,
    guards: Option<&'a Node>,
    detect: Option<&'a Node>,
    data: Option<&'a Node>,
    steps: Option<(&'a Node, &'a Node)>,
}

/// The top-level field `name`, if present and well-formed.
fn field<'a, T: Deserialize<'a>>(
    name: &str,
    node: Option<&'a Node>,
    report: &mut impl FnMut(Result<(), DeError>),
) -> Option<T> {
    let node = node?;
    match yaml::from_node::<T>(node) {
        Ok(value) => Some(value),
        Err(error) => {
            let mut error = error.in_field(name, node.loc);
            // Only for the field's own value: a bad `rto` inside it has its own message.
            if error.help.is_none() && error.loc == Some(node.loc) {
                error.help = field_help(name).map(str::to_owned);
            }
            report(Err(error));
            None
        }
    }
}

/// What a top-level field looks like, for errors that have no better help.
fn field_help(name: &str) -> Option<&'static str> {
    match name {
        "version" => Some("the format version is the number 1: write `version: 1`"),
        "target" => Some(
            "`target: local` (the default), `target: {kind: {cluster: NAME, config: PATH}}` for a kind cluster, or `target: {cluster: {kubeconfig: PATH, context: NAME, uid: UID}}` for an existing cluster",
        ),
        "objectives" => Some(
            "`objectives: {rto: 2m}`: the recovery time objective is required; `rpo` and `min_score` are optional",
        ),
        _ => None,
    }
}

/// A mapping of names to values, each value deserialized on its own; returns
/// the values that parsed and every name, parsed or not, so that references
/// to a broken definition are not reported as missing too.
fn named_map<'a, T: Deserialize<'a>>(
    section: &str,
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
                    "`{section}`: expected a mapping of names to definitions, found {}",
                    node.describe()
                ),
                help: Some(format!(
                    "write each one as `name:` indented under `{section}:`, with its definition below it"
                )),
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
            Err(error) => report(Err(error.in_field(name, value.loc))),
        }
    }
    (values, names)
}

fn de_problem(error: DeError) -> Problem {
    Problem {
        loc: error.loc.unwrap_or(Loc { line: 1, column: 1 }),
        message: error.message,
        help: error.help,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_locations_count_lines_and_characters_as_yaml_and_editors_do() {
        let bytes = b"a: \xc3\xa9\r\nb: x\rc: \xff";
        assert_eq!(loc_of_byte(bytes, 5), Loc { line: 1, column: 5 });
        assert_eq!(loc_of_byte(bytes, 7), Loc { line: 2, column: 1 });
        assert_eq!(
            loc_of_byte(bytes, bytes.len() - 1),
            Loc { line: 3, column: 4 }
        );
    }

    #[test]
    fn lone_carriage_returns_become_line_feeds_and_crlf_stays() {
        assert_eq!(lone_cr_to_lf("a\rb\r\nc\r"), "a\nb\r\nc\n");
        assert!(matches!(
            lone_cr_to_lf("a\r\nb\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
