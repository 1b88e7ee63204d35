//! Game days (docs/game-days.md) with the real binary: people — simulated by a
//! script or by concurrent writers — acknowledge, write notes, mark runbook
//! steps and repair the system by hand while `firedrill run` goes on.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{firedrill, read_journal, run_command, write_drill};

/// The probes' interval in these drills.
const INTERVAL_MS: i64 = 100;

const RUNBOOK: &str = "# Restore the service\n\n\
## Look at the dashboard\n\nFind what broke.\n\n\
## Restart the service\n\n```sh\ntouch \"$T/healthy\"\n```\n\n\
## Tell #incidents\n\nSay it is back.\n";

/// A system that is healthy while `${T}/healthy` exists; an alert that fires
/// when `${T}/alert` exists; a fault that removes `healthy`; people recover.
fn game_day_drill(timeout: &str, extra_probe_interval: &str) -> String {
    format!(
        r#"
version: 1
name: game-day
objectives: {{rto: 30s}}
probes:
  healthy:
    command: test -f "${{T}}/healthy"
    interval: {INTERVAL_MS}ms
  alert-fired:
    command: test -f "${{T}}/alert"
    interval: {INTERVAL_MS}ms
  busy:
    command: "true"
    interval: {extra_probe_interval}
steady_state: [healthy]
guards: [busy]
detect: [alert-fired]
steps:
  - id: setup
    run: touch "${{T}}/healthy"
  - id: break
    needs: [setup]
    fault: {{run: 'rm "${{T}}/healthy"'}}
  - id: people
    needs: [break]
    recover:
      manual:
        runbook: runbook.md
        timeout: {timeout}
"#
    )
}

/// Starts the run in `dir`; its output goes to files (a pipe nobody reads
/// would fill and stop it).
fn start(dir: &Path, yaml: &str) -> (Child, PathBuf) {
    write_drill(dir, yaml);
    std::fs::write(dir.join("runbook.md"), RUNBOOK).unwrap();
    let out = dir.join("output.txt");
    let file = std::fs::File::create(&out).unwrap();
    let child = run_command(dir)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    (child, out)
}

fn finish((mut child, out): (Child, PathBuf)) -> (i32, String) {
    let status = child.wait().unwrap();
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(out).unwrap_or_default(),
    )
}

fn epoch_ms(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap()
        .timestamp_millis()
}

fn events(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"))
        })
        .collect()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/support/game_day_person.py")
}

#[test]
fn a_person_alerts_acknowledges_notes_marks_and_repairs_and_every_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let child = start(dir.path(), &game_day_drill("2m", "1s"));
    let record = dir.path().join("person.json");
    let person = Command::new("python3")
        .arg(script())
        .arg(env!("CARGO_BIN_EXE_firedrill"))
        .arg(&run_dir)
        .arg(dir.path())
        .arg(&record)
        .status()
        .unwrap();
    let (code, output) = finish(child);
    assert!(person.success(), "the person's script failed\n{output}");
    // Step 2 is marked wrong: accuracy 2/3 → score round(50 + 33.3) = 83.
    assert_eq!(code, 0, "{output}");
    let person: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let at = |key: &str| person[key].as_i64().unwrap();
    let span = |key: &str| {
        (
            person[key][0].as_i64().unwrap(),
            person[key][1].as_i64().unwrap(),
        )
    };
    let journal = read_journal(&run_dir);
    let all = events(&run_dir);
    let start = epoch_ms(all[0]["time"].as_str().unwrap()) - all[0]["at_ms"].as_i64().unwrap();
    let fault = start + journal["first_fault_ms"].as_i64().unwrap();
    // The first recorded pass of `probe` at or after `after`: no later than
    // that may a measurement be (a bound from the journal, not from the
    // clock: a loaded host may run a probe late).
    let first_pass = |probe: &str, after: i64| {
        all.iter()
            .filter(|e| e["event"] == "probe" && e["probe"] == probe && e["ok"] == true)
            .map(|e| epoch_ms(e["time"].as_str().unwrap()))
            .find(|time| *time >= after)
            .unwrap_or_else(|| panic!("no pass of {probe} recorded after {after}"))
    };

    // Time to alert: the first pass of the detect probe after the alert fired.
    let alert = fault + journal["tta_alert_ms"].as_i64().unwrap();
    assert!(
        (at("alert")..=first_pass("alert-fired", at("alert")) + 1).contains(&alert),
        "alert measured at {alert}, fired at {}",
        at("alert")
    );
    // Time to acknowledge: when `firedrill ack` ran.
    let (before, after) = span("ack");
    let ack = fault + journal["tt_ack_ms"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&ack),
        "ack at {ack}, ran {before}..{after}"
    );
    // TTR: from the fault to the first pass after the repair.
    let recovered = fault + journal["ttr_ms"].as_i64().unwrap();
    assert!(
        (at("repair")..=first_pass("healthy", at("repair")) + 1).contains(&recovered),
        "recovered at {recovered}, repaired at {}",
        at("repair")
    );

    // Notes, as written, each when it was written.
    let notes = journal["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(notes[0]["text"], "paged: the db is down");
    assert_eq!(notes[1]["text"], "weird \u{1b}[31mlog\nline");
    let (before, after) = span("note1");
    let noted = start + notes[0]["at_ms"].as_i64().unwrap();
    assert!((before..=after).contains(&noted));
    // Marks, with the runbook's headings; accuracy from the marks.
    let marks = journal["marks"].as_array().unwrap();
    let summary: Vec<(u64, &str, &str)> = marks
        .iter()
        .map(|m| {
            (
                m["step"].as_u64().unwrap(),
                m["mark"].as_str().unwrap(),
                m["title"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "ok", "Look at the dashboard"),
            (2, "wrong", "Restart the service"),
            (3, "ok", "Tell #incidents")
        ]
    );
    assert_eq!(journal["runbook_accuracy"], 66.7);
    assert_eq!(journal["complete"], false);
    assert_eq!(journal["recovered"], true);

    // Every report: the notes (control characters escaped), the wrong step
    // as a follow-up, the alert and the acknowledgement.
    let md = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    for (name, report) in [("report.md", &md), ("report.html", &html)] {
        assert!(!report.contains('\u{1b}'), "{name} carries a raw escape");
        assert!(report.contains("paged: the db is down"), "{name}");
        assert!(report.contains("31mlog"), "{name}");
        assert!(
            report.contains("the restart command names the wrong unit"),
            "{name}"
        );
        assert!(report.contains("alert fired"), "{name}");
        assert!(report.contains("acknowledged"), "{name}");
        assert!(report.contains("Restart the service"), "{name}");
    }
    let follow_ups = md.split("## Follow-ups").nth(1).unwrap();
    assert!(
        follow_ups.contains("Restart the service")
            && follow_ups.contains("was wrong when people followed it"),
        "{follow_ups}"
    );
    assert!(md.contains("### What was wrong in the runbook"));
    assert!(
        md.contains("66.7% (2 of 3 runbook steps marked ok by the people who followed it)"),
        "{md}"
    );
    assert!(
        html.contains("m-people"),
        "the HTML timeline marks people's moments"
    );
    // The run has ended: nothing more can be added, and it says so.
    let late = firedrill()
        .arg("note")
        .arg(&run_dir)
        .arg("late")
        .output()
        .unwrap();
    assert_eq!(late.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&late.stderr).contains("has ended"));
}

#[test]
fn many_notes_from_concurrent_writers_while_probes_write_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    // A guard polled every 50ms (the floor) keeps the runner writing events meanwhile.
    let child = start(dir.path(), &game_day_drill("2m", "50ms"));
    assert!(common::wait_for(&run_dir.join("events.jsonl")));
    while !std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap()
        .contains("\"event\":\"runbook_started\"")
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let run_dir = run_dir.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let status = firedrill()
                        .arg("note")
                        .arg(&run_dir)
                        .arg(format!("writer {writer} note {n} {}", "x".repeat(300)))
                        .stdout(Stdio::null())
                        .status()
                        .unwrap();
                    assert!(status.success());
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    std::fs::write(dir.path().join("healthy"), "").unwrap();
    let (code, output) = finish(child);
    assert_eq!(
        code, 1,
        "unmarked runbook steps count against the score\n{output}"
    );
    let all = events(&run_dir);
    let mut written: Vec<String> = all
        .iter()
        .filter(|e| e["event"] == "note")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(written.len(), 200);
    written.sort();
    written.dedup();
    assert_eq!(written.len(), 200, "every note once");
    let journal = read_journal(&run_dir);
    assert_eq!(journal["notes"].as_array().unwrap().len(), 200);
    // The file's order is the clock's order.
    let late: Vec<_> = all
        .windows(2)
        .filter(|w| w[0]["at_ms"].as_u64() > w[1]["at_ms"].as_u64())
        .map(|w| {
            (
                w[0]["event"].clone(),
                w[0]["at_ms"].clone(),
                w[1]["event"].clone(),
                w[1]["at_ms"].clone(),
            )
        })
        .collect();
    assert!(late.is_empty(), "events out of order: {late:?}");
    assert!(all.iter().filter(|e| e["event"] == "probe").count() > 20);
}

#[test]
fn nobody_repairs_so_the_timeout_ends_the_run_not_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let child = start(dir.path(), &game_day_drill("1s", "1s"));
    let (code, output) = finish(child);
    assert_eq!(code, 1, "{output}");
    let journal = read_journal(&dir.path().join("run"));
    assert_eq!(journal["recovered"], false);
    let reason = journal["reason"].as_str().unwrap();
    assert!(
        reason.contains("not recovered by hand within 1.0s"),
        "{reason}"
    );
    let md = std::fs::read_to_string(dir.path().join("run/report.md")).unwrap();
    assert!(md.contains("Runbook steps nobody marked"), "{md}");
}

#[test]
fn people_commands_refuse_what_is_not_a_running_run() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], says: &str| {
        let output = firedrill().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    let path = dir.path().to_str().unwrap();
    refused(&["ack", path], "is not a firedrill run");
    std::fs::write(dir.path().join("events.jsonl"), "{\"not\":\"an event\"}\n").unwrap();
    refused(&["note", path, "hello"], "is not a firedrill run");
    refused(&["step", path, "0", "ok"], "1..");

    // A run whose runner is gone without ending it.
    let dead = r#"{"at_ms":0,"time":"2026-01-01T00:00:00.000Z","event":"run_started","drill":"d","run_id":"r","seed":1,"scenario":"s","target":"local","run_dir":"x","workdir":"w","pid":999999999,"rto_ms":1,"rpo_ms":null,"min_score":70,"steady_state":[],"has_data":false}"#;
    std::fs::write(dir.path().join("events.jsonl"), format!("{dead}\n")).unwrap();
    refused(&["ack", path], "is gone");

    // While it runs, a step number past the runbook's end is refused.
    let game = tempfile::tempdir().unwrap();
    let run_dir = game.path().join("run");
    let child = start(game.path(), &game_day_drill("2m", "1s"));
    while !std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap_or_default()
        .contains("\"event\":\"runbook_started\"")
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = run_dir.to_str().unwrap();
    refused(&["step", run, "4", "ok"], "the runbook has 3 steps");
    std::fs::write(game.path().join("healthy"), "").unwrap();
    let (_, output) = finish(child);
    assert!(output.contains("recovered by hand"), "{output}");
    let journal = read_journal(&run_dir);
    assert_eq!(journal["marks"].as_array().unwrap().len(), 0);
    let run_id = journal["run_id"].as_str().unwrap();
    assert!(common::processes_of_run(run_id).is_empty());
}

/// A small drill named `name` in `dir/name.yaml`: a file is removed and the
/// recovery (`repair`, after the outage was seen) runs.
fn quick_drill(dir: &Path, name: &str, repair: &str) -> PathBuf {
    let yaml = format!(
        r#"version: 1
name: {name}
objectives: {{rto: 30s}}
probes:
  healthy:
    command: test -f "{dir}/{name}.up"
    interval: {INTERVAL_MS}ms
steady_state: [healthy]
steps:
  - id: setup
    run: touch "{dir}/{name}.up"
  - id: break
    needs: [setup]
    fault: {{run: 'rm "{dir}/{name}.up"'}}
  - id: fix
    needs: [break]
    recover:
      run: |
        {await_outage}
        {repair}
"#,
        dir = dir.display(),
        await_outage = common::AWAIT_OUTAGE,
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A drill whose recovery puts the file back: it passes.
fn repaired_drill(dir: &Path, name: &str) -> PathBuf {
    quick_drill(dir, name, &format!("touch \"{}/{name}.up\"", dir.display()))
}

/// `firedrill run FILE...` in `dir`, its records under `dir/.firedrill/runs`.
fn game_day(dir: &Path, args: &[&str]) -> Command {
    let mut command = firedrill();
    command
        .current_dir(dir)
        .arg("run")
        .args(args)
        .arg("--halt-file")
        .arg(dir.join("halt"))
        .env("NO_COLOR", "1");
    command
}

/// The two run directories a game day of two drills in `dir` made.
fn two_runs(dir: &Path) -> Vec<PathBuf> {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join(".firedrill/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    runs
}

/// Row `index` of the table names `drill` and says `verdict`.
fn assert_row(rows: &[String], index: usize, drill: &str, verdict: &str) {
    let row = &rows[index];
    assert!(
        row.starts_with(drill) && row.contains(verdict),
        "row {index} is not {drill} {verdict}: {rows:?}"
    );
}

/// The game day's table: the lines after `game day: N drill(s)`.
fn table(stdout: &str) -> Vec<String> {
    stdout
        .split("\ngame day: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no game day table in\n{stdout}"))
        .lines()
        .skip(1)
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn a_game_day_runs_its_drills_in_order_and_ends_with_one_table_and_the_worst_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = repaired_drill(d, "a-restore");
    let second = quick_drill(d, "b-broken-fix", "exit 3");
    let output = game_day(d, &[first.to_str().unwrap(), second.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "worst of passed and failed\n{stdout}"
    );
    assert!(
        stdout.contains("== game day: drill 1 of 2: a-restore"),
        "{stdout}"
    );
    let rows = table(&stdout);
    assert_row(&rows, 0, "drill", "TTR");
    assert_row(&rows, 1, "a-restore", "passed");
    assert_row(&rows, 2, "b-broken-fix", "failed");
    // Each drill has its own records, named in the table.
    let runs = two_runs(d);
    for run in &runs {
        let journal = read_journal(run);
        let name = journal["drill"].as_str().unwrap();
        let row = rows.iter().find(|r| r.starts_with(name)).unwrap();
        assert!(
            row.ends_with(run.file_name().unwrap().to_str().unwrap()),
            "{row}"
        );
    }

    // A directory is a game day too: its drills in name order.
    let output = game_day(d, &["--dry-run", d.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn a_game_day_with_an_invalid_drill_or_one_run_dir_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = quick_drill(d, "good", "true");
    std::fs::write(d.join("bad.yaml"), "version: 1\nname: bad\nsteps: nope\n").unwrap();
    let output = game_day(d, &[good.to_str().unwrap(), "bad.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.yaml:"));
    let output = game_day(d, &["good.yaml", "good.yaml", "--run-dir", "r"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--run-dir and --junit"));
    let output = game_day(d, &["good.yaml", "--surprise", "5m-1m"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ends before it starts"));
    assert!(!d.join(".firedrill/runs").exists(), "nothing ran");
    assert!(!d.join("good.up").exists(), "nothing ran");
}

#[test]
fn ctrl_c_in_a_game_day_ends_the_current_drill_cleanly_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Nobody repairs the first drill: it waits for its recovery.
    let first = quick_drill(d, "waits", "sleep 60");
    let second = quick_drill(d, "never", "true");
    let out = d.join("output.txt");
    let file = std::fs::File::create(&out).unwrap();
    let child = game_day(d, &[first.to_str().unwrap(), second.to_str().unwrap()])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("▶ fix")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the recovery never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (code, output) = finish((child, out));
    assert_eq!(code, 130, "{output}");
    let rows = table(&output);
    assert_row(&rows, 1, "waits", "aborted");
    assert_row(&rows, 2, "never", "skipped");
    assert!(
        !d.join("never.up").exists(),
        "the second drill never started"
    );
    let runs: Vec<_> = std::fs::read_dir(d.join(".firedrill/runs"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 1);
}

#[test]
fn a_surprise_fault_comes_at_the_seeded_moment_and_is_recorded_only_when_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let drill = repaired_drill(d, "unannounced");
    let run_dir = d.join("run");
    let output = game_day(
        d,
        &[
            drill.to_str().unwrap(),
            "--surprise",
            "400ms-400ms",
            "--run-dir",
            run_dir.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let journal = read_journal(&run_dir);
    assert_eq!(journal["surprise"]["window"], "400ms-400ms");
    assert_eq!(journal["surprise"]["delay_ms"], 400);
    let all = events(&run_dir);
    let at = |name: &str| {
        all.iter()
            .position(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    // Nothing says it is coming: its event is written as the fault starts.
    assert!(at("steady_state_checked") < at("surprise_fault"));
    assert!(at("surprise_fault") < at("fault_injected"));
    let checked = all[at("steady_state_checked")]["at_ms"].as_u64().unwrap();
    let fault = journal["first_fault_ms"].as_u64().unwrap();
    assert!(
        fault >= checked + 400,
        "fault at {fault}, check at {checked}"
    );
    assert!(stdout.contains("surprise:"), "{stdout}");
}

/// The live view, read from a terminal: the recovery clock, the probes'
/// health, the runbook's steps and a note as it arrives.
#[test]
fn the_live_view_on_a_terminal_shows_the_clock_the_runbook_and_notes_as_they_arrive() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    write_drill(dir.path(), &game_day_drill("2m", "1s"));
    std::fs::write(dir.path().join("runbook.md"), RUNBOOK).unwrap();
    let size = nix::pty::Winsize {
        ws_row: 50,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let mut child = run_command(dir.path())
        .env("TERM", "xterm-256color")
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    // The screen: everything the run drew, read until the terminal closes.
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        let mut master = std::fs::File::from(pty.master);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = master.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        })
    };
    let shown = |text: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let now = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
            if now.contains(text) {
                return now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the screen never showed {text:?}:\n{now}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    shown("followed by hand: 3 steps");
    let note = firedrill()
        .arg("note")
        .arg(&run_dir)
        .arg("seen from the pty")
        .output()
        .unwrap();
    assert!(note.status.success());
    let screen_now = shown("✎ note: seen from the pty");
    for expected in [
        "recovery clock",
        "1. Look at the dashboard",
        "2. Restart the service",
        ". RUN_DIR/people.env",
        "○ healthy",
    ] {
        assert!(
            screen_now.contains(expected),
            "{expected:?} not on\n{screen_now}"
        );
    }
    std::fs::write(dir.path().join("healthy"), "").unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    let journal = read_journal(&run_dir);
    assert_eq!(journal["recovered"], true);
}

#[test]
fn each_drill_of_a_game_day_holds_its_own_run_dir_and_records_the_options_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let firedrill_bin = env!("CARGO_BIN_EXE_firedrill");
    // While it runs, a drill's RUN_DIR is locked: `clean` of it is refused.
    let drills: Vec<PathBuf> = ["a-first", "b-second"]
        .iter()
        .map(|name| {
            quick_drill(
                d,
                name,
                &format!(
                    "{firedrill_bin} clean \"$RUN_DIR\" >/dev/null 2>&1; echo $? > \"{}/{name}.clean\"; touch \"{}/{name}.up\"",
                    d.display(),
                    d.display()
                ),
            )
        })
        .collect();
    let output = game_day(
        d,
        &[
            drills[0].to_str().unwrap(),
            drills[1].to_str().unwrap(),
            "--var",
            "COLOUR=red",
            "--parallel",
            "2",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    for name in ["a-first", "b-second"] {
        let code = std::fs::read_to_string(d.join(format!("{name}.clean"))).unwrap();
        assert_eq!(code.trim(), "4", "{name}: clean of a running drill");
    }
    let runs = two_runs(d);
    for run in &runs {
        let started = events(run)
            .into_iter()
            .find(|e| e["event"] == "run_started")
            .unwrap();
        let options = &started["options"];
        assert_eq!(
            options["vars"],
            serde_json::json!([["COLOUR", "red"]]),
            "{started}"
        );
        assert_eq!(options["parallel"], 2, "{started}");
        assert_eq!(
            options["halt_file"],
            d.join("halt").display().to_string(),
            "{started}"
        );
        assert!(
            !started["files"].as_array().unwrap().is_empty(),
            "{started}"
        );
    }
}
