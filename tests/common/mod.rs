//! Shared helpers of the integration tests: run the real binary on a drill
//! written to a temporary directory, and check that nothing of the run is left.

#![allow(dead_code)]

pub mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Run {
    pub dir: tempfile::TempDir,
    pub output: Output,
    pub run_dir: PathBuf,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn journal(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.run_dir.join("journal.json")).unwrap_or_else(|e| {
            panic!(
                "no journal.json ({e}); stdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        });
        serde_json::from_str(&text).unwrap()
    }
    pub fn step(&self, id: &str) -> serde_json::Value {
        step_of(&self.journal(), id)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.run_dir.join("events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    /// Explains a failed expectation.
    pub fn explain(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

/// A shell command that waits until the run's monitor has seen a
/// steady-state probe fail. A fixture's recovery starts with it, as an
/// on-call engineer's starts after detection, so that a recovery faster than
/// one probe interval cannot hide the outage its drill caused (a run that
/// observes no outage fails: docs/scoring.md, "Outage observed").
pub const AWAIT_OUTAGE: &str =
    r#"until grep -q '"role":"steady","ok":false' "$RUN_DIR/events.jsonl"; do sleep 0.05; done"#;

pub fn firedrill() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firedrill"))
}

/// `firedrill run drill.yaml` in `dir`, with the run's records in `dir/run`
/// and a halt file of its own (`dir/halt`), so tests never meet each other's.
pub fn run_command(dir: &Path) -> Command {
    let mut command = firedrill();
    command
        .current_dir(dir)
        .arg("run")
        .arg("drill.yaml")
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--halt-file")
        .arg(dir.join("halt"))
        .env("NO_COLOR", "1");
    command
}

/// Writes `yaml` as `drill.yaml` in a fresh directory (`${T}` is replaced by
/// that directory) and runs it.
pub fn run_drill(yaml: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), yaml);
    run_in(dir, args)
}

/// Writes `yaml` as `dir/drill.yaml`, `${T}` replaced by `dir`.
pub fn write_drill(dir: &Path, yaml: &str) {
    let yaml = yaml.replace("${T}", &dir.display().to_string());
    std::fs::write(dir.join("drill.yaml"), yaml).unwrap();
}

/// Runs the `drill.yaml` already in `dir` to its end.
pub fn run_in(dir: tempfile::TempDir, args: &[&str]) -> Run {
    let output = run_command(dir.path()).args(args).output().unwrap();
    let run_dir = dir.path().join("run");
    Run {
        dir,
        output,
        run_dir,
    }
}

/// Waits up to 10s for a file to appear; whether it did.
pub fn wait_for(path: &Path) -> bool {
    for _ in 0..200 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    path.exists()
}

/// Sends SIGINT, as Ctrl-C does, to one process.
pub fn interrupt(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

/// The journal of a run directory.
pub fn read_journal(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("journal.json"))
        .unwrap_or_else(|e| panic!("no journal.json in {}: {e}", run_dir.display()));
    serde_json::from_str(&text).unwrap()
}

/// The last record of a step in a journal.
pub fn step_of(journal: &serde_json::Value, id: &str) -> serde_json::Value {
    journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no step {id} in the journal"))
}

/// Live processes whose environment carries the run's marker.
pub fn processes_of_run(run_id: &str) -> Vec<String> {
    let needle = format!("FIREDRILL_RUN_ID={run_id}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        if state == "Z" || state == "X" {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{name}/environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let cmdline = std::fs::read(format!("/proc/{name}/cmdline")).unwrap_or_default();
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// Asserts that nothing the run started is still alive.
pub fn assert_nothing_left(run: &Run) {
    let run_id = run.journal()["run_id"].as_str().unwrap().to_owned();
    let left = processes_of_run(&run_id);
    assert!(
        left.is_empty(),
        "processes of run {run_id} still alive: {left:?}"
    );
}

/// Whether a pid is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    if stat.is_empty() {
        return false;
    }
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    state != "Z" && state != "X"
}

pub fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub mod kwok;
