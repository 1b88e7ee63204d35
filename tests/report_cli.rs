//! `firedrill report` and `firedrill history` run as a user runs them: the
//! real binary over run directories holding only `journal.json`.

use std::path::Path;

use assert_cmd::Command;
use firedrill::journal::{Journal, Verdict};
use firedrill::report::sample_journal_for_docs;

fn firedrill() -> Command {
    Command::cargo_bin("firedrill").expect("the firedrill binary is built")
}

fn write_journal(run_dir: &Path, journal: &Journal) {
    std::fs::create_dir_all(run_dir).unwrap();
    std::fs::write(
        run_dir.join("journal.json"),
        serde_json::to_string_pretty(journal).unwrap(),
    )
    .unwrap();
}

fn output_of(args: &[&str]) -> std::process::Output {
    firedrill().args(args).output().unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let output = output_of(args);
    assert!(
        output.status.success(),
        "firedrill {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn report_regenerates_every_format_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = sample_journal_for_docs();
    write_journal(dir.path(), &journal);
    let run_dir = dir.path().to_str().unwrap();

    let markdown = stdout_of(&["report", run_dir]);
    assert_eq!(markdown, stdout_of(&["report", run_dir, "--format", "md"]));
    assert!(markdown.starts_with("# Drill report: etcd-quorum-loss — FAILED"));
    assert!(markdown.contains("Restore the snapshot on every member"));
    assert!(markdown.contains("Error: data-dir \"/tmp/firedrill/etcd/2\" exists"));

    let html = stdout_of(&["report", run_dir, "--format", "html"]);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg id=\"timeline\""));

    let junit = stdout_of(&["report", run_dir, "--format", "junit"]);
    let parsed = quick_junit::Report::deserialize_from_str(&junit).unwrap();
    assert_eq!(parsed.test_suites[0].name.as_str(), "etcd-quorum-loss");

    let json = stdout_of(&["report", run_dir, "--format", "json"]);
    let back: Journal = serde_json::from_str(&json).unwrap();
    assert_eq!(back, journal);
}

#[test]
fn report_without_a_journal_is_a_clear_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = output_of(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no journal.json"), "{stderr}");
    assert!(stderr.contains(dir.path().to_str().unwrap()), "{stderr}");
    assert!(output.stdout.is_empty());

    std::fs::write(dir.path().join("journal.json"), "{\"drill\": 3}").unwrap();
    let output = output_of(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a firedrill journal"), "{stderr}");
    assert!(stderr.contains("line 1"), "names where: {stderr}");
}

fn run(drill: &str, day: u32, ttr_ms: Option<u64>, verdict: Verdict) -> Journal {
    let mut journal = sample_journal_for_docs();
    journal.drill = drill.to_string();
    journal.scenario = format!("scenarios/{drill}.yaml");
    journal.run_id = format!("202503{day:02}T100000Z-{drill}");
    journal.started_at = format!("2025-03-{day:02}T10:00:00Z");
    journal.ttr_ms = ttr_ms;
    journal.recovered = ttr_ms.is_some();
    journal.verdict = verdict;
    journal.score = if ttr_ms.is_some() { 90 } else { 0 };
    journal
}

#[test]
fn history_lists_runs_of_several_drills_with_their_trends() {
    let dir = tempfile::tempdir().unwrap();
    let runs = [
        run("etcd-quorum-loss", 1, Some(90_000), Verdict::Passed),
        run("etcd-quorum-loss", 3, Some(70_000), Verdict::Passed),
        run("etcd-quorum-loss", 5, Some(50_000), Verdict::Passed),
        run("web-failover", 2, Some(20_000), Verdict::Passed),
        run("web-failover", 4, Some(35_000), Verdict::Failed),
        run("cache-restart", 6, None, Verdict::Failed),
    ];
    for journal in &runs {
        write_journal(&dir.path().join(&journal.run_id), journal);
    }
    // A run that never finished leaves no journal: not a run to list.
    std::fs::create_dir_all(dir.path().join("20250307T100000Z-died")).unwrap();

    let text = stdout_of(&["history", "--dir", dir.path().to_str().unwrap()]);
    let header = text.lines().next().unwrap();
    for column in ["When", "Drill", "Verdict", "Score", "TTR / RTO", "Accuracy"] {
        assert!(header.contains(column), "{text}");
    }
    let rows: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("2025-"))
        .collect();
    assert_eq!(rows.len(), 6, "{text}");
    assert!(
        rows[0].starts_with("2025-03-01 10:00:00 UTC"),
        "oldest first: {text}"
    );
    assert!(
        rows[3].contains("web-failover") && rows[3].contains("failed"),
        "{text}"
    );
    assert!(rows[3].contains("35.0s / 2m00s ok"), "{text}");
    assert!(rows[5].contains("not recovered / 2m00s"), "{text}");
    assert!(rows[0].contains("66.7%"), "{text}");

    // etcd: 50s against the median 80s of 90s and 70s, and 20s faster than the previous run.
    assert!(
        text.contains("etcd-quorum-loss: faster by 30.0s (latest TTR 50.0s against a median of 1m20s over 2 earlier runs; previous run 1m10s, faster by 20.0s)"),
        "{text}"
    );
    assert!(text.contains("web-failover: slower by 15.0s"), "{text}");
    assert!(text.contains("cache-restart: not enough runs"), "{text}");

    let only = stdout_of(&[
        "history",
        "--dir",
        dir.path().to_str().unwrap(),
        "--scenario",
        "web-failover",
    ]);
    assert_eq!(
        only.lines()
            .filter(|line| line.starts_with("2025-"))
            .count(),
        2,
        "{only}"
    );
    assert!(!only.contains("etcd-quorum-loss"), "{only}");
}

#[test]
fn history_of_an_empty_or_missing_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("runs");
    let text = stdout_of(&["history", "--dir", missing.to_str().unwrap()]);
    assert!(text.starts_with("No runs recorded in"), "{text}");

    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let output = output_of(&["history", "--dir", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a directory"));
}

#[test]
fn history_names_a_broken_journal_and_lists_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(
        &dir.path().join("good"),
        &run("etcd-quorum-loss", 1, Some(1_000), Verdict::Passed),
    );
    std::fs::create_dir_all(dir.path().join("broken")).unwrap();
    std::fs::write(dir.path().join("broken/journal.json"), "{").unwrap();
    let output = output_of(&["history", "--dir", dir.path().to_str().unwrap()]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken") && stderr.contains("journal.json"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("etcd-quorum-loss"));
}
