//! The whole result of a run: `journal.json` (docs/cli.md, "The run
//! directory").
//!
//! The journal is built from the event stream by the scorer and read back by
//! `firedrill report` and `firedrill history`, so its shape is the contract
//! between a run and everything that looks at it afterwards.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Score at or above `min_score` and the RPO met.
    Passed,
    /// Recovered too slowly, not at all, with a stale runbook, or losing too much data.
    Failed,
    /// A guard failed or the halt file appeared.
    Aborted,
    /// The drill could not be carried out (unhealthy before the drill, missing tool, ...).
    Error,
}

impl Verdict {
    /// The lower-case name used in files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Aborted => "aborted",
            Verdict::Error => "error",
        }
    }
}

/// Status of a drill step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Ran and succeeded.
    Ok,
    /// Ran and failed (exit code, timeout, expectation).
    Failed,
    /// Not run: a step it needs failed, or the run was aborted.
    Skipped,
    /// Was running when the run was interrupted.
    Interrupted,
}

impl StepStatus {
    /// The lower-case name used in files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Interrupted => "interrupted",
        }
    }
}

/// Status of a runbook step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunbookStepStatus {
    /// Ran as written and met its expectations.
    Ok,
    /// Ran as written and did not.
    Failed,
    /// Not run: an earlier step failed.
    Skipped,
    /// A manual (prose-only) step, or one done by hand in `--interactive`.
    Unverified,
    /// The operator edited the command in `--interactive`.
    Deviated,
}

/// One step of the drill graph as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step id.
    pub id: String,
    /// The action key: `run`, `fault`, `recover`, `probe`, `wait`, `apply`.
    #[serde(default)]
    pub action: String,
    /// How it ended.
    pub status: StepStatus,
    /// Milliseconds from the run's start to the step's start.
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// How long it took, all attempts included.
    pub duration_ms: u64,
    /// How many times it was tried.
    pub attempts: u32,
    /// Exit code of the last attempt, where there was a process.
    pub exit_code: Option<i32>,
    /// Why it failed or was skipped, or what it did; empty when there is nothing to say.
    pub detail: String,
    /// The tail of its output, for failures.
    #[serde(default)]
    pub output_tail: String,
}

/// A fault that was injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The step that injected it.
    pub step: String,
    /// The fault kind (`kill`, `pause`, `delete_cluster`, ...).
    pub kind: String,
    /// What it hit: services, paths, nodes, pods.
    pub targets: Vec<String>,
    /// Whether firedrill undid it.
    pub reverted: bool,
    /// Milliseconds from the run's start to the injection.
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// Extra facts: the corrupt seed, the signal, the revert command's result.
    #[serde(default)]
    pub detail: String,
}

/// One step of the runbook as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookStepRecord {
    /// The heading.
    pub title: String,
    /// Line of the heading in the runbook.
    #[serde(default)]
    pub line: usize,
    /// How it ended.
    pub status: RunbookStepStatus,
    /// How long it took.
    pub duration_ms: u64,
    /// Exit code of the shell that ran its blocks.
    pub exit_code: Option<i32>,
    /// The last lines of its output.
    pub output_tail: String,
    /// `Some(false)` when it failed on the second run of `check: idempotent`.
    pub idempotent: Option<bool>,
    /// The last lines of the second run's output (`check: idempotent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_run_output: Option<String>,
    /// The commands as written (what ran, or what would have).
    #[serde(default)]
    pub command: String,
    /// Why it failed: the exit code or the expectation not met.
    #[serde(default)]
    pub detail: String,
    /// Operator's note (`--interactive`).
    #[serde(default)]
    pub note: Option<String>,
    /// The command the operator ran instead (`--interactive` edit).
    #[serde(default)]
    pub deviation: Option<String>,
    /// When it started, in ms since the run started (older records lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When its second run (`check: idempotent`) started, in ms since the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_run_started_ms: Option<u64>,
    /// How long its second run took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_run_duration_ms: Option<u64>,
}

/// The runbook's part of the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookRecord {
    /// Path of the runbook as the drill names it.
    pub path: String,
    /// Its steps in order.
    pub steps: Vec<RunbookStepRecord>,
    /// The headings of a runbook people followed by hand
    /// (`recover: {manual: ...}`); its steps are then in `marks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_hand: Vec<String>,
}

/// One probe result from the background monitor: the health band of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSample {
    /// Milliseconds from the run's start.
    pub at_ms: u64,
    /// The probe's name.
    pub probe: String,
    /// Whether it passed.
    pub ok: bool,
}

/// How a person marked a runbook step they followed by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StepMark {
    /// It worked as written.
    Ok,
    /// It was wrong: the runbook needs fixing.
    Wrong,
    /// It was not done.
    Skipped,
}

impl StepMark {
    /// The word as typed and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            StepMark::Ok => "ok",
            StepMark::Wrong => "wrong",
            StepMark::Skipped => "skipped",
        }
    }
}

/// A person's note, as it arrived (docs/game-days.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// Wall-clock time (RFC 3339, UTC).
    pub time: String,
    /// The note as written.
    pub text: String,
}

/// A runbook step marked by a person (`firedrill step`); the last mark of
/// a step counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRecord {
    /// The runbook step, 1-based.
    pub step: usize,
    /// Its heading, when the runbook is known.
    #[serde(default)]
    pub title: Option<String>,
    /// How it went.
    pub mark: StepMark,
    /// Why, if they said.
    #[serde(default)]
    pub note: Option<String>,
    /// Milliseconds since the run started.
    pub at_ms: u64,
}

/// `journal.json`: the whole result of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// The drill's name.
    pub drill: String,
    /// This run's id.
    pub run_id: String,
    /// How it ended.
    pub verdict: Verdict,
    /// The overall score, 0–100.
    pub score: u32,
    /// The time part of the score, 0–100.
    pub time_score: u32,
    /// `100 × ok / executable` runbook steps; null without a runbook.
    pub runbook_accuracy: Option<f64>,
    /// Whether the steady state held after the last recovery step.
    pub recovered: bool,
    /// Whether the runbook alone restored the steady state.
    pub complete: bool,
    /// Whether a steady-state probe failed after the first fault; null
    /// without `steady_state` or without a fault.
    #[serde(default)]
    pub outage_observed: Option<bool>,
    /// `objectives.expect_outage`: a run that observed no outage fails.
    #[serde(default = "yes")]
    pub expect_outage: bool,
    /// The seed of every random choice; `--seed` replays it.
    pub seed: u64,
    /// Time to detect.
    pub ttd_ms: Option<u64>,
    /// Time to recover.
    pub ttr_ms: Option<u64>,
    /// The recovery time objective.
    pub rto_ms: u64,
    /// Measured data loss; null without `data:`.
    pub data_loss_ms: Option<u64>,
    /// The recovery point objective; null without `rpo`.
    pub rpo_ms: Option<u64>,
    /// What the data-loss measurement found, or why there is none: null
    /// only when the drill has no `data:` section.
    #[serde(default)]
    pub data_loss_detail: Option<String>,
    /// The score below which the run fails.
    #[serde(default)]
    pub min_score: u32,
    /// Why the run ended as it did, in one sentence.
    #[serde(default)]
    pub reason: String,
    /// The score's formula with this run's numbers filled in.
    #[serde(default)]
    pub formula: String,
    /// The drill file.
    #[serde(default)]
    pub scenario: String,
    /// `local` or `kind:<cluster>`.
    #[serde(default)]
    pub target: String,
    /// When the run started (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: String,
    /// How long the whole run took.
    #[serde(default)]
    pub duration_ms: u64,
    /// Milliseconds from the run's start to the first fault.
    #[serde(default)]
    pub first_fault_ms: Option<u64>,
    /// Every step of the graph.
    pub steps: Vec<StepRecord>,
    /// Every fault injected.
    pub faults: Vec<FaultRecord>,
    /// The runbook's steps; null for `recover: {run: ...}`.
    pub runbook: Option<RunbookRecord>,
    /// Background probe results from the first fault on.
    #[serde(default)]
    pub health: Vec<ProbeSample>,
    /// Time to alert: first fault to the first pass of a `detect` probe;
    /// null without `detect` or when no alert came.
    #[serde(default)]
    pub tta_alert_ms: Option<u64>,
    /// Time to acknowledge: first fault to the first `firedrill ack`.
    #[serde(default)]
    pub tt_ack_ms: Option<u64>,
    /// People's notes, in order.
    #[serde(default)]
    pub notes: Vec<Note>,
    /// Runbook steps marked by people, by step number (the last mark counts).
    #[serde(default)]
    pub marks: Vec<MarkRecord>,
    /// `run --surprise`: the window and the delay the seed chose; null
    /// for an announced drill.
    #[serde(default)]
    pub surprise: Option<SurpriseRecord>,
    /// What removing the WORKDIR left (a mount point inside it is never
    /// crossed), by path; absent when it was all removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workdir_left: Vec<String>,
}

/// When an unannounced drill's first fault came (`run --surprise`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurpriseRecord {
    /// The window as given (`0-20m`).
    pub window: String,
    /// From the steady-state check to the first fault.
    pub delay_ms: u64,
}

fn yes() -> bool {
    true
}

impl Journal {
    /// Reads `journal.json` from a run directory.
    pub fn read(run_dir: &Path) -> Result<Journal, JournalError> {
        let path = run_dir.join("journal.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => return Err(JournalError::Read { path, source }),
        };
        serde_json::from_str(&text).map_err(|source| JournalError::Parse { path, source })
    }
}

/// Why a `journal.json` could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The journal file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a journal (another file, a future version, a torn write).
    #[error("{} is not a firedrill journal: {source}", .path.display())]
    Parse {
        /// The journal file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}
