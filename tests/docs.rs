//! The reference in `docs/` must describe what firedrill accepts. This test
//! keeps it honest, as `tests/readme.rs` does for the README's drill:
//!
//! 1. Every ```` ```yaml ```` block in `docs/*.md` validates. A block that
//!    starts with `version: 1` is a complete drill. Any other block is a
//!    fragment: its top-level keys are merged into a small valid drill (a
//!    `run` fault and a `run` recovery) — lists appended, maps joined, other
//!    values replaced; a block that is a list is taken as `steps` — and the
//!    result must validate. A fragment that cannot stand alone is marked with
//!    the HTML comment `<!-- fragment -->` on the last non-blank line before
//!    its fence, and is skipped.
//!    Drills are written to `scenarios/` in a temporary directory beside
//!    copies of the repository's `runbooks/`, `manifests/` and
//!    `kind-configs/`, so `../runbooks/web-restore.md` resolves as it does
//!    for the drills in the repository.
//! 2. Every ```` ````markdown ```` block in `docs/runbooks.md` is a runbook
//!    that `firedrill runbook lint` finds nothing in (same marker to skip).
//! 3. Every property name of `firedrill schema` appears in
//!    `docs/drill-format.md` as `` `name` ``: a new drill key fails this
//!    test until it is documented.
//! 4. Every command of `firedrill --help` (and of its subcommands) is a
//!    heading of `docs/cli.md`, and every long option of each command
//!    appears in `docs/cli.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

const FRAGMENT_MARKER: &str = "<!-- fragment -->";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn firedrill() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_firedrill"));
    command.env("NO_COLOR", "1");
    command
}

fn read_doc(name: &str) -> String {
    let path = root().join("docs").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn doc_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .collect();
    names.sort();
    names
}

/// A fenced code block of a Markdown file.
struct Block {
    /// `drill-format.md:42`, the line of the opening fence.
    place: String,
    /// The fence's language (`yaml`, `markdown`, ...).
    lang: String,
    text: String,
    /// Marked `<!-- fragment -->`: not checked.
    marked: bool,
}

/// The fenced blocks of a Markdown text. An opening fence is three or more
/// backticks, indented less than four spaces; it closes at a line of at
/// least as many backticks and nothing else.
fn blocks(file: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let indent = line.len() - line.trim_start().len();
        let ticks = line.trim_start().chars().take_while(|c| *c == '`').count();
        if indent >= 4 || ticks < 3 {
            index += 1;
            continue;
        }
        let lang = line.trim_start()[ticks..]
            .split(|c: char| c.is_whitespace() || c == '{')
            .next()
            .unwrap_or("")
            .to_owned();
        let marked = lines[..index]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim() == FRAGMENT_MARKER);
        let mut end = index + 1;
        while end < lines.len() {
            let close = lines[end].trim();
            if close.len() >= ticks && close.chars().all(|c| c == '`') {
                break;
            }
            end += 1;
        }
        let mut body = lines[index + 1..end.min(lines.len())].join("\n");
        body.push('\n');
        found.push(Block {
            place: format!("{file}:{}", index + 1),
            lang,
            text: body,
            marked,
        });
        index = end + 1;
    }
    found
}

/// A scratch repository: `scenarios/` for the drills, and copies of the
/// files the docs' drills refer to.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for sub in ["runbooks", "manifests", "kind-configs"] {
        let to = dir.path().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(root().join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    dir
}

/// The drill every fragment is merged into: valid on the local and the kind
/// target, and referring to nothing.
fn base_drill() -> Value {
    json!({
        "version": 1,
        "name": "docs-example",
        "objectives": {"rto": "1m"},
        "steps": [
            {"id": "docs-fault", "fault": {"run": "true"}},
            {"id": "docs-recover", "needs": ["docs-fault"], "recover": {"run": "true"}}
        ]
    })
}

/// The fragment's keys merged into the base drill; JSON is YAML, so the
/// result is a drill file as it is.
fn embed(place: &str, fragment: &str) -> String {
    let parsed: Value = serde_saphyr::from_str(fragment)
        .unwrap_or_else(|error| panic!("{place}: the YAML block does not parse: {error}"));
    let fragment = match parsed {
        Value::Object(map) => map,
        Value::Array(steps) => Map::from_iter([("steps".to_owned(), Value::Array(steps))]),
        other => panic!(
            "{place}: a YAML block must be a drill, top-level drill keys or a list of steps, found {other}; mark it {FRAGMENT_MARKER} if it cannot stand alone"
        ),
    };
    let mut drill = base_drill();
    let Value::Object(base) = &mut drill else {
        unreachable!("the base drill is a map")
    };
    for (key, value) in fragment {
        let merged = match (base.remove(&key), value) {
            (Some(Value::Array(ours)), Value::Array(mut theirs)) => {
                theirs.extend(ours);
                Value::Array(theirs)
            }
            (Some(Value::Object(mut ours)), Value::Object(theirs)) => {
                ours.extend(theirs);
                Value::Object(ours)
            }
            (_, theirs) => theirs,
        };
        base.insert(key, merged);
    }
    serde_json::to_string_pretty(&drill).unwrap()
}

#[test]
fn every_yaml_example_in_docs_validates() {
    let dir = scratch();
    let mut written = Vec::new();
    for name in doc_names() {
        for block in blocks(&name, &read_doc(&name)) {
            if block.lang != "yaml" || block.marked {
                continue;
            }
            let text = if block.text.starts_with("version: 1\n") {
                block.text.clone()
            } else {
                embed(&block.place, &block.text)
            };
            let file = dir
                .path()
                .join("scenarios")
                .join(format!("{}.yaml", block.place.replace([':', '.'], "-")));
            std::fs::write(&file, text).unwrap();
            written.push(block.place);
        }
    }
    // The drill format alone has a dozen examples: far fewer means the
    // fences were not found, not that there is nothing to check.
    assert!(written.len() >= 12, "only {written:?} found");
    let output = firedrill()
        .arg("validate")
        .arg(dir.path().join("scenarios"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "a YAML example in docs/ does not validate (file names are doc-line):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_runbook_example_in_docs_lints_clean() {
    let dir = scratch();
    let mut files: Vec<PathBuf> = Vec::new();
    for block in blocks("runbooks.md", &read_doc("runbooks.md")) {
        if block.lang != "markdown" || block.marked {
            continue;
        }
        let file = dir
            .path()
            .join("runbooks")
            .join(format!("{}.md", block.place.replace([':', '.'], "-")));
        std::fs::write(&file, &block.text).unwrap();
        files.push(file);
    }
    assert!(!files.is_empty(), "docs/runbooks.md has no runbook example");
    let output = firedrill()
        .args(["runbook", "lint"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "a runbook example in docs/runbooks.md has lint findings:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every key of every `properties` in the schema, `$defs` included.
fn property_names(schema: &Value, names: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                names.extend(properties.keys().cloned());
            }
            for value in map.values() {
                property_names(value, names);
            }
        }
        Value::Array(items) => {
            for item in items {
                property_names(item, names);
            }
        }
        _ => {}
    }
}

#[test]
fn every_drill_key_is_documented() {
    let output = firedrill().arg("schema").output().unwrap();
    assert!(output.status.success());
    let schema: Value = serde_json::from_slice(&output.stdout).expect("the schema is JSON");
    let mut names = BTreeSet::new();
    property_names(&schema, &mut names);
    assert!(
        names.len() > 40,
        "the schema walk found only {names:?}: did the schema's shape change?"
    );
    let doc = read_doc("drill-format.md");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "drill keys missing from docs/drill-format.md (write each as `name`): {missing:?}"
    );
}

/// `firedrill <path> -h`: the short help, one line per option.
fn help(path: &[&str]) -> String {
    let output = firedrill().args(path).arg("-h").output().unwrap();
    assert!(output.status.success(), "firedrill {path:?} -h failed");
    String::from_utf8(output.stdout).unwrap()
}

/// The lines of a `Commands:` or `Options:` section of clap's short help.
fn section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|line| line.trim() != title)
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect()
}

fn subcommands(help: &str) -> Vec<String> {
    section(help, "Commands:")
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn long_options(help: &str) -> Vec<String> {
    section(help, "Options:")
        .iter()
        .filter(|line| line.trim_start().starts_with('-'))
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with("--"))
                // `--verbose...`, `--var,`: the name alone.
                .map(|word| {
                    word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                        .to_owned()
                })
        })
        .collect()
}

#[test]
fn every_command_and_option_is_documented() {
    let doc = read_doc("cli.md");
    let headings: Vec<&str> = doc.lines().filter(|l| l.starts_with('#')).collect();
    let mut missing = Vec::new();
    let mut options = long_options(&help(&[]));
    let mut queue: Vec<Vec<String>> = subcommands(&help(&[]))
        .into_iter()
        .map(|command| vec![command])
        .collect();
    assert!(queue.len() >= 8, "`firedrill --help` lists only {queue:?}");
    while let Some(path) = queue.pop() {
        let name = format!("firedrill {}", path.join(" "));
        if !headings.iter().any(|heading| heading.contains(&name)) {
            missing.push(format!("heading for `{name}`"));
        }
        // clap's own `help` has no options of its own to document.
        if path.last().is_some_and(|last| last == "help") {
            continue;
        }
        let words: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&words);
        options.extend(long_options(&text));
        for sub in subcommands(&text) {
            if sub != "help" {
                let mut deeper = path.clone();
                deeper.push(sub);
                queue.push(deeper);
            }
        }
    }
    options.sort();
    options.dedup();
    for option in options {
        if !doc.contains(&format!("`{option}")) {
            missing.push(format!("option `{option}`"));
        }
    }
    assert!(missing.is_empty(), "docs/cli.md lacks: {missing:?}");
}
