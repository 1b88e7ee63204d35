//! The crate's layering: no cycle among the top-level modules of `src/`, nor
//! among the children of any directory module (`src/engine/`, `src/target/`…).
//!
//! A module's dependencies are the `crate::`, `super::` and `self::` paths its
//! files name (in `use` items, braced groups and inline paths; comments are
//! ignored). A cycle means
//! two modules can only be understood, tested and changed together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Child module name → the Rust files that make it up, for the module whose
/// directory is `dir` (`src/` for the top level). `lib.rs`, `main.rs` and
/// `mod.rs` belong to the parent, not to a child.
fn modules(dir: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("module directory is readable") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("UTF-8 file names")
            .to_owned();
        if ["lib", "main", "mod"].contains(&name.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        } else {
            continue;
        }
        modules.entry(name).or_insert_with(Vec::new).extend(files);
    }
    modules
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("module directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The module path of the file at `file` (`src/engine/step.rs` is
/// `engine::step`, `src/target/kind/mod.rs` is `target::kind`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("file under src/");
    let mut path: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|part| part.as_os_str().to_str().expect("UTF-8 paths").to_owned())
        .collect();
    if path
        .last()
        .is_some_and(|last| ["mod", "lib", "main"].contains(&last.as_str()))
    {
        path.pop();
    }
    path
}

/// Every path `source` names through `crate::`, `super::` or `self::`,
/// resolved to a path from the crate root, for a file whose module path is
/// `module` (inline `mod name { … }` blocks are followed); each member of a
/// braced group `use crate::{a, b::{c, d}}` counts. Comments are ignored.
fn references(source: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let code: String = source
        .lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let inline = inline_modules(&code);
    let mut found = BTreeSet::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let Some(keyword) = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|keyword| rest.starts_with(keyword))
        else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let preceded = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        if preceded {
            at += keyword.len();
            continue;
        }
        let mut here: Vec<String> = module.to_vec();
        for (start, end, name) in &inline {
            if *start < at && at < *end {
                here.push(name.clone());
            }
        }
        let base = match keyword {
            "crate::" => Vec::new(),
            "super::" => here[..here.len().saturating_sub(1)].to_vec(),
            _ => here,
        };
        let consumed = resolve(&rest[keyword.len()..], base, &mut found);
        at += keyword.len() + consumed.max(1);
    }
    found
}

/// Follows one path from `base` through `text`; returns how much of `text`
/// it took.
fn resolve(text: &str, mut base: Vec<String>, found: &mut BTreeSet<Vec<String>>) -> usize {
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for member in split_top_level(&group[..end]) {
                let member = member.trim_start();
                resolve(member, base.clone(), found);
            }
            found.insert(base);
            return at + 1 + end;
        }
        let Some(ident) = leading_ident(rest) else {
            if !base.is_empty() {
                found.insert(base);
            }
            return at;
        };
        at += ident.len();
        match ident.as_str() {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => base.push(ident),
        }
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            found.insert(base);
            return at;
        }
    }
}

/// Each inline `mod name { … }` block of `code`: where it starts and ends,
/// and its name.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("mod ") {
        let at = from + found;
        from = at + 4;
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let Some(name) = leading_ident(code[from..].trim_start()) else {
            continue;
        };
        let after = code[from..].trim_start()[name.len()..].trim_start();
        if let Some(body) = after.strip_prefix('{') {
            let open = code.len() - body.len();
            blocks.push((open, open + matching_brace(body), name));
        }
    }
    blocks
}

/// Every top-level module named after `crate::` in `source` (a file of a
/// top-level module), including each member of a braced group.
fn crate_references(source: &str) -> BTreeSet<String> {
    references(source, &["file".to_owned()])
        .into_iter()
        .filter_map(|path| path.into_iter().next())
        .collect()
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return index,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn leading_ident(text: &str) -> Option<String> {
    let ident: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty()).then_some(ident)
}

/// The dependency graph among the children of the module at `parent` (a
/// module path, empty for the crate root).
fn graph(src: &Path, parent: &[String]) -> Graph {
    let modules = modules(
        &parent
            .iter()
            .fold(src.to_path_buf(), |dir, part| dir.join(part)),
    );
    let mut graph = Graph::new();
    for (name, files) in &modules {
        let edges = graph.entry(name.clone()).or_default();
        for file in files {
            let source = std::fs::read_to_string(file).expect("source file is readable");
            for path in references(&source, &module_path(src, file)) {
                if let Some(target) = path.strip_prefix(parent).and_then(|rest| rest.first())
                    && target != name
                    && modules.contains_key(target)
                {
                    edges.insert(target.clone());
                }
            }
        }
    }
    graph
}

/// One cycle through each strongly connected component of more than one
/// module, as `a → b → … → a`.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(node) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut cycles = Vec::new();
    let mut covered = BTreeSet::new();
    for start in graph.keys() {
        if covered.contains(start) || !reaches(start).contains(start) {
            continue;
        }
        // Shortest way back to `start`, by breadth-first search.
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        'search: while let Some(node) = queue.pop_front() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    previous.insert(start.clone(), node.clone());
                    break 'search;
                }
                if !previous.contains_key(next) {
                    previous.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut cycle = vec![start.clone()];
        let mut node = previous[start].clone();
        while &node != start {
            cycle.push(node.clone());
            node = previous[&node].clone();
        }
        cycle.push(start.clone());
        cycle.reverse();
        let component: BTreeSet<String> = reaches(start)
            .into_iter()
            .filter(|other| reaches(other).contains(start))
            .collect();
        covered.extend(component);
        cycles.push(cycle);
    }
    cycles
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src, &[]);
    assert!(graph.len() > 5, "found the modules of src/: {graph:?}");
    let cycles = cycles(&graph);
    let shown: Vec<String> = cycles.iter().map(|cycle| cycle.join(" → ")).collect();
    assert!(
        cycles.is_empty(),
        "top-level modules of src/ depend on each other in a cycle:\n  {}\nmodule graph: {graph:#?}",
        shown.join("\n  ")
    );
}

/// Every module of `src/` that is a directory, as its module path.
fn directory_modules(dir: &Path, parent: &[String], found: &mut Vec<Vec<String>>) {
    for entry in std::fs::read_dir(dir).expect("module directory is readable") {
        let path = entry.expect("directory entry").path();
        if !path.is_dir() {
            continue;
        }
        let mut module = parent.to_vec();
        module.push(
            path.file_name()
                .and_then(|name| name.to_str())
                .expect("UTF-8 file names")
                .to_owned(),
        );
        directory_modules(&path, &module, found);
        found.push(module);
    }
}

#[test]
fn submodules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut directories = Vec::new();
    directory_modules(&src, &[], &mut directories);
    let mut found = Vec::new();
    let mut checked = Vec::new();
    for module in directories {
        let name = module.join("::");
        let graph = graph(&src, &module);
        for cycle in cycles(&graph) {
            found.push(format!("{name}: {}", cycle.join(" → ")));
        }
        checked.push((name, graph));
    }
    assert!(
        checked
            .iter()
            .any(|(name, graph)| name == "engine" && graph.len() > 5),
        "found the submodules of src/engine/: {checked:?}"
    );
    assert!(
        found.is_empty(),
        "submodules of a directory of src/ depend on each other in a cycle:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn super_and_self_paths_resolve_from_the_file() {
    let module = ["engine".to_owned(), "step".to_owned()];
    let source = "use super::{task::StepTask, shared::{self, Shared}};\n\
                  use crate::engine::recover::follow;\n\
                  fn f() { super::manual::by_hand(); self::local(); }\n\
                  mod tests { use super::*; use super::super::stop::X; }\n";
    let found: Vec<String> = references(source, &module)
        .into_iter()
        .map(|path| path.join("::"))
        .collect();
    assert_eq!(
        found,
        [
            "engine",
            "engine::manual::by_hand",
            "engine::recover::follow",
            "engine::shared",
            "engine::shared::Shared",
            "engine::step",
            "engine::step::local",
            "engine::stop::X",
            "engine::task::StepTask",
        ]
    );
}

#[test]
fn references_are_found_in_groups_and_paths_but_not_comments() {
    let source = "use crate::{drill::{self, Drill}, plan};\n\
                  // crate::engine is only mentioned\n\
                  fn f() { crate::score::compute(); mycrate::x(); }\n";
    let found: Vec<String> = crate_references(source).into_iter().collect();
    assert_eq!(found, ["drill", "plan", "score"]);
}

#[test]
fn a_cycle_is_reported_with_its_path() {
    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(name, edges)| {
        (
            name.to_owned(),
            edges.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c", "a"]]);
}
