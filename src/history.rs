//! `firedrill history`: past runs read back from their journals, and whether
//! recovery is getting faster — the question a team asks after a few game days.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::duration::format_duration;
use crate::journal::Journal;

/// Where runs are recorded unless `--dir` says otherwise.
pub const DEFAULT_DIR: &str = ".firedrill/runs";

/// The runs found under a directory, and what could not be read.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// `(run directory, journal)`, oldest first.
    pub runs: Vec<(PathBuf, Journal)>,
    /// Runs without a journal: still running, or killed before they could
    /// write one (`firedrill resume` or `clean` them), oldest first.
    pub unfinished: Vec<(PathBuf, Unfinished)>,
    /// One sentence per run directory whose journal could not be read.
    pub warnings: Vec<String>,
}

/// A run that has no journal, as its `events.jsonl` begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The drill's name.
    pub drill: String,
    /// The drill file.
    pub scenario: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Its runner still lives (pid and start time): it is running, not killed.
    pub running: bool,
}

impl Unfinished {
    /// Reads the start of a run directory's `events.jsonl`; `None` if it has
    /// no `run_started` event.
    pub fn read(run_dir: &Path) -> Option<Unfinished> {
        use std::io::BufRead;
        let file = std::fs::File::open(run_dir.join("events.jsonl")).ok()?;
        let mut first = String::new();
        std::io::BufReader::new(file)
            .take(1 << 20)
            .read_line(&mut first)
            .ok()?;
        let event: crate::event::Event = serde_json::from_str(first.trim()).ok()?;
        match event.kind {
            crate::event::EventKind::RunStarted {
                drill,
                scenario,
                pid,
                pid_started,
                ..
            } => Some(Unfinished {
                drill,
                scenario,
                started_at: event.time,
                running: crate::rundir::runner_alive(pid, pid_started),
            }),
            _ => None,
        }
    }
}

/// Reads every `*/journal.json` under `dir`, oldest first, logging a warning
/// (through `tracing`) for each journal that cannot be read.
///
/// Use [`scan_with_warnings`] to show the warnings yourself.
pub fn scan(dir: &Path) -> Vec<(PathBuf, Journal)> {
    let scan = scan_with_warnings(dir);
    for warning in &scan.warnings {
        tracing::warn!("{warning}");
    }
    scan.runs
}

/// Reads every `*/journal.json` under `dir`, oldest first; a journal that is
/// missing, unreadable or not a journal (a run that died before writing it,
/// a file from a future version) is skipped with a warning, never a panic.
///
/// Runs are ordered by `started_at`, else by the journal file's modification time.
pub fn scan_with_warnings(dir: &Path) -> Scan {
    let mut scan = Scan::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return scan,
        Err(error) => {
            scan.warnings
                .push(format!("cannot read {}: {error}", dir.display()));
            return scan;
        }
    };
    let mut found: Vec<(Option<DateTime<Utc>>, PathBuf, Journal)> = Vec::new();
    for entry in entries {
        let run_dir = match entry {
            Ok(entry) => entry.path(),
            Err(error) => {
                scan.warnings
                    .push(format!("cannot read {}: {error}", dir.display()));
                continue;
            }
        };
        if !run_dir.is_dir() {
            continue;
        }
        let journal_path = run_dir.join("journal.json");
        if !journal_path.exists() {
            // A run that is still going, or was killed before it could
            // write its journal: what its events say of its start.
            if let Some(run) = Unfinished::read(&run_dir) {
                scan.unfinished.push((run_dir, run));
            }
            continue;
        }
        match Journal::read(&run_dir) {
            Ok(journal) => {
                let when = started_at(&journal).or_else(|| modified(&journal_path));
                found.push((when, run_dir, journal));
            }
            Err(message) => scan.warnings.push(format!("skipped: {message}")),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    scan.unfinished.sort_by(|a, b| {
        (parse_time(&a.1.started_at), &a.0).cmp(&(parse_time(&b.1.started_at), &b.0))
    });
    scan.runs = found
        .into_iter()
        .map(|(_, path, journal)| (path, journal))
        .collect();
    scan
}

fn started_at(journal: &Journal) -> Option<DateTime<Utc>> {
    parse_time(&journal.started_at)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

fn modified(path: &Path) -> Option<DateTime<Utc>> {
    let time: SystemTime = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(time.into())
}

/// Renders past runs as a table (newest last) and, per drill, a trend line
/// comparing the latest TTR with the median of the earlier runs.
///
/// `scenario` keeps only the runs of one drill, matched by drill name or by
/// the drill file's path or name without extension.
pub fn render(runs: &[(PathBuf, Journal)], scenario: Option<&str>) -> String {
    render_all(runs, &[], scenario)
}

/// [`render`], with the runs that have no journal among them: `killed`
/// (resume or clean them) or `running`.
pub fn render_all(
    runs: &[(PathBuf, Journal)],
    unfinished: &[(PathBuf, Unfinished)],
    scenario: Option<&str>,
) -> String {
    let mut selected: Vec<&(PathBuf, Journal)> = runs
        .iter()
        .filter(|(_, journal)| scenario.is_none_or(|name| matches_scenario(journal, name)))
        .collect();
    let unfinished: Vec<&(PathBuf, Unfinished)> = unfinished
        .iter()
        .filter(|(_, run)| {
            scenario.is_none_or(|name| matches_names(&run.drill, &run.scenario, name))
        })
        .collect();
    if selected.is_empty() && unfinished.is_empty() {
        return match scenario {
            Some(name) => format!("No runs of `{name}` recorded.\n"),
            None => "No runs recorded.\n".to_string(),
        };
    }
    // Runs without a parseable start keep the order they came in (scan's
    // modification-time order), ahead of dated ones.
    selected.sort_by_key(|(_, journal)| started_at(journal));

    let header = [
        "When",
        "Drill",
        "Verdict",
        "Score",
        "TTR / RTO",
        "Alert",
        "Accuracy",
        "Run directory",
    ];
    let mut dated: Vec<(Option<DateTime<Utc>>, [String; 8])> = selected
        .iter()
        .map(|(path, journal)| {
            (
                started_at(journal),
                [
                    when(path, journal),
                    journal.drill.clone(),
                    journal.verdict.as_str().to_string(),
                    journal.score.to_string(),
                    ttr_against_rto(journal),
                    journal.tta_alert_ms.map_or_else(|| "-".to_string(), human),
                    accuracy(journal),
                    path.display().to_string(),
                ],
            )
        })
        .collect();
    for (path, run) in &unfinished {
        let time = parse_time(&run.started_at);
        dated.push((
            time,
            [
                time.map_or_else(
                    || run.started_at.clone(),
                    |time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                ),
                run.drill.clone(),
                if run.running { "running" } else { "killed" }.to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                path.display().to_string(),
            ],
        ));
    }
    // Stable: runs with the same start keep journal order.
    dated.sort_by_key(|(time, _)| *time);
    let rows: Vec<[String; 8]> = dated
        .into_iter()
        .map(|(_, row)| row.map(|cell| crate::text::escape_controls(&cell).into_owned()))
        .collect();
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| {
                format!(
                    "{cell}{}",
                    " ".repeat(width.saturating_sub(cell.chars().count()))
                )
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(&header));
    let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
    out.push_str(&line(&rule.iter().map(String::as_str).collect::<Vec<_>>()));
    for row in &rows {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }

    out.push_str(
        "\nTrend (latest TTR against the median of the earlier runs, and the previous run):\n",
    );
    let mut by_drill: BTreeMap<&str, Vec<&Journal>> = BTreeMap::new();
    for (_, journal) in &selected {
        by_drill
            .entry(journal.drill.as_str())
            .or_default()
            .push(journal);
    }
    for (drill, journals) in by_drill {
        let _ = writeln!(out, "  {drill}: {}", trend(&journals, &TTR));
        // Game days with `detect`: is the team's monitoring getting quicker?
        if journals
            .iter()
            .any(|journal| journal.tta_alert_ms.is_some())
        {
            let _ = writeln!(out, "  {drill}: time to alert {}", trend(&journals, &ALERT));
        }
    }
    if unfinished.iter().any(|(_, run)| !run.running) {
        out.push_str(
            "\nKilled runs have no journal: `firedrill resume RUN_DIR` continues one, `firedrill clean RUN_DIR` ends what it left.\n",
        );
    }
    out
}

/// The Accuracy column: the runbook's accuracy, `not reached` when the run
/// ended before its recovery ran, `no runbook` when the recovery was a command.
fn accuracy(journal: &Journal) -> String {
    if let Some(value) = journal.runbook_accuracy.filter(|value| value.is_finite()) {
        return format!("{value:.1}%");
    }
    let recovered_by_command = journal.steps.iter().any(|step| {
        step.action == "recover"
            && matches!(
                step.status,
                crate::journal::StepStatus::Ok | crate::journal::StepStatus::Failed
            )
    });
    if journal.runbook.is_none() && recovered_by_command {
        "no runbook".to_string()
    } else {
        "not reached".to_string()
    }
}

fn matches_scenario(journal: &Journal, name: &str) -> bool {
    matches_names(&journal.drill, &journal.scenario, name)
}

fn matches_names(drill: &str, scenario: &str, name: &str) -> bool {
    let stem = Path::new(scenario)
        .file_stem()
        .and_then(|stem| stem.to_str());
    drill == name || scenario == name || stem == Some(name)
}

fn when(path: &Path, journal: &Journal) -> String {
    match started_at(journal) {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        // The default run directory name starts with the UTC timestamp.
        None => path.file_name().map_or_else(
            || "unknown".to_string(),
            |name| name.to_string_lossy().into_owned(),
        ),
    }
}

fn human(ms: u64) -> String {
    format_duration(std::time::Duration::from_millis(ms))
}

fn ttr_against_rto(journal: &Journal) -> String {
    let rto = human(journal.rto_ms);
    match (journal.recovered, journal.ttr_ms) {
        (true, Some(ttr)) => {
            let within = if ttr <= journal.rto_ms { "ok" } else { "over" };
            format!("{} / {rto} {within}", human(ttr))
        }
        (true, None) => format!("? / {rto}"),
        (false, _) => format!("not recovered / {rto}"),
    }
}

/// A time a trend follows across runs.
struct Measure {
    /// How it is named in the trend (`TTR`).
    name: &'static str,
    /// A run without it (`did not recover`).
    missing: &'static str,
    /// No earlier run had it (`recovered`).
    earlier_had: &'static str,
    /// The time of one run, if it has one worth comparing.
    of: fn(&Journal) -> Option<u64>,
}

/// Time to recover: only recovered runs have a TTR worth comparing.
const TTR: Measure = Measure {
    name: "TTR",
    missing: "did not recover",
    earlier_had: "recovered",
    of: |journal| journal.ttr_ms.filter(|_| journal.recovered),
};

/// Time to alert (`detect` probes): how quickly the team's monitoring noticed.
const ALERT: Measure = Measure {
    name: "time to alert",
    missing: "had no alert",
    earlier_had: "had an alert",
    of: |journal| journal.tta_alert_ms,
};

/// The trend of one drill's runs, oldest first: the latest time against the
/// median of the earlier runs (which decides faster/slower: one unusually
/// slow or fast game day must not swing it) and against the previous run.
fn trend(journals: &[&Journal], measure: &Measure) -> String {
    let time = measure.of;
    let Some((latest, earlier)) = journals.split_last().filter(|_| journals.len() >= 2) else {
        return "not enough runs".to_string();
    };
    let Some(latest_time) = time(latest) else {
        return format!("latest run {} ({} runs)", measure.missing, journals.len());
    };
    let mut earlier_times: Vec<u64> = earlier.iter().filter_map(|journal| time(journal)).collect();
    if earlier_times.is_empty() {
        return format!(
            "not enough runs (no earlier run {}); latest {} {}",
            measure.earlier_had,
            measure.name,
            human(latest_time)
        );
    }
    let previous = match earlier.last().and_then(|journal| time(journal)) {
        Some(previous) => format!(
            "previous run {}, {}",
            human(previous),
            compare(latest_time, previous)
        ),
        None => format!("previous run {}", measure.missing),
    };
    earlier_times.sort_unstable();
    let median = median(&earlier_times);
    let context = format!(
        "latest {} {} against a median of {} over {} earlier run{}; {previous}",
        measure.name,
        human(latest_time),
        human(median),
        earlier_times.len(),
        if earlier_times.len() == 1 { "" } else { "s" }
    );
    format!("{} ({context})", compare(latest_time, median))
}

/// `faster by 2.0s`, `slower by 1m10s` or `steady`, for `latest` against `reference`.
fn compare(latest: u64, reference: u64) -> String {
    // Differences within 5% (at least 100ms) are noise: probe intervals alone cause them.
    let tolerance = (reference / 20).max(100);
    if latest.abs_diff(reference) <= tolerance {
        "steady".to_string()
    } else if latest < reference {
        format!("faster by {}", human(reference - latest))
    } else {
        format!("slower by {}", human(latest - reference))
    }
}

/// The median of sorted, non-empty values, without overflowing.
fn median(sorted: &[u64]) -> u64 {
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        let (low, high) = (sorted[middle - 1], sorted[middle]);
        low / 2 + high / 2 + (low % 2 + high % 2) / 2
    } else {
        sorted[middle]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample_journal_for_docs;

    fn run(drill: &str, day: u32, ttr_ms: Option<u64>) -> Journal {
        let mut journal = sample_journal_for_docs();
        journal.drill = drill.to_string();
        journal.scenario = format!("scenarios/{drill}.yaml");
        journal.started_at = format!("2025-03-{day:02}T10:00:00Z");
        journal.run_id = format!("2025030{day}-{drill}");
        journal.ttr_ms = ttr_ms;
        journal.recovered = ttr_ms.is_some();
        journal
    }

    fn write(dir: &Path, name: &str, journal: &Journal) {
        let run_dir = dir.join(name);
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(
            run_dir.join("journal.json"),
            serde_json::to_string(journal).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn scans_two_drills_and_renders_both_with_their_trends() {
        let dir = tempfile::tempdir().unwrap();
        // Written out of order: the scan must sort by start time.
        write(
            dir.path(),
            "c-etcd",
            &run("etcd-quorum-loss", 3, Some(40_000)),
        );
        write(
            dir.path(),
            "a-etcd",
            &run("etcd-quorum-loss", 1, Some(60_000)),
        );
        write(
            dir.path(),
            "b-etcd",
            &run("etcd-quorum-loss", 2, Some(50_000)),
        );
        write(dir.path(), "a-web", &run("web-failover", 1, Some(10_000)));
        write(dir.path(), "b-web", &run("web-failover", 4, Some(22_300)));
        std::fs::create_dir_all(dir.path().join("broken")).unwrap();
        std::fs::write(dir.path().join("broken/journal.json"), "{ not json").unwrap();
        std::fs::create_dir_all(dir.path().join("still-running")).unwrap();
        std::fs::write(dir.path().join("stray-file"), "x").unwrap();

        let scan = scan_with_warnings(dir.path());
        assert_eq!(scan.runs.len(), 5);
        assert_eq!(scan.warnings.len(), 1, "{:?}", scan.warnings);
        assert!(scan.warnings[0].contains("broken"), "{:?}", scan.warnings);
        let order: Vec<_> = scan
            .runs
            .iter()
            .map(|(_, j)| j.started_at.clone())
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "oldest first");

        let text = render(&scan.runs, None);
        assert!(
            text.contains("etcd-quorum-loss") && text.contains("web-failover"),
            "{text}"
        );
        // etcd: latest 40s against the median 55s of 60s and 50s.
        assert!(text.contains("etcd-quorum-loss: faster by 15.0s"), "{text}");
        assert!(text.contains("web-failover: slower by 12.3s"), "{text}");
        assert!(
            text.contains("previous run 50.0s, faster by 10.0s"),
            "compared with the previous run too: {text}"
        );
        // Newest last.
        let last_row = text
            .lines()
            .rfind(|line| line.starts_with("2025-"))
            .unwrap();
        assert!(last_row.starts_with("2025-03-04 10:00:00 UTC"), "{text}");
        assert!(text.contains("2m00s"), "RTO shown: {text}");

        let only_web = render(&scan.runs, Some("web-failover"));
        assert!(!only_web.contains("etcd-quorum-loss"), "{only_web}");
        assert_eq!(
            render(&scan.runs, Some("scenarios/web-failover.yaml")),
            only_web
        );
    }

    #[test]
    fn game_days_show_time_to_alert_and_its_trend() {
        let runs: Vec<(PathBuf, Journal)> = [(1, 90_000), (2, 60_000), (3, 30_000)]
            .into_iter()
            .map(|(day, tta)| {
                let mut journal = run("web-game-day", day, Some(100_000));
                journal.tta_alert_ms = Some(tta);
                (PathBuf::from(format!("r{day}")), journal)
            })
            .collect();
        let text = render(&runs, None);
        assert!(text.lines().next().unwrap().contains("Alert"), "{text}");
        assert!(text.contains("30.0s"), "{text}");
        assert!(
            text.contains("web-game-day: time to alert faster by 45.0s (latest time to alert 30.0s against a median of 1m15s"),
            "{text}"
        );
        // Without `detect` there is no alert trend.
        let plain = render(&[(PathBuf::from("x"), run("a", 1, Some(1)))], None);
        assert!(!plain.contains("time to alert"), "{plain}");
    }

    #[test]
    fn trends_need_two_runs_and_a_recovery() {
        let one = run("a", 1, Some(1_000));
        assert!(render(&[(PathBuf::from("x"), one.clone())], None).contains("a: not enough runs"));
        let steady = [
            (PathBuf::from("1"), run("a", 1, Some(30_000))),
            (PathBuf::from("2"), run("a", 2, Some(30_500))),
        ];
        assert!(
            render(&steady, None).contains("a: steady"),
            "{}",
            render(&steady, None)
        );
        let unrecovered = [
            (PathBuf::from("1"), one),
            (PathBuf::from("2"), run("a", 2, None)),
        ];
        let text = render(&unrecovered, None);
        assert!(text.contains("latest run did not recover"), "{text}");
        assert!(text.contains("not recovered / 2m00s"), "{text}");
    }

    #[test]
    fn empty_and_missing_directories_are_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan(&dir.path().join("nope")).is_empty());
        assert!(scan_with_warnings(dir.path()).warnings.is_empty());
        assert_eq!(render(&[], None), "No runs recorded.\n");
        assert_eq!(render(&[], Some("x")), "No runs of `x` recorded.\n");
    }

    #[test]
    fn killed_runs_and_run_directories_are_shown_and_accuracy_says_why_it_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a-done", &run("etcd", 1, Some(40_000)));
        let mut aborted = run("etcd", 2, None);
        aborted.runbook = None;
        aborted.runbook_accuracy = None;
        for step in &mut aborted.steps {
            if step.action == "recover" {
                step.status = crate::journal::StepStatus::Skipped;
            }
        }
        write(dir.path(), "b-aborted", &aborted);
        let mut by_command = run("etcd", 3, Some(30_000));
        by_command.runbook = None;
        by_command.runbook_accuracy = None;
        write(dir.path(), "c-command", &by_command);
        // Killed before its journal: only events.jsonl, whose runner is gone.
        let killed = dir.path().join("d-killed");
        std::fs::create_dir_all(&killed).unwrap();
        let started = crate::event::Event {
            at_ms: 0,
            time: "2025-03-04T10:00:00.000Z".to_owned(),
            kind: crate::event::EventKind::RunStarted {
                drill: "etcd".to_owned(),
                run_id: "d-killed".to_owned(),
                seed: 1,
                scenario: "scenarios/etcd.yaml".to_owned(),
                target: "local".to_owned(),
                run_dir: killed.display().to_string(),
                workdir: killed.join("work").display().to_string(),
                pid: u32::MAX,
                pid_started: Some(1),
                boot_id: None,
                rto_ms: 60_000,
                rpo_ms: None,
                min_score: 70,
                steady_state: Vec::new(),
                has_data: false,
                expect_outage: true,
                options: None,
                files: Vec::new(),
            },
        };
        std::fs::write(
            killed.join("events.jsonl"),
            format!("{}\n", serde_json::to_string(&started).unwrap()),
        )
        .unwrap();

        let scan = scan_with_warnings(dir.path());
        assert_eq!(scan.runs.len(), 3);
        assert_eq!(scan.unfinished.len(), 1);
        assert!(!scan.unfinished[0].1.running);
        let text = render_all(&scan.runs, &scan.unfinished, Some("etcd"));
        let row = |name: &str| {
            text.lines()
                .find(|line| line.contains(name))
                .unwrap_or_else(|| panic!("no row for {name}: {text}"))
                .to_owned()
        };
        assert!(row("a-done").contains("66.7%"), "{text}");
        assert!(row("b-aborted").contains("not reached"), "{text}");
        assert!(row("c-command").contains("no runbook"), "{text}");
        assert!(row("d-killed").contains("killed"), "{text}");
        assert!(
            row("d-killed").starts_with("2025-03-04 10:00:00 UTC"),
            "{text}"
        );
        assert!(text.contains("Run directory"), "{text}");
        assert!(text.contains("firedrill resume RUN_DIR"), "{text}");
        // Newest last: the killed run started last.
        assert!(text.lines().nth(5).unwrap().contains("d-killed"), "{text}");
    }

    #[test]
    fn median_of_even_count_does_not_overflow() {
        let runs = [
            (PathBuf::from("1"), run("a", 1, Some(u64::MAX))),
            (PathBuf::from("2"), run("a", 2, Some(u64::MAX))),
            (PathBuf::from("3"), run("a", 3, Some(u64::MAX))),
        ];
        assert!(render(&runs, None).contains("a: steady"));
    }
}
