//! `firedrill resume RUN_DIR`: continue a run whose runner died, from its
//! `events.jsonl`. Finished steps are kept; a step that was running is run
//! again, unless it is a fault (one that may have half-happened is reported
//! `interrupted` and never injected twice); faults that are in stay recorded
//! and are reverted at the end; services restart on the data left in
//! `WORKDIR`; a runbook continues at its first unfinished step.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::event::{Event, EventKind, read_events};
use crate::journal::{RunbookStepStatus, StepStatus};

/// What a dead run had done.
#[derive(Debug, Clone)]
pub struct Resume {
    /// Every event it recorded.
    pub events: Vec<Event>,
    /// Its id (and process marker).
    pub run_id: String,
    /// Its records.
    pub run_dir: PathBuf,
    /// Its work directory: always `RUN_DIR/work`, whatever the events say.
    pub workdir: PathBuf,
    /// The WORKDIR `events.jsonl` records, when it is not `RUN_DIR/work`
    /// (a crafted or copied run directory): never used, only reported.
    pub foreign_workdir: Option<PathBuf>,
    /// Its seed.
    pub seed: u64,
    /// The drill file it ran.
    pub scenario: PathBuf,
    /// When it started.
    pub started: chrono::DateTime<chrono::Utc>,
    /// The pid of its last runner (the one that started it, or resumed it last).
    pub pid: u32,
    /// When that runner started (ticks after boot), if recorded.
    pub pid_started: Option<u64>,
}

/// A fault that was in when the runner died.
#[derive(Debug, Clone)]
pub struct ActiveFault {
    /// Step id.
    pub step: String,
    /// Fault kind.
    pub kind: String,
    /// How to undo it: the target's record, or why it cannot be read.
    pub undo: Option<Result<crate::target::Undo, String>>,
}

impl Resume {
    /// Reads a run directory. Refuses a run that finished or whose runner lives.
    pub fn read(run_dir: &Path) -> Result<Resume, String> {
        let run = Resume::load(run_dir)?;
        if run.has_finished() {
            return Err(format!(
                "run {} finished; there is nothing to resume (see `firedrill report {}`)",
                run.run_id,
                run_dir.display()
            ));
        }
        if run.runner_alive() {
            return Err(format!(
                "the runner of run {} (pid {}) is still alive; resume is for runs whose runner died",
                run.run_id, run.pid
            ));
        }
        Ok(run)
    }

    /// Reads what a run directory records, whatever state the run is in
    /// (`clean` needs this for finished runs too).
    pub fn load(run_dir: &Path) -> Result<Resume, String> {
        let events = read_events(&run_dir.join("events.jsonl")).map_err(|error| {
            format!(
                "{} has no readable events.jsonl ({error}); is it a firedrill run directory?",
                run_dir.display()
            )
        })?;
        let Some((start, event)) = events.iter().find_map(|e| match &e.kind {
            EventKind::RunStarted { .. } => Some((e, &e.kind)),
            _ => None,
        }) else {
            return Err(format!(
                "{}/events.jsonl does not record a run start",
                run_dir.display()
            ));
        };
        let EventKind::RunStarted {
            run_id,
            seed,
            scenario,
            workdir,
            pid,
            pid_started,
            ..
        } = event
        else {
            unreachable!("matched above")
        };
        // The runner is the last one to take the run over.
        let (last_pid, last_started) = events
            .iter()
            .rev()
            .find_map(|e| match e.kind {
                EventKind::RunResumed {
                    pid, pid_started, ..
                } => Some((pid, pid_started)),
                _ => None,
            })
            .unwrap_or((*pid, *pid_started));
        // The records are where they are read, wherever they were written.
        let run_dir = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
        let (own_workdir, same) = crate::rundir::workdir_of(&run_dir, Path::new(workdir));
        let started = chrono::DateTime::parse_from_rfc3339(&start.time)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|error| format!("events.jsonl: bad run start time: {error}"))?;
        Ok(Resume {
            run_id: run_id.clone(),
            run_dir,
            workdir: own_workdir,
            foreign_workdir: (!same).then(|| PathBuf::from(workdir)),
            seed: *seed,
            scenario: PathBuf::from(scenario),
            started,
            pid: last_pid,
            pid_started: last_started,
            events,
        })
    }

    /// Whether the run recorded its end.
    pub fn has_finished(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::RunFinished { .. }))
    }

    /// Whether the run's (last) runner is still alive: the same pid with
    /// the same start time (never judged by its name).
    pub fn runner_alive(&self) -> bool {
        crate::rundir::runner_alive(self.pid, self.pid_started)
    }

    /// Steps that finished, with their status and attempts.
    pub fn finished(&self) -> HashMap<String, (StepStatus, u32)> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StepFinished {
                    step,
                    status,
                    attempts,
                    ..
                } => Some((step.clone(), (*status, *attempts))),
                _ => None,
            })
            .collect()
    }

    /// Steps that started and never finished.
    pub fn unfinished(&self) -> Vec<String> {
        let finished = self.finished();
        let mut seen = HashSet::new();
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StepStarted { step, .. } => Some(step.clone()),
                _ => None,
            })
            .filter(|step| !finished.contains_key(step) && seen.insert(step.clone()))
            .collect()
    }

    /// Wall-clock ms of the first fault's start, if one started.
    pub fn first_fault_epoch_ms(&self) -> Option<u64> {
        let step = self.events.iter().find_map(|e| match &e.kind {
            EventKind::FaultInjected { step, .. } => Some(step.clone()),
            _ => None,
        })?;
        self.events.iter().find_map(|e| match &e.kind {
            EventKind::StepStarted { step: s, .. } if *s == step => {
                chrono::DateTime::parse_from_rfc3339(&e.time)
                    .ok()
                    .map(|t| t.timestamp_millis() as u64)
            }
            _ => None,
        })
    }

    /// Whether the steady state was checked (and held) before a fault.
    pub fn steady_checked(&self) -> bool {
        self.events.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::SteadyStateChecked { ok: true, .. } | EventKind::FaultInjected { .. }
            )
        })
    }

    /// Faults injected and not reverted.
    pub fn active_faults(&self) -> Vec<ActiveFault> {
        let mut active: Vec<ActiveFault> = Vec::new();
        for event in &self.events {
            match &event.kind {
                EventKind::FaultInjected {
                    step, kind, undo, ..
                } => active.push(ActiveFault {
                    step: step.clone(),
                    kind: kind.clone(),
                    undo: undo.clone().map(|undo| {
                        serde_json::from_value(undo).map_err(|error| {
                            format!("the undo record in events.jsonl cannot be read: {error}")
                        })
                    }),
                }),
                EventKind::FaultReverted { step, .. } => active.retain(|f| &f.step != step),
                _ => {}
            }
        }
        active
    }

    /// Per recover step, the runbook steps that are done (ok or manual).
    pub fn runbook_done(&self) -> HashMap<String, BTreeSet<usize>> {
        let mut done: HashMap<String, BTreeSet<usize>> = HashMap::new();
        for event in &self.events {
            if let EventKind::RunbookStep {
                step,
                index,
                status,
                idempotent: None,
                ..
            } = &event.kind
                && matches!(
                    status,
                    RunbookStepStatus::Ok | RunbookStepStatus::Unverified
                )
            {
                done.entry(step.clone()).or_default().insert(*index);
            }
        }
        done
    }

    /// Recover steps whose runbook was announced already.
    pub fn runbooks_started(&self) -> HashSet<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::RunbookStarted { step, .. } => Some(step.clone()),
                _ => None,
            })
            .collect()
    }
}
