//! The executor: runs a drill's graph on a target, from setup to sweep.
//!
//! Order of a run: records and environment; target setup and services'
//! `ready`; the data heartbeat; the graph (steps whose needs are done run
//! concurrently up to `--parallel`); the steady-state check right before the
//! first fault; from then on the background monitor of steady-state and guard
//! probes; after the graph the recovery check and the data-loss read; reverts;
//! evidence on failure; teardown and the sweep of every process of the run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::drill::{ActionKind, Drill, LoadedDrill, Probe, Revert, Step};
use crate::engine::env::{expand, expand_vars};
use crate::engine::event::{Emitter, EventKind, JsonlFile, ProbeRole, Reporter};
use crate::engine::probe;
use crate::journal::{Journal, StepStatus, Verdict};
use crate::plan::Graph;
use crate::process;
use crate::score::{self, Ending};
use crate::target::{ProbeOutcome, RunContext, Target, TargetError};

/// How a run is carried out (`firedrill run` options).
#[derive(Debug, Clone)]
pub struct Options {
    /// `--var NAME=VALUE`, overriding `vars`.
    pub vars: Vec<(String, String)>,
    /// Seed of random choices; random when `None`.
    pub seed: Option<u64>,
    /// Steps running at once.
    pub parallel: usize,
    /// Keep WORKDIR.
    pub keep: bool,
    /// Go on after a failed runbook step.
    pub runbook_continue: bool,
    /// Walk through runbooks with an operator answering on stdin.
    pub interactive: bool,
    /// Where records go; default `.firedrill/runs/<run id>`.
    pub run_dir: Option<PathBuf>,
    /// The halt file.
    pub halt_file: PathBuf,
    /// Grace period between SIGTERM and SIGKILL at the end.
    pub grace: Duration,
    /// End every descendant of this process at the end, not only those
    /// marked with the run id (the runner: yes; an in-process test: no).
    pub sweep_descendants: bool,
    /// Continue this dead run instead of starting a new one.
    pub resume: Option<crate::engine::resume::Resume>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            vars: Vec::new(),
            seed: None,
            parallel: std::thread::available_parallelism().map_or(2, |n| n.get()),
            keep: false,
            runbook_continue: false,
            interactive: false,
            run_dir: None,
            halt_file: PathBuf::from(".firedrill/halt"),
            grace: Duration::from_secs(5),
            sweep_descendants: true,
            resume: None,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The result.
    pub journal: Journal,
    /// Where the records are.
    pub run_dir: PathBuf,
    /// The process exit code (SPEC §8).
    pub exit_code: i32,
}

/// A run could not start (bad `--run-dir`, unwritable directory).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// A new run id: UTC time, drill name and a random suffix.
pub fn new_run_id(drill: &str) -> String {
    format!(
        "{}-{}-{:04x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        drill,
        rand::random::<u16>()
    )
}

/// The run's environment: built-ins, then `vars` with `--var` overrides,
/// expanded. (The process environment is inherited on top of nothing: commands
/// see the runner's environment plus these.)
pub fn run_env(
    loaded: &LoadedDrill,
    run_id: &str,
    run_dir: &Path,
    workdir: &Path,
    overrides: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut builtins = BTreeMap::new();
    builtins.insert("WORKDIR".to_owned(), workdir.display().to_string());
    builtins.insert("RUN_ID".to_owned(), run_id.to_owned());
    builtins.insert("DRILL".to_owned(), loaded.drill.name.clone());
    builtins.insert(
        "SCENARIO_DIR".to_owned(),
        absolute(&loaded.dir).display().to_string(),
    );
    builtins.insert("RUN_DIR".to_owned(), run_dir.display().to_string());
    builtins.insert(process::RUN_MARKER.to_owned(), run_id.to_owned());
    if let crate::drill::Target::Kind(kind) = &loaded.drill.target {
        builtins.insert("CLUSTER".to_owned(), kind.cluster.value.clone());
        builtins.insert(
            "KUBECONFIG".to_owned(),
            run_dir.join("kubeconfig").display().to_string(),
        );
    }
    let mut vars = loaded.drill.vars.clone();
    for (name, value) in overrides {
        vars.insert(name.clone(), value.clone());
    }
    expand_vars(&builtins, &vars)
}

fn absolute(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_default();
    }
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

/// How one step ended.
#[derive(Debug, Clone)]
pub(crate) struct StepResult {
    pub(crate) status: StepStatus,
    pub(crate) attempts: u32,
    pub(crate) exit_code: Option<i32>,
    pub(crate) detail: String,
    pub(crate) output_tail: String,
    pub(crate) outputs: BTreeMap<String, String>,
}

impl StepResult {
    pub(crate) fn ok(detail: impl Into<String>) -> StepResult {
        StepResult {
            status: StepStatus::Ok,
            attempts: 1,
            exit_code: None,
            detail: detail.into(),
            output_tail: String::new(),
            outputs: BTreeMap::new(),
        }
    }
    pub(crate) fn failed(detail: impl Into<String>) -> StepResult {
        StepResult {
            status: StepStatus::Failed,
            ..StepResult::ok(detail)
        }
    }
}

/// A fault that is in, with how to undo it.
#[derive(Debug, Clone)]
struct Active {
    step: String,
    kind: String,
    undo: Option<serde_json::Value>,
    revert: Revert,
}

/// State shared by the scheduler, step tasks and monitors.
pub(crate) struct Shared {
    pub(crate) drill: Drill,
    pub(crate) target: Arc<dyn Target>,
    pub(crate) ctx: RunContext,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) runbook_continue: bool,
    pub(crate) operator: Option<Arc<crate::engine::recover::Operator>>,
    halt_file: PathBuf,
    abort: watch::Sender<Option<String>>,
    active: Mutex<Vec<Active>>,
    outputs: Mutex<HashMap<String, BTreeMap<String, String>>>,
    step_groups: Mutex<HashMap<String, i32>>,
    /// When each step's first attempt started (run clock, ms).
    step_started: Mutex<HashMap<String, u64>>,
    /// On resume: per recover step, the runbook steps already done.
    pub(crate) resumed_runbook: HashMap<String, std::collections::BTreeSet<usize>>,
    /// Recover steps whose `RunbookStarted` is recorded.
    pub(crate) runbooks_announced: Mutex<HashSet<String>>,
    /// Wall-clock epoch ms of the first fault's start.
    first_fault_epoch_ms: Mutex<Option<u64>>,
    /// Set when a safety check refused a fault or the target is unusable.
    target_failure: Mutex<Option<TargetError>>,
}

impl Shared {
    fn abort(&self, reason: String) {
        self.abort.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    fn aborted(&self) -> Option<String> {
        self.abort.borrow().clone()
    }

    fn probe(&self, name: &str) -> Option<&Probe> {
        self.drill.probes.get(name)
    }

    /// The environment of a step: the run's, plus the outputs of every step
    /// it needs, directly or not.
    /// Wall-clock ms of the first fault, once one is in.
    pub(crate) fn first_fault_ms(&self) -> Option<u64> {
        *self
            .first_fault_epoch_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn step_env_of(&self, step: &Step) -> BTreeMap<String, String> {
        self.step_env(step)
    }

    fn step_env(&self, step: &Step) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        let mut stack: Vec<String> = step.needs.iter().map(|n| n.value.clone()).collect();
        let mut order = Vec::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            order.push(id.clone());
            if let Some(need) = self.drill.step(&id) {
                stack.extend(need.needs.iter().map(|n| n.value.clone()));
            }
        }
        // Nearest needs win: apply the farthest first.
        for id in order.iter().rev() {
            if let Some(values) = outputs.get(id) {
                env.extend(values.clone());
            }
        }
        env
    }
}

/// Waits until a watch changes; forever if its sender is gone.
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs a drill to its end. `interrupt` turns true on Ctrl-C.
pub async fn run(
    loaded: &LoadedDrill,
    target: Arc<dyn Target>,
    options: Options,
    mut reporters: Vec<Box<dyn Reporter>>,
    interrupt: watch::Receiver<bool>,
) -> Result<Outcome, StartError> {
    let drill = loaded.drill.clone();
    let resume = options.resume.clone();
    let run_id = match &resume {
        Some(resume) => resume.run_id.clone(),
        None => new_run_id(&drill.name),
    };
    let run_dir = match &resume {
        Some(resume) => resume.run_dir.clone(),
        None => absolute(
            &options
                .run_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".firedrill/runs").join(&run_id)),
        ),
    };
    if resume.is_none() && run_dir.join("events.jsonl").exists() {
        return Err(StartError(format!(
            "{} already holds a run; give another --run-dir (or `firedrill resume` it)",
            run_dir.display()
        )));
    }
    let workdir = match &resume {
        Some(resume) => resume.workdir.clone(),
        None => run_dir.join("work"),
    };
    for dir in [
        &run_dir,
        &workdir,
        &run_dir.join("logs"),
        &run_dir.join("outputs"),
    ] {
        std::fs::create_dir_all(dir)
            .map_err(|error| StartError(format!("cannot create {}: {error}", dir.display())))?;
    }
    let jsonl = JsonlFile::create(&run_dir.join("events.jsonl")).map_err(|error| {
        StartError(format!(
            "cannot write {}: {error}",
            run_dir.join("events.jsonl").display()
        ))
    })?;
    reporters.insert(0, Box::new(jsonl));
    let emitter = match &resume {
        Some(resume) => Emitter::resumed(reporters, resume.events.clone(), resume.started),
        None => Emitter::new(reporters),
    };
    let seed = match &resume {
        Some(resume) => resume.seed,
        None => options.seed.unwrap_or_else(rand::random),
    };
    let mut env = run_env(loaded, &run_id, &run_dir, &workdir, &options.vars);
    let ctx = RunContext {
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        workdir: workdir.clone(),
        scenario_dir: absolute(&loaded.dir),
        env: env.clone(),
        seed,
        emitter: emitter.clone(),
    };
    if let Some(resume) = &resume {
        emitter.emit(EventKind::RunResumed {
            pid: std::process::id(),
            finished_steps: resume.finished().len(),
        });
        // What the dead runner left running goes first; services restart below.
        let ended = process::sweep(&run_id, options.grace, false).await;
        if !ended.is_empty() {
            tracing::info!(count = ended.len(), "ended processes the dead runner left");
        }
    } else {
        emitter.emit(EventKind::RunStarted {
            drill: drill.name.clone(),
            run_id: run_id.clone(),
            seed,
            scenario: absolute(&loaded.path).display().to_string(),
            target: target.describe(),
            run_dir: run_dir.display().to_string(),
            workdir: workdir.display().to_string(),
            pid: std::process::id(),
            rto_ms: drill.objectives.rto.0.as_millis() as u64,
            rpo_ms: drill
                .objectives
                .rpo
                .as_ref()
                .map(|rpo| rpo.value.0.as_millis() as u64),
            min_score: drill.min_score(),
            steady_state: drill.steady_state.iter().map(|s| s.value.clone()).collect(),
            has_data: drill.data.is_some(),
        });
    }

    let (abort_tx, abort_rx) = watch::channel(None);
    let halt_file = absolute(&options.halt_file);
    let mut ending = Ending::Completed;

    // The big red button before anything starts.
    if halt_file.exists() {
        let reason = format!(
            "the halt file {} exists: no drill may start a fault while it is there",
            halt_file.display()
        );
        emitter.emit(EventKind::Aborted {
            reason: reason.clone(),
        });
        ending = Ending::Aborted(reason);
    }

    // Setup.
    if ending == Ending::Completed {
        match target.setup(&ctx).await {
            Ok(extra) => env.extend(extra),
            Err(error) => ending = Ending::Error(format!("target setup failed: {error}")),
        }
    }
    let shared = Arc::new(Shared {
        drill: drill.clone(),
        target: target.clone(),
        ctx: RunContext {
            env: env.clone(),
            ..ctx.clone()
        },
        env,
        runbook_continue: options.runbook_continue,
        operator: options
            .interactive
            .then(|| Arc::new(crate::engine::recover::Operator::stdin())),
        halt_file: halt_file.clone(),
        abort: abort_tx,
        active: Mutex::new(
            resume
                .iter()
                .flat_map(|r| r.active_faults())
                .map(|f| Active {
                    revert: drill
                        .step(&f.step)
                        .and_then(|s| s.fault.as_ref())
                        .map(|fault| fault.value.revert.clone())
                        .unwrap_or_default(),
                    step: f.step,
                    kind: f.kind,
                    undo: f.undo,
                })
                .collect(),
        ),
        resumed_runbook: resume
            .as_ref()
            .map(|r| r.runbook_done())
            .unwrap_or_default(),
        runbooks_announced: Mutex::new(
            resume
                .as_ref()
                .map(|r| r.runbooks_started())
                .unwrap_or_default(),
        ),
        outputs: Mutex::new(HashMap::new()),
        step_groups: Mutex::new(HashMap::new()),
        step_started: Mutex::new(HashMap::new()),
        first_fault_epoch_ms: Mutex::new(resume.as_ref().and_then(|r| r.first_fault_epoch_ms())),
        target_failure: Mutex::new(None),
    });

    if ending == Ending::Completed
        && let Err(why) = await_services(&shared, interrupt.clone()).await
    {
        ending = Ending::Error(why);
    }
    if *interrupt.borrow() && ending == Ending::Completed {
        ending = Ending::Interrupted;
    }

    // The halt file is watched for the whole run.
    let (stop_watchers, watchers_stopped) = watch::channel(false);
    let halt_watch = tokio::spawn(watch_halt_file(shared.clone(), watchers_stopped.clone()));
    // Heartbeats until the first fault.
    let (fault_started_tx, fault_started_rx) = watch::channel(false);
    let fault_before_resume = resume
        .as_ref()
        .is_some_and(|r| r.first_fault_epoch_ms().is_some());
    let writer = drill
        .data
        .as_ref()
        .filter(|_| ending == Ending::Completed && !fault_before_resume)
        .map(|data| {
            tokio::spawn(heartbeats(
                shared.ctx.scenario_dir.clone(),
                data.write.clone(),
                data.every.map_or(Duration::from_secs(1), |d| d.0),
                shared.env.clone(),
                fault_started_rx.clone(),
                watchers_stopped.clone(),
            ))
        });

    let mut monitors = Vec::new();
    if ending == Ending::Completed {
        ending = schedule(
            &shared,
            options.parallel.max(1),
            interrupt.clone(),
            abort_rx.clone(),
            Background {
                fault_started: &fault_started_tx,
                monitors: &mut monitors,
                stopped: &watchers_stopped,
            },
            resume.as_ref(),
        )
        .await;
    }
    let _ = fault_started_tx.send(true);
    if let Some(writer) = writer {
        writer.abort();
    }

    let fault_happened = shared
        .first_fault_epoch_ms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some();
    if ending == Ending::Completed && fault_happened {
        recovery_check(&shared, interrupt.clone()).await;
        if let Some(data) = &drill.data {
            measure_data_loss(&shared, &data.read).await;
        }
    }
    if *interrupt.borrow() && ending == Ending::Completed {
        ending = Ending::Interrupted;
    }
    let _ = stop_watchers.send(true);
    for monitor in monitors {
        let _ = monitor.await;
    }
    halt_watch.abort();

    // Processes of steps that are still running (after an abort or Ctrl-C).
    for pgid in shared
        .step_groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        process::kill_group(*pgid, nix::sys::signal::Signal::SIGKILL);
    }
    revert_all(&shared).await;

    let preliminary = score::journal(&emitter.events(), &ending);
    if preliminary.verdict != Verdict::Passed {
        let evidence = run_dir.join("evidence");
        let _ = std::fs::create_dir_all(&evidence);
        target.collect_evidence(&evidence, &shared.ctx).await;
        write_run_evidence(&evidence, &preliminary, &run_id);
    }
    target.teardown(&shared.ctx, options.keep).await;
    let swept = process::sweep(&run_id, options.grace, options.sweep_descendants).await;
    if !swept.is_empty() {
        tracing::info!(count = swept.len(), "ended processes the run left behind");
    }
    if !options.keep {
        let _ = std::fs::remove_dir_all(&workdir);
    }

    let mut journal = score::journal(&emitter.events(), &ending);
    emitter.emit(EventKind::RunFinished {
        verdict: journal.verdict,
        reason: journal.reason.clone(),
        interrupted: ending == Ending::Interrupted,
    });
    journal.duration_ms = emitter.now_ms();
    emitter.finish();
    if let Ok(text) = serde_json::to_string_pretty(&journal) {
        let _ = std::fs::write(run_dir.join("journal.json"), text + "\n");
    }
    if let Err(error) = crate::report::write_all(&run_dir, &journal) {
        tracing::warn!(%error, "cannot write the reports");
    }
    let exit_code = if ending == Ending::Interrupted {
        130
    } else {
        journal.verdict.exit_code()
    };
    Ok(Outcome {
        journal,
        run_dir,
        exit_code,
    })
}

/// What the engine itself knows of a failure: the steps and runbook steps
/// that failed with their output, and what of the run was still running.
fn write_run_evidence(dir: &Path, journal: &Journal, run_id: &str) {
    let mut failed = String::new();
    for step in &journal.steps {
        if matches!(step.status, StepStatus::Failed | StepStatus::Interrupted) {
            failed.push_str(&format!(
                "step {} ({}): {:?} after {} attempt(s), exit {:?}: {}\n{}\n\n",
                step.id,
                step.action,
                step.status,
                step.attempts,
                step.exit_code,
                step.detail,
                step.output_tail
            ));
        }
    }
    if let Some(runbook) = &journal.runbook {
        for (index, step) in runbook.steps.iter().enumerate() {
            if step.status == crate::journal::RunbookStepStatus::Failed {
                failed.push_str(&format!(
                    "runbook {} step {} ({}, line {}): exit {:?}: {}\n$ {}\n{}\n\n",
                    runbook.path,
                    index + 1,
                    step.title,
                    step.line,
                    step.exit_code,
                    step.detail,
                    step.command,
                    step.output_tail
                ));
            }
        }
    }
    if !failed.is_empty() {
        let _ = std::fs::write(dir.join("failed-steps.txt"), failed);
    }
    let mut processes = String::new();
    for pid in process::marked_processes(run_id) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        processes.push_str(&format!(
            "{pid} {}\n",
            String::from_utf8_lossy(&cmdline).replace('\0', " ").trim()
        ));
    }
    if !processes.is_empty() {
        let _ = std::fs::write(dir.join("processes.txt"), processes);
    }
}

/// Starts nothing (services are started by the target); waits for every
/// service's `ready` probe, in parallel.
async fn await_services(
    shared: &Arc<Shared>,
    interrupt: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut waits = JoinSet::new();
    for (name, service) in &shared.drill.services {
        let Some(ready) = &service.ready else {
            shared.ctx.emitter.emit(EventKind::ServiceReady {
                service: name.clone(),
            });
            continue;
        };
        let probe = match ready {
            crate::drill::ProbeRef::Name(probe_name) => match shared.probe(probe_name) {
                Some(probe) => probe.clone(),
                None => {
                    return Err(format!(
                        "service `{name}`: unknown probe `{}`",
                        probe_name.value
                    ));
                }
            },
            crate::drill::ProbeRef::Inline(probe) => (**probe).clone(),
        };
        let timeout = service
            .ready_timeout
            .map_or(Duration::from_secs(60), |d| d.0);
        let shared = shared.clone();
        let name = name.clone();
        let mut interrupt = interrupt.clone();
        waits.spawn(async move {
            let waited = tokio::select! {
                result = await_probe(&shared, &probe, timeout) => result,
                _ = changed(&mut interrupt) => Err("interrupted".to_owned()),
            };
            match waited {
                Ok(()) => {
                    shared.ctx.emitter.emit(EventKind::ServiceReady {
                        service: name.clone(),
                    });
                    Ok(())
                }
                Err(why) => Err(format!(
                    "service `{name}` did not become ready within {}: {why} (its output is in {})",
                    crate::duration::format_duration(timeout),
                    shared
                        .ctx
                        .run_dir
                        .join("logs")
                        .join(format!("{name}.log"))
                        .display()
                )),
            }
        });
    }
    let mut first_error = None;
    while let Some(result) = waits.join_next().await {
        if let Ok(Err(why)) = result {
            first_error.get_or_insert(why);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Polls a probe until it passes `success_threshold` times in a row, or the
/// time is up. The error is the last failure's detail.
async fn await_probe(shared: &Shared, probe: &Probe, within: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut streak = 0;
    let mut last = String::from("never checked");
    loop {
        let outcome = probe::check(probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
        if outcome.ok {
            streak += 1;
            if streak >= probe.success_threshold() {
                return Ok(());
            }
        } else {
            streak = 0;
            last = outcome.detail;
        }
        if tokio::time::Instant::now() + probe.interval() > deadline {
            return Err(last);
        }
        tokio::time::sleep(probe.interval()).await;
    }
}

/// Every `interval` while the run goes on: is the halt file there?
async fn watch_halt_file(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        if shared.halt_file.exists() {
            let reason = format!("halt file {} appeared", shared.halt_file.display());
            if shared.aborted().is_none() {
                shared.ctx.emitter.emit(EventKind::Aborted {
                    reason: reason.clone(),
                });
            }
            shared.abort(reason);
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = changed(&mut stopped) => return,
        }
    }
}

/// Writes a heartbeat every `every` until the first fault starts.
async fn heartbeats(
    cwd: PathBuf,
    write: String,
    every: Duration,
    env: BTreeMap<String, String>,
    mut fault_started: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if *fault_started.borrow() {
            return;
        }
        match process::run_captured(&write, &env, Some(&cwd), Duration::from_secs(10)).await {
            Ok((finished, _)) if finished.success() => {}
            Ok((finished, _)) => {
                tracing::warn!(exit = ?finished.exit_code, stderr = %finished.output.trim(), "heartbeat write failed")
            }
            Err(error) => tracing::warn!(%error, "heartbeat write could not start"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = changed(&mut fault_started) => return,
            _ = changed(&mut stopped) => return,
        }
    }
}

/// The background monitor of one probe from the first fault on.
async fn monitor(
    shared: Arc<Shared>,
    name: String,
    roles: Vec<ProbeRole>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(probe) = shared.probe(&name).cloned() else {
        return;
    };
    loop {
        if *stopped.borrow() {
            return;
        }
        let outcome = probe::check(&probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
        if *stopped.borrow() {
            return;
        }
        emit_probe(&shared, &name, &roles, &outcome);
        if roles.contains(&ProbeRole::Guard) && !outcome.ok {
            let reason = format!("guard `{name}` failed: {}", first_line(&outcome.detail));
            if shared.aborted().is_none() {
                shared.ctx.emitter.emit(EventKind::Aborted {
                    reason: reason.clone(),
                });
            }
            shared.abort(reason);
        }
        tokio::select! {
            _ = tokio::time::sleep(probe.interval()) => {}
            _ = changed(&mut stopped) => return,
        }
    }
}

fn emit_probe(shared: &Shared, name: &str, roles: &[ProbeRole], outcome: &ProbeOutcome) {
    for role in roles {
        shared.ctx.emitter.emit(EventKind::Probe {
            probe: name.to_owned(),
            role: *role,
            ok: outcome.ok,
            detail: if outcome.ok {
                String::new()
            } else {
                outcome.detail.clone()
            },
        });
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// SPEC §6: right before the first fault, each steady-state probe gets up
/// to three attempts at its interval.
async fn steady_state_holds(shared: &Shared) -> Result<(), String> {
    for name in &shared.drill.steady_state {
        let Some(probe) = shared.probe(name) else {
            return Err(format!("unknown probe `{}`", name.value));
        };
        let mut last = ProbeOutcome::fail("not checked");
        for attempt in 1..=3 {
            last = probe::check(probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
            if last.ok {
                break;
            }
            if attempt < 3 {
                tokio::time::sleep(probe.interval()).await;
            }
        }
        if !last.ok {
            return Err(format!(
                "steady-state probe `{}` failed 3 times: {}",
                name.value, last.detail
            ));
        }
    }
    Ok(())
}

/// After the graph: does the steady state hold? Each probe must pass its
/// `success_threshold` in a row; it gets a few intervals to do so.
async fn recovery_check(shared: &Arc<Shared>, mut interrupt: watch::Receiver<bool>) {
    if shared.drill.steady_state.is_empty() {
        return;
    }
    let mut failures = Vec::new();
    for name in &shared.drill.steady_state {
        let Some(probe) = shared.probe(name) else {
            continue;
        };
        let needed = probe.success_threshold();
        let attempts = needed + 2;
        let mut streak = 0;
        let mut last = ProbeOutcome::fail("not checked");
        for attempt in 0..attempts {
            last = probe::check(probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
            emit_probe(shared, name, &[ProbeRole::Steady], &last);
            if last.ok {
                streak += 1;
                if streak >= needed {
                    break;
                }
            } else {
                streak = 0;
            }
            if attempt + 1 < attempts {
                tokio::select! {
                    _ = tokio::time::sleep(probe.interval()) => {}
                    _ = changed(&mut interrupt) => return,
                }
            }
        }
        if streak < needed {
            failures.push(format!("`{}`: {}", name.value, first_line(&last.detail)));
        }
    }
    shared.ctx.emitter.emit(EventKind::RecoveryChecked {
        ok: failures.is_empty(),
        detail: if failures.is_empty() {
            "every steady-state probe holds".to_owned()
        } else {
            format!("not holding: {}", failures.join("; "))
        },
    });
}

/// SPEC §7.3: data loss = first fault time − the last heartbeat that survived.
async fn measure_data_loss(shared: &Shared, read: &str) {
    let fault_ms = shared
        .first_fault_epoch_ms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(0);
    let event = match process::run_captured(
        read,
        &shared.env,
        Some(&shared.ctx.scenario_dir),
        Duration::from_secs(30),
    )
    .await
    {
        Ok((finished, stdout)) if finished.success() => {
            let value = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty());
            match value.and_then(|v| v.parse::<u64>().ok()) {
                Some(heartbeat) => EventKind::DataLoss {
                    loss_ms: Some(fault_ms.saturating_sub(heartbeat)),
                    last_heartbeat_ms: Some(heartbeat),
                    detail: format!("last heartbeat {heartbeat}, first fault at {fault_ms}"),
                },
                None => EventKind::DataLoss {
                    loss_ms: None,
                    last_heartbeat_ms: None,
                    detail: format!(
                        "`data.read` printed {:?}, not a millisecond timestamp: every heartbeat is lost",
                        stdout.trim()
                    ),
                },
            }
        }
        Ok((finished, stdout)) => EventKind::DataLoss {
            loss_ms: None,
            last_heartbeat_ms: None,
            detail: format!(
                "`data.read` failed (exit {:?}{}): {}{}",
                finished.exit_code,
                if finished.timed_out {
                    ", timed out"
                } else {
                    ""
                },
                stdout.trim(),
                finished.output.trim()
            ),
        },
        Err(error) => EventKind::DataLoss {
            loss_ms: None,
            last_heartbeat_ms: None,
            detail: format!("`data.read` could not start: {error}"),
        },
    };
    shared.ctx.emitter.emit(event);
}

/// Undoes every fault that is still in, per its `revert:`.
async fn revert_all(shared: &Shared) {
    let active: Vec<Active> =
        std::mem::take(&mut *shared.active.lock().unwrap_or_else(|e| e.into_inner()));
    for fault in active.into_iter().rev() {
        let result = match (&fault.revert, &fault.undo) {
            (Revert::Never, _) => continue,
            (Revert::Shell(script), _) => {
                let log = shared
                    .ctx
                    .run_dir
                    .join("logs")
                    .join(format!("{}.revert.log", fault.step));
                match process::run_logged(
                    script,
                    &shared.env,
                    Some(&shared.ctx.scenario_dir),
                    &log,
                    Duration::from_secs(300),
                    |_| {},
                )
                .await
                {
                    Ok(finished) if finished.success() => Ok("revert shell exited 0".to_owned()),
                    Ok(finished) => Err(format!(
                        "revert shell failed (exit {:?}{}): {}",
                        finished.exit_code,
                        if finished.timed_out {
                            ", timed out"
                        } else {
                            ""
                        },
                        process::tail(&finished.output, 5)
                    )),
                    Err(error) => Err(format!("revert shell could not start: {error}")),
                }
            }
            (Revert::Auto, None) => continue,
            (Revert::Auto, Some(undo)) => shared
                .target
                .revert(&fault.kind, undo, &shared.ctx)
                .await
                .map_err(|e| e.to_string()),
        };
        let (ok, detail) = match result {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        shared.ctx.emitter.emit(EventKind::FaultReverted {
            step: fault.step,
            kind: fault.kind,
            ok,
            detail,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(StepStatus),
}

/// What runs beside the graph once the first fault is in.
struct Background<'a> {
    /// Turns true at the first fault (stops the heartbeat writer).
    fault_started: &'a watch::Sender<bool>,
    /// The probe monitors, started at the first fault.
    monitors: &'a mut Vec<tokio::task::JoinHandle<()>>,
    /// Turns true when the monitors must stop.
    stopped: &'a watch::Receiver<bool>,
}

/// The scheduler: starts every step whose needs are done, up to `parallel`.
async fn schedule(
    shared: &Arc<Shared>,
    parallel: usize,
    mut interrupt: watch::Receiver<bool>,
    mut abort: watch::Receiver<Option<String>>,
    background: Background<'_>,
    resume: Option<&crate::engine::resume::Resume>,
) -> Ending {
    let Background {
        fault_started,
        monitors,
        stopped: watchers_stopped,
    } = background;
    let drill = &shared.drill;
    let graph = Graph::build(drill);
    let mut state: HashMap<String, State> = drill
        .steps
        .iter()
        .map(|s| (s.id.value.clone(), State::Pending))
        .collect();
    if let Some(resume) = resume {
        for (id, (status, attempts)) in resume.finished() {
            state.insert(id.clone(), State::Done(status));
            if status == StepStatus::Ok {
                let file = shared
                    .ctx
                    .run_dir
                    .join("outputs")
                    .join(format!("{id}.{attempts}.env"));
                let values = std::fs::read_to_string(file)
                    .map(|text| parse_outputs(&text))
                    .unwrap_or_default();
                shared
                    .outputs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, values);
            }
        }
        for id in resume.unfinished() {
            if drill
                .step(&id)
                .is_some_and(|s| s.action() == ActionKind::Fault)
            {
                let result = StepResult {
                    status: StepStatus::Interrupted,
                    ..StepResult::failed(
                        "the runner died while injecting this fault; it may have half-happened and is not injected twice",
                    )
                };
                finish_step(shared, &mut state, &id, result);
            }
        }
        if resume.first_fault_epoch_ms().is_some() {
            let _ = fault_started.send(true);
            start_monitors(shared, monitors, watchers_stopped);
        }
    }
    let mut tasks: JoinSet<(String, StepResult)> = JoinSet::new();
    let mut task_ids: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut handles: HashMap<tokio::task::Id, tokio::task::AbortHandle> = HashMap::new();
    let mut running = 0usize;
    let mut steady_checked = resume.is_some_and(|r| r.steady_checked());
    let mut ending = Ending::Completed;

    loop {
        // Why we stop starting steps, if we do.
        let stop_reason = if *interrupt.borrow() {
            ending = Ending::Interrupted;
            Some("interrupted (Ctrl-C)".to_owned())
        } else if let Some(reason) = shared.aborted() {
            ending = match shared
                .target_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                Some(TargetError::Unavailable(why)) => Ending::Error(why),
                _ => Ending::Aborted(reason.clone()),
            };
            Some(format!("run aborted: {reason}"))
        } else if let Ending::Error(why) = &ending {
            Some(why.clone())
        } else {
            None
        };
        if let Some(reason) = stop_reason {
            // Running steps are ended and the rest never start, except a
            // fault being injected: it finishes, so that what it did is
            // recorded and reverted rather than left half-known.
            let faults_running: HashSet<String> = state
                .iter()
                .filter(|(id, s)| {
                    **s == State::Running
                        && drill
                            .step(id)
                            .is_some_and(|st| st.action() == ActionKind::Fault)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for (id, pgid) in shared
                .step_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                if !faults_running.contains(id) {
                    process::kill_group(*pgid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            for (task, handle) in &handles {
                if !task_ids
                    .get(task)
                    .is_some_and(|id| faults_running.contains(id))
                {
                    handle.abort();
                }
            }
            while let Some(joined) = tasks.join_next_with_id().await {
                match joined {
                    Ok((_, (id, mut result))) => {
                        // It ended because we killed it.
                        if !faults_running.contains(&id) && result.status == StepStatus::Failed {
                            result.status = StepStatus::Interrupted;
                            result.detail = reason.clone();
                        }
                        finish_step(shared, &mut state, &id, result)
                    }
                    Err(error) => {
                        if let Some(id) = task_ids.get(&error.id()).cloned() {
                            let result = StepResult {
                                status: StepStatus::Interrupted,
                                ..StepResult::failed(reason.clone())
                            };
                            finish_step(shared, &mut state, &id, result);
                        }
                    }
                }
            }
            for step in &drill.steps {
                if state[step.id.as_str()] == State::Pending {
                    skip(shared, &mut state, step, &reason);
                }
            }
            return ending;
        }

        let mut started = false;
        for step in &drill.steps {
            let id = step.id.as_str();
            if state[id] != State::Pending {
                continue;
            }
            let needs = graph.needs_of(id);
            if let Some(bad) = needs.iter().find(|need| {
                matches!(state.get(**need), Some(State::Done(status)) if *status != StepStatus::Ok)
            }) {
                let why = match state[*bad] {
                    State::Done(StepStatus::Skipped) => format!("needs `{bad}`, which was skipped"),
                    _ => format!("needs `{bad}`, which failed"),
                };
                skip(shared, &mut state, step, &why);
                started = true;
                continue;
            }
            let ready = needs
                .iter()
                .all(|need| state.get(*need) == Some(&State::Done(StepStatus::Ok)));
            if !ready || running >= parallel {
                continue;
            }
            if step.action() == ActionKind::Fault {
                if shared.halt_file.exists() {
                    let reason = format!("halt file {} exists", shared.halt_file.display());
                    shared.ctx.emitter.emit(EventKind::Aborted {
                        reason: reason.clone(),
                    });
                    shared.abort(reason);
                    break;
                }
                if !steady_checked {
                    steady_checked = true;
                    let checked = tokio::select! {
                        result = steady_state_holds(shared) => Some(result),
                        _ = changed(&mut interrupt) => None,
                    };
                    let Some(checked) = checked else { break };
                    let ok = checked.is_ok();
                    shared.ctx.emitter.emit(EventKind::SteadyStateChecked {
                        ok,
                        detail: checked.clone().err().unwrap_or_default(),
                    });
                    if let Err(why) = checked {
                        ending =
                            Ending::Error(format!("system not healthy before the drill: {why}"));
                        break;
                    }
                }
                let first = shared
                    .first_fault_epoch_ms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_none();
                if first {
                    *shared
                        .first_fault_epoch_ms
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) =
                        Some(chrono::Utc::now().timestamp_millis() as u64);
                    let _ = fault_started.send(true);
                    start_monitors(shared, monitors, watchers_stopped);
                }
            }
            state.insert(id.to_owned(), State::Running);
            running += 1;
            started = true;
            let shared = shared.clone();
            let step = step.clone();
            let handle = tasks.spawn(async move {
                let result = run_step(&shared, &step).await;
                (step.id.value.clone(), result)
            });
            task_ids.insert(handle.id(), id.to_owned());
            handles.insert(handle.id(), handle);
        }
        if matches!(ending, Ending::Error(_)) || shared.aborted().is_some() {
            continue;
        }
        if running == 0 {
            if started {
                continue;
            }
            // Nothing runs and nothing can start: done.
            return ending;
        }
        tokio::select! {
            joined = tasks.join_next_with_id() => {
                running -= 1;
                match joined {
                    Some(Ok((_, (id, result)))) => finish_step(shared, &mut state, &id, result),
                    Some(Err(error)) => {
                        if let Some(id) = task_ids.get(&error.id()).cloned() {
                            finish_step(shared, &mut state, &id, StepResult::failed(format!("the step's task failed: {error}")));
                        }
                    }
                    None => {}
                }
            }
            _ = changed(&mut abort) => {}
            _ = changed(&mut interrupt) => {}
        }
    }
}

fn start_monitors(
    shared: &Arc<Shared>,
    monitors: &mut Vec<tokio::task::JoinHandle<()>>,
    stopped: &watch::Receiver<bool>,
) {
    let mut roles: BTreeMap<String, Vec<ProbeRole>> = BTreeMap::new();
    for name in &shared.drill.steady_state {
        roles
            .entry(name.value.clone())
            .or_default()
            .push(ProbeRole::Steady);
    }
    for name in &shared.drill.guards {
        roles
            .entry(name.value.clone())
            .or_default()
            .push(ProbeRole::Guard);
    }
    for (name, roles) in roles {
        monitors.push(tokio::spawn(monitor(
            shared.clone(),
            name,
            roles,
            stopped.clone(),
        )));
    }
}

fn skip(shared: &Shared, state: &mut HashMap<String, State>, step: &Step, why: &str) {
    state.insert(step.id.value.clone(), State::Done(StepStatus::Skipped));
    shared.ctx.emitter.emit(EventKind::StepFinished {
        step: step.id.value.clone(),
        action: step.action().key().to_owned(),
        status: StepStatus::Skipped,
        duration_ms: 0,
        attempts: 0,
        exit_code: None,
        detail: why.to_owned(),
        output_tail: String::new(),
    });
}

fn finish_step(shared: &Shared, state: &mut HashMap<String, State>, id: &str, result: StepResult) {
    state.insert(id.to_owned(), State::Done(result.status));
    shared
        .step_groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
    let action = shared
        .drill
        .step(id)
        .map_or("run", |s| s.action().key())
        .to_owned();
    let started = shared
        .step_started
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .copied();
    let duration_ms = started.map_or(0, |t| shared.ctx.emitter.now_ms().saturating_sub(t));
    if result.status == StepStatus::Ok {
        shared
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), result.outputs.clone());
    }
    shared.ctx.emitter.emit(EventKind::StepFinished {
        step: id.to_owned(),
        action,
        status: result.status,
        duration_ms,
        attempts: result.attempts,
        exit_code: result.exit_code,
        detail: result.detail,
        output_tail: result.output_tail,
    });
}

/// Runs one step with its retries.
async fn run_step(shared: &Arc<Shared>, step: &Step) -> StepResult {
    let attempts = step.retries.unwrap_or(0) + 1;
    let mut result = StepResult::failed("not run");
    shared
        .step_started
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(step.id.value.clone(), shared.ctx.emitter.now_ms());
    for attempt in 1..=attempts {
        shared.ctx.emitter.emit(EventKind::StepStarted {
            step: step.id.value.clone(),
            action: step.action().key().to_owned(),
            attempt,
            summary: crate::plan::describe_action(step),
        });
        let follows_runbook = step
            .recover
            .as_ref()
            .is_some_and(|r| r.value.runbook.is_some());
        // A runbook's steps have their own timeouts; the recover step only
        // gets an overall one if the drill gives it.
        let timeout = if follows_runbook && step.timeout.is_none() {
            Duration::from_secs(24 * 3600)
        } else {
            step.timeout()
        };
        result = match tokio::time::timeout(timeout, run_action(shared, step, attempt)).await {
            Ok(result) => result,
            Err(_) => {
                if let Some(pgid) = shared
                    .step_groups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(step.id.as_str())
                {
                    process::kill_group(*pgid, nix::sys::signal::Signal::SIGKILL);
                }
                StepResult::failed(format!(
                    "timed out after {}; its process group was killed",
                    crate::duration::format_duration(step.timeout())
                ))
            }
        };
        result.attempts = attempt;
        // A fault is never injected twice; neither is a runbook re-run.
        let retryable = matches!(
            step.action(),
            ActionKind::Run | ActionKind::Probe | ActionKind::Apply
        );
        if result.status == StepStatus::Ok || !retryable || shared.aborted().is_some() {
            break;
        }
        if attempt < attempts {
            tokio::time::sleep(step.retry_delay()).await;
        }
    }
    result
}

async fn run_action(shared: &Arc<Shared>, step: &Step, attempt: u32) -> StepResult {
    match step.action() {
        ActionKind::Run => {
            let script = step.run.clone().unwrap_or_default();
            run_shell(shared, step, &script, attempt).await
        }
        ActionKind::Wait => {
            let duration = step.wait.map_or(Duration::ZERO, |d| d.0);
            if !duration.is_zero() {
                tokio::time::sleep(duration).await;
            }
            StepResult::ok(format!(
                "waited {}",
                crate::duration::format_duration(duration)
            ))
        }
        ActionKind::Probe => {
            let names = step.probe.as_ref().map(|p| p.names()).unwrap_or_default();
            for name in &names {
                let Some(probe) = shared.probe(name) else {
                    return StepResult::failed(format!("unknown probe `{name}`"));
                };
                // The step's timeout bounds the wait (run_step's timeout fires first).
                if let Err(why) =
                    await_probe(shared, probe, step.timeout() + Duration::from_secs(1)).await
                {
                    return StepResult::failed(format!("probe `{name}` did not pass: {why}"));
                }
            }
            StepResult::ok(format!("{} passed", names.join(", ")))
        }
        ActionKind::Fault => inject(shared, step, attempt).await,
        ActionKind::Recover => {
            let recover = step.recover.as_ref().map(|r| r.value.clone());
            match recover {
                Some(recover) if recover.run.is_some() => {
                    let script = recover.run.unwrap_or_default();
                    run_shell(shared, step, &script, attempt).await
                }
                Some(recover) => {
                    crate::engine::recover::follow_runbook(shared, step, &recover).await
                }
                None => StepResult::failed("no recover action"),
            }
        }
        ActionKind::Apply => {
            let paths: Vec<PathBuf> = step
                .apply
                .iter()
                .flatten()
                .map(|p| shared.ctx.scenario_dir.join(expand(p, &shared.env)))
                .collect();
            match shared.target.apply(&paths, &shared.ctx).await {
                Ok(detail) => StepResult::ok(detail),
                Err(error) => StepResult::failed(error.to_string()),
            }
        }
    }
}

/// Runs a shell for a step: output to `logs/<step>.log`, `FIREDRILL_OUTPUT`
/// collected into the step's outputs.
pub(crate) async fn run_shell(
    shared: &Arc<Shared>,
    step: &Step,
    script: &str,
    attempt: u32,
) -> StepResult {
    let id = step.id.value.clone();
    let output_file = shared
        .ctx
        .run_dir
        .join("outputs")
        .join(format!("{id}.{attempt}.env"));
    let _ = std::fs::write(&output_file, "");
    let mut env = shared.step_env(step);
    env.insert(
        "FIREDRILL_OUTPUT".to_owned(),
        output_file.display().to_string(),
    );
    let log = shared.ctx.run_dir.join("logs").join(format!("{id}.log"));
    let groups = shared.clone();
    let spawned_id = id.clone();
    let emitter = shared.ctx.emitter.clone();
    let finished = process::run_logged(
        script,
        &env,
        Some(&shared.ctx.scenario_dir),
        &log,
        // The step's own timeout is enforced around this call.
        step.timeout() + Duration::from_secs(5),
        move |pid| {
            groups
                .step_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(spawned_id.clone(), pid as i32);
            emitter.emit(EventKind::ProcessStarted {
                what: format!("step {spawned_id}"),
                pid,
            });
        },
    )
    .await;
    let finished = match finished {
        Ok(finished) => finished,
        Err(error) => return StepResult::failed(format!("cannot start /bin/sh: {error}")),
    };
    let outputs = std::fs::read_to_string(&output_file)
        .map(|text| parse_outputs(&text))
        .unwrap_or_default();
    let tail = process::tail(&finished.output, 20);
    let status = if finished.success() {
        StepStatus::Ok
    } else {
        StepStatus::Failed
    };
    let detail = match finished.exit_code {
        Some(0) => String::new(),
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    };
    StepResult {
        status,
        attempts: attempt,
        exit_code: finished.exit_code,
        detail,
        output_tail: tail,
        outputs,
    }
}

/// `NAME=value` lines, as CI systems write them.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| crate::drill::is_valid_var_name(name.trim()))
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .collect()
}

async fn inject(shared: &Arc<Shared>, step: &Step, attempt: u32) -> StepResult {
    let Some(fault) = step.fault.as_ref().map(|f| f.value.clone()) else {
        return StepResult::failed("no fault");
    };
    if let Some(reason) = shared.aborted() {
        return StepResult {
            status: StepStatus::Skipped,
            ..StepResult::failed(format!("run aborted: {reason}"))
        };
    }
    let kind = fault.kind().to_owned();
    let env = shared.step_env(step);
    let injected = if let Some(script) = &fault.run {
        // The target's safety check (kind: is this still our cluster?) comes
        // first for a shell fault too.
        if let Err(error) = shared.target.check_before_fault(&shared.ctx).await {
            let message = error.to_string();
            *shared
                .target_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(error);
            shared.ctx.emitter.emit(EventKind::Aborted {
                reason: message.clone(),
            });
            shared.abort(message.clone());
            return StepResult::failed(message);
        }
        let result = run_shell(shared, step, script, attempt).await;
        if result.status != StepStatus::Ok {
            return result;
        }
        Ok(crate::target::Injected {
            targets: Vec::new(),
            detail: first_line(script).to_owned(),
            undo: None,
        })
    } else {
        shared
            .target
            .inject(step.id.as_str(), &fault, &env, &shared.ctx)
            .await
    };
    match injected {
        Ok(injected) => {
            shared.ctx.emitter.emit(EventKind::FaultInjected {
                step: step.id.value.clone(),
                kind: kind.clone(),
                targets: injected.targets.clone(),
                detail: injected.detail.clone(),
                undo: injected.undo.clone(),
            });
            shared
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Active {
                    step: step.id.value.clone(),
                    kind,
                    undo: injected.undo,
                    revert: fault.revert.clone(),
                });
            StepResult::ok(if injected.targets.is_empty() {
                injected.detail
            } else {
                format!("hit {}", injected.targets.join(", "))
            })
        }
        Err(error) => {
            let message = error.to_string();
            if matches!(error, TargetError::Refused(_) | TargetError::Unavailable(_)) {
                *shared
                    .target_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
                shared.ctx.emitter.emit(EventKind::Aborted {
                    reason: message.clone(),
                });
                shared.abort(message.clone());
            }
            StepResult::failed(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::{Fault, LoadedDrill};
    use crate::target::Injected;

    /// A target that records when faults arrive and can refuse them.
    struct FakeTarget {
        injected: Mutex<Vec<(String, u64)>>,
        refuse: bool,
        clock: tokio::time::Instant,
    }

    #[async_trait::async_trait]
    impl Target for FakeTarget {
        fn describe(&self) -> String {
            "fake".into()
        }
        async fn setup(&self, _: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
            Ok(BTreeMap::new())
        }
        fn preview(&self, _: &Fault, _: &RunContext) -> String {
            String::new()
        }
        async fn inject(
            &self,
            step: &str,
            _: &Fault,
            _: &BTreeMap<String, String>,
            _: &RunContext,
        ) -> Result<Injected, TargetError> {
            let at = self.clock.elapsed().as_secs();
            self.injected.lock().unwrap().push((step.to_owned(), at));
            if self.refuse {
                return Err(TargetError::Refused("not our cluster".into()));
            }
            Ok(Injected {
                targets: vec!["x".into()],
                detail: String::new(),
                undo: None,
            })
        }
        async fn revert(
            &self,
            _: &str,
            _: &serde_json::Value,
            _: &RunContext,
        ) -> Result<String, TargetError> {
            Ok(String::new())
        }
        async fn collect_evidence(&self, _: &Path, _: &RunContext) {}
        async fn teardown(&self, _: &RunContext, _: bool) {}
    }

    /// Two 10s waits, then two faults that need both, then one that needs a fault.
    const DRILL: &str = r#"
version: 1
name: sched
objectives: {rto: 1m}
steps:
  - id: a
    wait: 10s
  - id: b
    wait: 10s
  - id: f1
    needs: [a, b]
    fault: {kill: {service: s}}
  - id: f2
    needs: [a]
    fault: {kill: {service: s}}
  - id: after
    needs: [f1]
    wait: 5s
  - id: fix
    needs: [after]
    recover: {run: "true"}
services:
  s: {run: "true"}
"#;

    async fn schedule_with(parallel: usize, refuse: bool) -> (Vec<(String, u64)>, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let drill = crate::drill::parse_source(DRILL, dir.path()).expect("valid drill");
        let loaded = LoadedDrill {
            path: dir.path().join("sched.yaml"),
            dir: dir.path().to_path_buf(),
            drill,
        };
        let target = Arc::new(FakeTarget {
            injected: Mutex::new(Vec::new()),
            refuse,
            clock: tokio::time::Instant::now(),
        });
        let options = Options {
            parallel,
            run_dir: Some(dir.path().join("run")),
            halt_file: dir.path().join("halt"),
            sweep_descendants: false,
            ..Options::default()
        };
        let (_tx, rx) = watch::channel(false);
        let outcome = run(&loaded, target.clone(), options, Vec::new(), rx)
            .await
            .unwrap();
        let injected = target.injected.lock().unwrap().clone();
        (injected, outcome.journal)
    }

    #[tokio::test(start_paused = true)]
    async fn independent_steps_run_together_up_to_the_parallel_limit() {
        // a and b together: f2 at 10s (needs only a), f1 at 10s.
        let (injected, _) = schedule_with(4, false).await;
        assert_eq!(injected.len(), 2);
        assert!(injected.iter().all(|(_, at)| *at == 10), "{injected:?}");
        // One at a time: a (0-10s), b (10-20s); f2 became ready at 10s but
        // waits for the slot b holds, so both faults start at 20s or later.
        let (injected, _) = schedule_with(1, false).await;
        let f1 = injected.iter().find(|(s, _)| s == "f1").unwrap().1;
        let f2 = injected.iter().find(|(s, _)| s == "f2").unwrap().1;
        assert!(f2 >= 20 && f1 >= 20, "{injected:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_fault_aborts_and_skips_what_is_left() {
        let (injected, journal) = schedule_with(1, true).await;
        assert_eq!(
            injected.len(),
            1,
            "a second fault was tried after the refusal"
        );
        assert_eq!(journal.verdict, Verdict::Aborted);
        let status = |id: &str| journal.steps.iter().find(|s| s.id == id).unwrap().status;
        assert_eq!(status("after"), StepStatus::Skipped);
        assert_eq!(status("fix"), StepStatus::Skipped);
    }

    #[test]
    fn outputs_are_name_value_lines() {
        let outputs = parse_outputs("A=1\nnot a line\nB=x=y\n 9Z=no\n");
        assert_eq!(outputs.get("A").map(String::as_str), Some("1"));
        assert_eq!(outputs.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(outputs.len(), 2);
    }
}
