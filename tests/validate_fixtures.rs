//! `firedrill validate` on the fixture drills, through the real binary.
//!
//! Every file in `tests/fixtures/invalid/` must be rejected with exit 2, and
//! what it prints is snapshotted (`tests/snapshots/`), so a changed message is
//! a reviewed change. Every file in `tests/fixtures/valid/` and every drill
//! shipped in `scenarios/` must validate.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

const EXIT_INVALID: i32 = 2;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// The binary with plain output: no colors, no terminal (stdout and stderr
/// are pipes), no log filter from the caller's environment.
fn firedrill(current_dir: &Path) -> Command {
    let mut command = assert_cmd::cargo::cargo_bin_cmd!("firedrill");
    command
        .current_dir(current_dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("FORCE_COLOR");
    command
}

/// `firedrill validate ARGS...` run in `dir`.
fn validate_in(dir: &Path, args: &[&str]) -> std::process::Output {
    firedrill(dir)
        .arg("validate")
        .args(args)
        .output()
        .expect("run firedrill")
}

/// The files of a directory, sorted, whatever their extension.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Snapshot settings: the fixture directory is named relative to it (the
/// binary runs there), and any absolute path to it is replaced so that the
/// snapshots do not depend on where the repository is checked out.
fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path(repo().join("tests/snapshots"));
    let fixtures = fixtures().display().to_string();
    settings.add_filter(&regex_escape(&fixtures), "[FIXTURES]");
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn every_invalid_fixture_is_rejected_with_a_located_message() {
    let dir = fixtures();
    let invalid = files_in(&dir.join("invalid"));
    assert!(
        invalid.len() >= 40,
        "expected the invalid fixtures, found {}",
        invalid.len()
    );
    let settings = snapshot_settings();
    let mut failures = Vec::new();
    for path in &invalid {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("fixture name")
            .to_owned();
        let stem = name
            .trim_end_matches(".yaml")
            .trim_end_matches(".yml")
            .to_owned();
        let output = validate_in(&dir, &[&format!("invalid/{name}")]);
        let stderr = text(&output.stderr);
        if output.status.code() != Some(EXIT_INVALID) {
            failures.push(format!(
                "{name}: exit {:?}, expected {EXIT_INVALID}\nstdout:\n{}\nstderr:\n{stderr}",
                output.status.code(),
                text(&output.stdout)
            ));
            continue;
        }
        if !stderr.contains(&format!("invalid/{name}:")) {
            failures.push(format!(
                "{name}: the message does not name the file and its line:\n{stderr}"
            ));
        }
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            failures.push(format!("{name}: firedrill panicked:\n{stderr}"));
        }
        // insta panics on a mismatch; carry on so that one run shows every
        // changed message, then fail once.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_snapshot!(format!("invalid__{stem}"), stderr));
        }));
        if result.is_err() {
            failures.push(format!(
                "{name}: its message changed (see the snapshot diff above)"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_valid_fixture_validates() {
    let dir = fixtures();
    let valid = files_in(&dir.join("valid"));
    assert!(
        !valid.is_empty(),
        "no valid fixtures in {}",
        dir.join("valid").display()
    );
    for path in valid {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("fixture name");
        let output = validate_in(&dir, &[&format!("valid/{name}")]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "valid/{name} was rejected:\n{}",
            text(&output.stderr)
        );
        assert!(
            output.stderr.is_empty(),
            "valid/{name} printed to stderr:\n{}",
            text(&output.stderr)
        );
    }
}

/// Every `*.yaml` / `*.yml` under `dir`, recursively, sorted.
fn drills_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            drills_under(&entry, found);
        } else if entry
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            found.push(entry);
        }
    }
}

#[test]
fn every_shipped_scenario_validates() {
    let scenarios = repo().join("scenarios");
    if !scenarios.is_dir() {
        // The scenarios are added on main; until then there is nothing to check.
        println!(
            "note: {} does not exist; no scenarios to validate",
            scenarios.display()
        );
        return;
    }
    let mut drills = Vec::new();
    drills_under(&scenarios, &mut drills);
    assert!(
        !drills.is_empty(),
        "{} holds no *.yaml drill",
        scenarios.display()
    );
    let mut failures = Vec::new();
    for drill in &drills {
        let relative = drill.strip_prefix(repo()).expect("under the repository");
        let output = validate_in(repo(), &[&relative.to_string_lossy()]);
        if output.status.code() != Some(0) {
            failures.push(format!(
                "{} (exit {:?}):\n{}",
                relative.display(),
                output.status.code(),
                text(&output.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "scenarios that do not validate:\n\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn a_directory_of_valid_drills_validates() {
    let output = validate_in(&fixtures(), &["valid"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr:\n{}",
        text(&output.stderr)
    );
    let count = files_in(&fixtures().join("valid")).len();
    for path in files_in(&fixtures().join("valid")) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("fixture name");
        assert!(
            stdout.contains(&format!("ok: valid/{name}")),
            "{name} not listed:\n{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("{count} drills valid")),
        "no summary:\n{stdout}"
    );
}

#[test]
fn every_named_file_is_checked_and_all_problems_are_printed() {
    let output = validate_in(
        &fixtures(),
        &[
            "valid/minimal.yaml",
            "invalid/unknown-step-field.yaml",
            "invalid/several-problems.yaml",
        ],
    );
    assert_eq!(output.status.code(), Some(EXIT_INVALID));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        stdout.contains("ok: valid/minimal.yaml"),
        "stdout:\n{stdout}"
    );
    assert!(
        stderr.contains("invalid/unknown-step-field.yaml:17:5: unknown field `neds`"),
        "stderr:\n{stderr}"
    );
    for expected in [
        "invalid/several-problems.yaml:1:10: unsupported drill format version `2`",
        "invalid/several-problems.yaml:17:13: unknown step `kil-web` in needs",
        "invalid/several-problems.yaml:20:9: duplicate step id `restart-web`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("2 of 3 drills invalid (11 problems)"),
        "summary:\n{stderr}"
    );
}

#[test]
fn an_invalid_file_after_a_valid_one_still_fails_the_run() {
    let output = validate_in(&fixtures(), &["valid", "invalid/cycle-pair.yaml"]);
    assert_eq!(output.status.code(), Some(EXIT_INVALID));
    assert!(text(&output.stderr).contains("dependency cycle: a -> b -> a"));
}

#[test]
fn a_missing_file_is_invalid_input() {
    let output = validate_in(&fixtures(), &["no-such-drill.yaml"]);
    assert_eq!(output.status.code(), Some(EXIT_INVALID));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no-such-drill.yaml") && stderr.contains("cannot read"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn a_directory_without_drills_is_invalid_input() {
    let empty = tempfile::tempdir().expect("temp dir");
    let output = validate_in(empty.path(), &["."]);
    assert_eq!(output.status.code(), Some(EXIT_INVALID));
    assert!(text(&output.stderr).contains("no *.yaml or *.yml drill files"));
}
