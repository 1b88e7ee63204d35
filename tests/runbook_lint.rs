//! `firedrill runbook lint` on fixture runbooks, through the real binary.

use std::path::Path;

use assert_cmd::Command;

const FIXTURES: &str = "tests/fixtures/runbooks";

fn firedrill() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("firedrill")
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Fails with everything the command printed if it exited otherwise.
    fn assert_exit(&self, expected: i32) {
        assert_eq!(
            self.code,
            Some(expected),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

fn lint(args: &[&str]) -> Outcome {
    let output = firedrill()
        .args(["runbook", "lint"])
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run firedrill: {error}"));
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `(line, kind)` of every finding on stdout, in order; help lines skipped.
fn findings(stdout: &str, file: &str) -> Vec<(usize, String)> {
    stdout
        .lines()
        .filter(|line| !line.starts_with("  help: "))
        .map(|line| {
            let rest = line
                .strip_prefix(&format!("{file}:"))
                .unwrap_or_else(|| panic!("finding does not start with `{file}:`: {line}"));
            let mut parts = rest.splitn(3, ": ");
            let number = parts.next().and_then(|n| n.parse().ok());
            let kind = parts.next();
            match (number, kind, parts.next()) {
                (Some(number), Some(kind), Some(_message)) => (number, kind.to_string()),
                _ => panic!("not `file:line: kind: message`: {line}"),
            }
        })
        .collect()
}

fn expected(list: &[(usize, &str)]) -> Vec<(usize, String)> {
    list.iter()
        .map(|(line, kind)| (*line, kind.to_string()))
        .collect()
}

#[test]
fn problems_fixture_yields_every_kind_of_finding_at_its_line() {
    let problems = format!("{FIXTURES}/problems.md");
    let drill = format!("{FIXTURES}/drill.yaml");
    let outcome = lint(&["--drill", &drill, &problems]);
    outcome.assert_exit(1);
    assert_eq!(
        findings(&outcome.stdout, &problems),
        expected(&[
            (3, "unfinished"),
            (5, "code_outside_step"),
            (11, "invalid_attribute"),
            (15, "empty_step"),
            (19, "empty_block"),
            (22, "placeholder"),
            (25, "placeholder"),
            (33, "unfinished"),
            (36, "unset_variable"),
            (37, "missing_file"),
            (39, "unfinished"),
            (39, "unset_variable"),
            (42, "missing_file"),
            (46, "ignored_exit"),
            (51, "prompt_in_script"),
            (56, "empty_block"),
            (62, "invalid_attribute"),
            (62, "invalid_attribute"),
        ])
    );
    // Every finding says what to do about it.
    let help_lines = outcome
        .stdout
        .lines()
        .filter(|line| line.starts_with("  help: "))
        .count();
    assert_eq!(help_lines, 18);
    for text in [
        "`$DATA_DRI` is not set",
        "help: did you mean `$ENDPOINTS`?",
        "placeholder `<node>` in a command",
        "`./restore-helper.sh` does not exist",
        "link to `missing-guide.md`",
        "`XXX` left in the runbook",
        "invalid fence attribute `retries=many`",
    ] {
        assert!(
            outcome.stdout.contains(text),
            "no `{text}` in:\n{}",
            outcome.stdout
        );
    }
    // Named by the drill (a step output, a var) or by the runbook: not findings.
    let finding_lines: Vec<&str> = outcome
        .stdout
        .lines()
        .filter(|line| !line.starts_with("  help: "))
        .collect();
    for quiet in ["SNAPSHOT_ID", "$WORKDIR", "clean.md", "not-a-placeholder"] {
        assert!(
            finding_lines.iter().all(|line| !line.contains(quiet)),
            "`{quiet}` reported:\n{}",
            outcome.stdout
        );
    }
    assert!(
        outcome.stderr.contains("18 findings in 1 of 1 runbook"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn variables_are_only_checked_against_a_drill() {
    let problems = format!("{FIXTURES}/problems.md");
    let outcome = lint(&[&problems]);
    outcome.assert_exit(1);
    let kinds = findings(&outcome.stdout, &problems);
    assert_eq!(kinds.len(), 16, "{}", outcome.stdout);
    assert!(kinds.iter().all(|(_, kind)| kind != "unset_variable"));
}

#[test]
fn clean_fixture_passes_with_and_without_a_drill() {
    let clean = format!("{FIXTURES}/clean.md");
    let drill = format!("{FIXTURES}/drill.yaml");
    for args in [vec![clean.as_str()], vec!["--drill", &drill, &clean]] {
        let outcome = lint(&args);
        outcome.assert_exit(0);
        assert_eq!(outcome.stdout, format!("ok: {clean}\n"));
    }
}

#[test]
fn unknown_attribute_is_reported_with_its_line() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let runbook = dir.path().join("restore.md");
    std::fs::write(
        &runbook,
        "# Restore\n\n## Wait for health\n\n```sh {timeout=1m retrys=3}\netcdctl endpoint health\n```\n",
    )?;
    let outcome = lint(&[path_str(&runbook)]);
    outcome.assert_exit(1);
    let first = outcome.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "{}:5: invalid_attribute: unknown fence attribute `retrys`; did you mean `retries`? (supported: timeout, exit, stdout_contains, stdout_matches, retries, retry_delay)",
            runbook.display()
        )
    );
    Ok(())
}

#[test]
fn unreadable_runbook_is_exit_2_and_the_others_are_still_linted() {
    let clean = format!("{FIXTURES}/clean.md");
    let missing = format!("{FIXTURES}/no-such-runbook.md");
    let outcome = lint(&[&missing, &clean]);
    outcome.assert_exit(2);
    assert!(
        outcome
            .stderr
            .contains(&format!("{missing}: cannot read the runbook")),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stdout, format!("ok: {clean}\n"));
}

#[test]
fn invalid_drill_is_exit_2() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let drill = dir.path().join("drill.yaml");
    std::fs::write(&drill, "version: 2\nname: x\n")?;
    let clean = format!("{FIXTURES}/clean.md");
    let outcome = lint(&["--drill", path_str(&drill), &clean]);
    outcome.assert_exit(2);
    assert!(outcome.stdout.is_empty());
    assert!(outcome.stderr.contains("drill.yaml"), "{}", outcome.stderr);
    Ok(())
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("temporary path is not UTF-8: {path:?}"))
}

/// Every runbook a shipped drill follows lints clean against that drill.
#[test]
fn the_shipped_runbooks_lint_clean_against_their_drills() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("scenarios")).unwrap() {
        let drill = entry.unwrap().path();
        if drill.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&drill).unwrap();
        for line in text.lines() {
            let Some(path) = line.trim().strip_prefix("runbook: ") else {
                continue;
            };
            let runbook = drill.parent().unwrap().join(path.trim());
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
                .args(["runbook", "lint"])
                .arg(&runbook)
                .arg("--drill")
                .arg(&drill)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}: {}",
                runbook.display(),
                String::from_utf8_lossy(&output.stdout)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} runbooks found");
}

#[test]
fn a_runbook_with_nothing_to_run_is_a_finding() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let manual = dir.path().join("manual.md");
    std::fs::write(
        &manual,
        "# Restore\n\n## Call the on-call DBA\n\nPhone them.\n\n## Wait\n\nFor the green light.\n",
    )?;
    let empty = dir.path().join("empty.md");
    std::fs::write(&empty, "# Restore\n\nJust a title and some prose.\n")?;
    for (file, says) in [
        (&manual, "all 2 steps are manual"),
        (&empty, "has no steps"),
    ] {
        let outcome = lint(&[path_str(file)]);
        outcome.assert_exit(1);
        assert_eq!(
            findings(&outcome.stdout, path_str(file)),
            expected(&[(1, "nothing_to_run")]),
            "{}",
            outcome.stdout
        );
        assert!(outcome.stdout.contains(says), "{}", outcome.stdout);
    }
    Ok(())
}
