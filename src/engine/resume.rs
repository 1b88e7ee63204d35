//! `firedrill resume RUN_DIR`: continue a run whose runner died, from its
//! `events.jsonl`, against the world as it is (docs/cli.md, `resume`).
//! Finished steps are kept; a step that was running is run again, unless it
//! is a fault (one that may have half-happened is reported `interrupted`,
//! never injected twice, counts as injected and is reverted at the end);
//! faults that are in stay in and are reverted at the end; what the run
//! left running is adopted, except the processes of work that runs again;
//! a service that is down is started again only if no fault can have hit
//! it; a runbook continues at its first unfinished step.

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
    /// The run's options, if recorded (runs of older versions lack them).
    pub options: Option<crate::event::RunOptions>,
    /// The drill and runbook files as the run started with them.
    pub files: Vec<crate::event::FileHash>,
    /// The lock on the run directory, held while this runner runs.
    pub lock: Option<std::sync::Arc<crate::rundir::Lock>>,
}

/// The files a run depends on, with their hashes: the drill and the
/// runbooks its recover steps follow.
pub fn files_of(loaded: &crate::drill::LoadedDrill) -> Vec<crate::event::FileHash> {
    let mut paths = vec![loaded.path.clone()];
    for step in &loaded.drill.steps {
        if let crate::drill::Action::Recover(recover) = &step.action
            && let Some(runbook) = &recover.value.runbook
        {
            paths.push(loaded.dir.join(&runbook.value));
        }
    }
    paths
        .into_iter()
        .filter_map(|path| {
            let path = std::path::absolute(&path).unwrap_or(path);
            Some(crate::event::FileHash {
                sha256: crate::rundir::sha256_of(&path).ok()?,
                path: path.display().to_string(),
            })
        })
        .collect()
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
    /// Takes a run directory over: its lock first (a second `resume`, or the
    /// live runner, holds it), then what it records. Refuses a run that
    /// finished, was cleaned, or whose runner lives.
    pub fn read(run_dir: &Path) -> Result<Resume, String> {
        // Not a run directory: said before anything is written into it.
        Resume::load(run_dir)?;
        let lock = crate::rundir::Lock::take(run_dir)?;
        // Read again under the lock: a runner that held it may have just ended.
        let mut run = Resume::load(run_dir)?;
        run.lock = Some(std::sync::Arc::new(lock));
        if run.was_cleaned() {
            return Err(format!(
                "run {} was cleaned (`firedrill clean`): its processes were ended and its WORKDIR removed, so there is nothing to resume; start a new run",
                run.run_id
            ));
        }
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
            options,
            files,
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
            options: options.clone(),
            files: files.clone(),
            lock: None,
            events,
        })
    }

    /// Whether `firedrill clean` ended the run.
    pub fn was_cleaned(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::RunCleaned { .. }))
    }

    /// The recorded files that are not as they were when the run started,
    /// each with what became of it.
    pub fn changed_files(&self) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|file| {
                let path = Path::new(&file.path);
                match crate::rundir::sha256_of(path) {
                    Ok(now) if now == file.sha256 => None,
                    Ok(_) => Some(format!("{} (edited)", file.path)),
                    Err(_) => Some(format!("{} (gone: renamed or deleted?)", file.path)),
                }
            })
            .collect()
    }

    /// The pid each service was last started with.
    pub fn services(&self) -> HashMap<String, u32> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ProcessStarted {
                    pid,
                    owner: Some(crate::event::Owner::Service { name }),
                    ..
                } => Some((name.clone(), *pid)),
                _ => None,
            })
            .collect()
    }

    /// When each service's leader started, as recorded on this boot (see
    /// [`crate::leftovers::Recorded`]): none for another boot's.
    fn services_started(&self) -> std::collections::BTreeMap<String, u64> {
        let now = crate::leftovers::boot_id();
        let mut boot = None;
        let mut started = std::collections::BTreeMap::new();
        for event in &self.events {
            match &event.kind {
                EventKind::RunStarted { boot_id, .. } | EventKind::RunResumed { boot_id, .. } => {
                    boot = boot_id.clone();
                }
                EventKind::ProcessStarted {
                    started: at,
                    owner: Some(crate::event::Owner::Service { name }),
                    ..
                } => match (at, boot.is_some() && boot == now) {
                    (Some(at), true) => {
                        started.insert(name.clone(), *at);
                    }
                    _ => {
                        started.remove(name);
                    }
                },
                _ => {}
            }
        }
        started
    }

    /// What the target needs to take the system over: each service's pid,
    /// and the services a fault that started may have hit. A `kill` or
    /// `pause` hits the services it names; any other fault (a `run` shell,
    /// files deleted or corrupted) may have taken any service down, and
    /// firedrill cannot tell which.
    pub fn found(&self, drill: &crate::drill::Drill) -> crate::target::Found {
        use crate::target::FaultSpec;
        use crate::target::local::LocalFault;
        let mut hit = std::collections::BTreeMap::new();
        for step in self.faults_started() {
            let Some(fault) = drill.step(&step).and_then(|s| s.fault()) else {
                continue;
            };
            let named = match &fault.spec {
                FaultSpec::Local(
                    LocalFault::Kill { services, .. } | LocalFault::Pause { services, .. },
                ) => services.clone(),
                FaultSpec::Kube(_) | FaultSpec::Kind(_) | FaultSpec::Kwok(_) => Vec::new(),
                FaultSpec::Local(LocalFault::Delete { .. } | LocalFault::Corrupt { .. })
                | FaultSpec::Shell(_) => drill.services.keys().cloned().collect(),
            };
            for service in named {
                hit.entry(service).or_insert_with(|| {
                    format!("fault `{step}` ({}) may have hit it", fault.spec.kind())
                });
            }
        }
        crate::target::Found {
            services: self.services().into_iter().collect(),
            hit,
            started: self.services_started(),
        }
    }

    /// Fault steps that started: injected, interrupted, or being injected
    /// when the runner died (whatever they hit may be down because of them).
    pub fn faults_started(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StepStarted { step, action, .. } if action == "fault" => {
                    Some(step.clone())
                }
                _ => None,
            })
            .filter(|step| seen.insert(step.clone()))
            .collect()
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

    /// Wall-clock ms of the first fault's start, if one is in: injected,
    /// or interrupted by the runner's death (it counts as injected).
    pub fn first_fault_epoch_ms(&self) -> Option<u64> {
        let unfinished = self.unfinished();
        let faults: HashSet<&str> = self
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::FaultInjected { step, .. } => Some(step.as_str()),
                EventKind::StepStarted { step, action, .. }
                    if action == "fault" && unfinished.contains(step) =>
                {
                    Some(step.as_str())
                }
                _ => None,
            })
            .collect();
        self.events.iter().find_map(|e| match &e.kind {
            EventKind::StepStarted { step, .. } if faults.contains(step.as_str()) => {
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
