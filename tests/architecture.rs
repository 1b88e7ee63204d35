//! The crate's layering: no cycle among the top-level modules of `src/`.
//!
//! A module's dependencies are the `crate::X` paths its files name (in `use`
//! items, braced groups and inline paths; comments are ignored). A cycle means
//! two modules can only be understood, tested and changed together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level module name → the Rust files that make it up.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src/ is readable") {
        let path = entry.expect("src/ entry").path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("UTF-8 file names")
            .to_owned();
        if name == "lib" || name == "main" {
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

/// Every top-level module named after `crate::` in `source`, including each
/// member of a braced `use crate::{a, b::c}` group.
fn crate_references(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for member in split_top_level(&group[..end]) {
                if let Some(name) = leading_ident(member.trim()) {
                    found.insert(name);
                }
            }
        } else if let Some(name) = leading_ident(rest) {
            found.insert(name);
        }
    }
    found
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

fn graph(src: &Path) -> Graph {
    let modules = modules(src);
    let mut graph = Graph::new();
    for (name, files) in &modules {
        let edges = graph.entry(name.clone()).or_default();
        for file in files {
            let source = std::fs::read_to_string(file).expect("source file is readable");
            for target in crate_references(&source) {
                if &target != name && modules.contains_key(&target) {
                    edges.insert(target);
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
    let graph = graph(&src);
    assert!(graph.len() > 5, "found the modules of src/: {graph:?}");
    let cycles = cycles(&graph);
    let shown: Vec<String> = cycles.iter().map(|cycle| cycle.join(" → ")).collect();
    assert!(
        cycles.is_empty(),
        "top-level modules of src/ depend on each other in a cycle:\n  {}\nmodule graph: {graph:#?}",
        shown.join("\n  ")
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
