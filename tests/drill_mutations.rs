//! Broken drills never crash firedrill: valid fixture drills are mutated at
//! random (bytes flipped, lines deleted or doubled, the text cut short, YAML
//! punctuation dropped in, keys renamed) and loading must either succeed or
//! report problems that each point at a real place in the file.

use std::path::{Path, PathBuf};

use firedrill::drill::{self, Problem};
use proptest::prelude::*;

fn valid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid")
}

/// The valid fixture drills, read once.
fn valid_drills() -> &'static [Vec<u8>] {
    static DRILLS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    DRILLS.get_or_init(|| {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(valid_dir())
            .expect("tests/fixtures/valid")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no valid fixture drills to mutate");
        paths
            .iter()
            .map(|path| std::fs::read(path).expect("read fixture"))
            .collect()
    })
}

/// Text that often breaks YAML, or a parser's bookkeeping of positions.
const PUNCTUATION: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "*a\n",
    "!!binary ",
    "!tag ",
    "|",
    ">-",
    "'",
    "\"",
    "#",
    "\n---\n",
    "\n...\n",
    "? ",
    "\t",
    "%YAML 1.2\n",
    "<<: *a\n",
    "~",
    "\u{FEFF}",
    "\r",
    "\r\n",
    "\u{0}",
    "\\",
    "é",
    "🔥",
    "${",
    "@",
    "`",
];

/// A change to a drill; each `usize` picks a position, modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(usize, u8),
    DeleteLine(usize),
    DuplicateLine(usize),
    Truncate(usize),
    Insert(usize, &'static str),
    RenameKey(usize, String),
}

/// One of `len` positions.
fn pick(at: usize, len: usize) -> usize {
    if len == 0 { 0 } else { at % len }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::FlipByte(at, byte)),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::sample::select(PUNCTUATION))
            .prop_map(|(at, text)| Mutation::Insert(at, text)),
        (
            any::<usize>(),
            "[a-z_]{0,3}|(version|name|steps|needs|id|fault|recover|probes|services|run|kill)[a-z]?"
        )
            .prop_map(|(at, key)| Mutation::RenameKey(at, key)),
    ]
}

fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::FlipByte(at, byte) => {
            if !bytes.is_empty() {
                let i = pick(*at, bytes.len());
                bytes[i] = *byte;
            }
        }
        Mutation::DeleteLine(at) | Mutation::DuplicateLine(at) => {
            let mut lines = lines_of(bytes);
            if lines.is_empty() {
                return;
            }
            let i = pick(*at, lines.len());
            if matches!(mutation, Mutation::DeleteLine(_)) {
                lines.remove(i);
            } else {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            }
            *bytes = lines.concat();
        }
        Mutation::Truncate(at) => {
            let len = pick(*at, bytes.len() + 1);
            bytes.truncate(len);
        }
        Mutation::Insert(at, text) => {
            let i = pick(*at, bytes.len() + 1);
            bytes.splice(i..i, text.bytes());
        }
        Mutation::RenameKey(at, key) => {
            // The `key:` of a line, after its indentation and any `- `.
            let mut lines = lines_of(bytes);
            let keyed: Vec<usize> = (0..lines.len())
                .filter(|&i| {
                    let line = String::from_utf8_lossy(&lines[i]);
                    let body = line.trim_start().trim_start_matches("- ");
                    body.find(':').is_some_and(|colon| {
                        colon > 0
                            && body[..colon]
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                })
                .collect();
            if keyed.is_empty() {
                return;
            }
            let i = keyed[pick(*at, keyed.len())];
            let line = lines[i].clone();
            let indent = line.iter().take_while(|&&b| b == b' ' || b == b'-').count();
            let colon = indent
                + line[indent..]
                    .iter()
                    .position(|&b| b == b':')
                    .expect("keyed line");
            let mut renamed = line[..indent].to_vec();
            renamed.extend(key.bytes());
            renamed.extend(&line[colon..]);
            lines[i] = renamed;
            *bytes = lines.concat();
        }
    }
}

/// One of the valid drills, picked by `which`, with `mutations` applied.
fn mutated(which: usize, mutations: &[Mutation]) -> Vec<u8> {
    let drills = valid_drills();
    let mut bytes = drills[pick(which, drills.len())].clone();
    for mutation in mutations {
        apply(&mut bytes, mutation);
    }
    bytes
}

/// Every problem points inside the text: a line that exists (or the one
/// just past the end, where a parser runs out of input) and a column on it.
fn assert_located(problems: &[Problem], text: &str) -> Result<(), TestCaseError> {
    // Line breaks as YAML counts them: `\n`, `\r\n` and a lone `\r`.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(!problems.is_empty(), "an error with no problems in it");
    for problem in problems {
        prop_assert!(
            !problem.message.trim().is_empty(),
            "a problem without a message: {problem:?}"
        );
        let line = problem.loc.line as usize;
        prop_assert!(
            line >= 1 && line <= lines.len() + 1,
            "line out of the file: {problem:?}\n{text}"
        );
        let width = lines.get(line - 1).map_or(0, |l| l.chars().count());
        let column = problem.loc.column as usize;
        prop_assert!(
            column >= 1 && column <= width + 2,
            "column out of line {line}: {problem:?}\n{text}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// `parse_source` on mutated text: `Ok`, or located problems; never a panic.
    #[test]
    fn mutated_text_parses_or_reports_located_problems(
        which in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let bytes = mutated(which, &mutations);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(problems) = drill::parse_source(&text, &valid_dir()) {
            assert_located(&problems, &text)?;
        }
    }

    /// `load` on mutated bytes (which may be binary or not UTF-8): the file
    /// loads, or its problems are located and render without a panic.
    #[test]
    fn mutated_files_load_or_render_located_problems(
        which in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let bytes = mutated(which, &mutations);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("drill.yaml");
        std::fs::write(&path, &bytes).expect("write the mutated drill");
        if let Err(report) = drill::load(&path) {
            let shown = String::from_utf8_lossy(&bytes).into_owned();
            assert_located(&report.problems, &shown)?;
            let rendered = report.render(false);
            let first = &report.problems[0];
            let place = format!("{}:{}:{}: ", path.display(), first.loc.line, first.loc.column);
            prop_assert!(rendered.contains(&place), "`{place}` not in:\n{rendered}");
        }
    }
}

#[test]
fn renaming_a_key_is_a_mutation_that_happens() {
    // Guards the mutation above: a rename that never matched would make the
    // properties weaker without failing.
    let mut bytes = b"version: 1\n  - id: a\n".to_vec();
    apply(&mut bytes, &Mutation::RenameKey(1, "idd".into()));
    assert_eq!(String::from_utf8_lossy(&bytes), "version: 1\n  - idd: a\n");
}
