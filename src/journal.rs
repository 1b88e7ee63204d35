//! The whole result of a run: `journal.json` (SPEC §8).
//!
//! The journal is built from the event stream by the scorer and read back by
//! `firedrill report` and `firedrill history`, so its shape is the contract
//! between a run and everything that looks at it afterwards.

use std::path::Path;

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
    /// The process exit code of SPEC §8 for a run that ended with this verdict.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Passed => 0,
            Verdict::Failed => 1,
            Verdict::Aborted => 3,
            Verdict::Error => 4,
        }
    }

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
}

/// The runbook's part of the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookRecord {
    /// Path of the runbook as the drill names it.
    pub path: String,
    /// Its steps in order.
    pub steps: Vec<RunbookStepRecord>,
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
}

fn yes() -> bool {
    true
}

impl Journal {
    /// Reads `journal.json` from a run directory.
    pub fn read(run_dir: &Path) -> Result<Journal, String> {
        let path = run_dir.join("journal.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a firedrill journal: {error}", path.display()))
    }
}
