//! A small std-only mutation fuzzer for what firedrill reads from files it
//! does not control: drill files, runbooks, `events.jsonl` (resume and
//! clean read a dead run's records) and step outputs. Each target starts
//! from its corpus in `tests/fuzz/corpus/<target>/`, mutates it at random
//! (seeded, so a failure is replayed by its seed) and checks that the reader
//! never panics and keeps its contract.
//!
//! `cargo test --test fuzz` runs a brief pass (as CI does); for a longer
//! hunt: `FIREDRILL_FUZZ_ITERATIONS=200000 FIREDRILL_FUZZ_SEED=7 cargo test
//! --release --test fuzz`. A failure prints the seed, the iteration and the
//! input; add that input to the corpus once fixed.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

/// xorshift64*: enough randomness for mutations, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that often break parsers: YAML and Markdown punctuation,
/// JSON structure, cut UTF-8, control characters, huge numbers.
const FRAGMENTS: &[&[u8]] = &[
    b":",
    b": ",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"|",
    b">-",
    b"'",
    b"\"",
    b"#",
    b"\n---\n",
    b"? ",
    b"\t",
    b"<<: *a\n",
    b"~",
    b"```",
    b"```sh\n",
    b"```sh {timeout=",
    b"\n## ",
    b"# ",
    b"${",
    b"}",
    b"\"event\":",
    b"\"run_started\"",
    b"null",
    b"18446744073709551616",
    b"-1",
    b"1e999",
    b"\xc3",
    b"\xe2\x82",
    b"\xff",
    b"\x1b[2J",
    b"\0",
    b"\r\n",
    b"<<EOF\n",
    b"\nEOF\n",
    b"=",
    b"\n",
    b"99999999999999999999h",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())];
                bytes.splice(at..at, fragment.iter().copied());
            }
            2 => {
                let end = (at + rng.below(64)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => bytes.truncate(at),
            4 => {
                // Duplicate a stretch (a repeated line, key or event).
                let end = (at + rng.below(128)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            5 if !corpus.is_empty() => {
                // Splice in a piece of another corpus entry.
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(256)).min(other.len());
                bytes.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i.min(bytes.len()), rng.next() as u8);
            }
        }
    }
    bytes
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let inputs: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!inputs.is_empty(), "empty corpus {}", dir.display());
    inputs
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `check` on the corpus and on mutations of it; a panic (or a broken
/// contract, asserted inside `check`) fails with what reproduces it.
fn fuzz(target: &str, default_iterations: u64, check: impl Fn(&[u8])) {
    let inputs = corpus(target);
    let iterations = setting("FIREDRILL_FUZZ_ITERATIONS", default_iterations);
    let seed = setting("FIREDRILL_FUZZ_SEED", 0x5eed) | 1;
    let mut rng = Rng(seed);
    for input in &inputs {
        check(input);
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for iteration in 0..iterations {
        let base = &inputs[rng.below(inputs.len())];
        let input = mutate(&mut rng, base, &inputs);
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| check(&input))) {
            std::panic::set_hook(previous);
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "fuzz target `{target}` failed (FIREDRILL_FUZZ_SEED={seed}, iteration {iteration}): {why}\ninput: {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
    std::panic::set_hook(previous);
}

#[test]
fn the_drill_loader_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    fuzz("drill", 1500, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Err(problems) = firedrill::drill::parse_source(&text, dir.path()) {
            assert!(!problems.is_empty(), "an error with no problem in it");
        }
    });
}

#[test]
fn the_runbook_parser_never_panics() {
    fuzz("runbook", 1500, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let _ = firedrill::runbook::parse(Path::new("fuzz.md"), &text);
    });
}

/// `events.jsonl` of a dead run, damaged any way: reading it never fails
/// (bad lines are skipped) and `resume`/`clean`'s loader never panics.
#[test]
fn the_events_reader_never_panics_or_refuses_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    fuzz("events", 1500, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let events = firedrill::event::read_events(&path).expect("any bytes are read");
        assert!(events.len() <= bytes.split(|b| *b == b'\n').count());
        let _ = firedrill::engine::resume::Resume::load(dir.path());
    });
}

/// Step outputs: parsed or refused with a line inside the file; what is
/// accepted never sets a reserved name.
#[test]
fn the_step_output_parser_keeps_its_rules() {
    fuzz("outputs", 3000, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match firedrill::outputs::parse(&text) {
            Ok(outputs) => {
                for name in outputs.keys() {
                    assert!(!firedrill::vars::is_reserved(name), "{name} accepted");
                    assert!(
                        firedrill::drill::is_valid_var_name(name),
                        "{name:?} accepted"
                    );
                }
            }
            Err(error) => assert!(
                error.line >= 1 && error.line <= text.split('\n').count(),
                "{error}"
            ),
        }
    });
}
