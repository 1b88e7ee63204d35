//! The executor: runs a drill's graph on a target, from setup to sweep.
//!
//! Order of a run: records and environment; target setup and services'
//! `ready`; the data heartbeat; the graph (steps whose needs are done run
//! concurrently up to `--parallel`, started by the dispatcher); the
//! steady-state check right before the first fault; from then on the
//! background monitor of steady-state and guard probes; after the graph the
//! recovery check and the data-loss read; evidence on failure, while the
//! faults are still in; reverts; teardown and the sweep of every process of
//! the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::drill::LoadedDrill;
use crate::event::{Emitter, EventKind, EventLog, Reporter};
use crate::journal::{Journal, Verdict};
use crate::process;
use crate::score::{self, Ending};
use crate::target::{RunContext, Target};
use crate::vars::expand_vars;

use super::dispatch::{Background, Dispatcher, Inbox};
use super::monitor::{
    await_services, heartbeats, measure_data_loss, recovery_check, watch_halt_file,
};
use super::recover::rerun_for_idempotency;
use super::shared::{Active, Msg, Shared, changed};
use super::step::revert_all;
use super::stop::{StopReason, Stops};
use super::task::Outputs;

/// Steps that may run at once unless `--parallel` says otherwise. Steps
/// mostly wait on processes, sleeps and probes, not on this machine's CPUs:
/// a limit of the CPU count made 200 steps that each wait 0.2 s take 100
/// times their critical path. The limit stays bounded, since every running
/// step may hold a process.
pub const DEFAULT_PARALLEL: usize = 256;

/// How long the runtime may take to end its tasks once a run is over.
pub const RUNTIME_DEADLINE: Duration = Duration::from_secs(2);

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
    /// `--surprise WINDOW`: the first fault at a moment in the window.
    pub surprise: Option<crate::gameday::Surprise>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            vars: Vec::new(),
            seed: None,
            parallel: DEFAULT_PARALLEL,
            keep: false,
            runbook_continue: false,
            interactive: false,
            run_dir: None,
            halt_file: PathBuf::from(".firedrill/halt"),
            grace: Duration::from_secs(5),
            sweep_descendants: true,
            resume: None,
            surprise: None,
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
    /// The process exit code (docs/cli.md, exit codes).
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
    target_vars: BTreeMap<String, String>,
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
    builtins.extend(target_vars);
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

/// Runs a drill to its end. `interrupt` turns true on Ctrl-C.
///
/// The phases: prepare (records, environment) → set up (target, services)
/// → execute (the graph, by the dispatcher) → verify (recovery check, data
/// loss) → collect evidence (before anything is reverted) → revert →
/// record (teardown, the sweep, the journal and the reports).
pub async fn run(
    loaded: &LoadedDrill,
    target: Arc<dyn Target>,
    options: Options,
    reporters: Vec<Box<dyn Reporter>>,
    interrupt: watch::Receiver<bool>,
) -> Result<Outcome, StartError> {
    let prepared = prepare(loaded, &target, &options, reporters).await?;
    let (mut run, shared) = set_up(prepared, loaded, &target, &options, interrupt).await;
    let (active, outputs) = execute(&mut run, &shared, &options).await;
    let ending = verify(&mut run, &shared, &outputs).await;
    let verdict = collect_evidence(&run, &shared, &ending).await;
    revert_all(&shared, active).await;
    let outcome = record(run, &shared, &options, &ending).await;
    debug_assert_eq!(
        outcome.journal.verdict, verdict,
        "reverts changed the verdict"
    );
    Ok(outcome)
}

/// What the phases of a run share besides its read-only context.
struct Run {
    run_id: String,
    run_dir: PathBuf,
    workdir: PathBuf,
    emitter: Emitter,
    /// Where everything that can stop the run is heard.
    inbox: Inbox,
    /// The interrupt forwarder, the halt-file watcher, the probe monitors.
    background: JoinSet<()>,
    stop_background: watch::Sender<bool>,
    background_stopped: watch::Receiver<bool>,
    /// The run directory's lock, released when the run's records are written.
    _lock: Arc<crate::rundir::Lock>,
    /// Records the runner's descendants for `clean`, until the run ends.
    _descendants: Option<crate::leftovers::DescendantRecorder>,
}

/// Set up: the big red button before anything starts, the ports, the
/// target, the services' readiness.
async fn set_up(
    prepared: Prepared,
    loaded: &LoadedDrill,
    target: &Arc<dyn Target>,
    options: &Options,
    interrupt: watch::Receiver<bool>,
) -> (Run, Arc<Shared>) {
    let Prepared {
        run_id,
        run_dir,
        workdir,
        emitter,
        mut env,
        ctx,
        lock,
    } = prepared;
    let resume = options.resume.as_ref();
    let drill = &loaded.drill;
    let (messages, inbox) = mpsc::unbounded_channel();
    let (stops, stop_seen) = Stops::new(emitter.clone());
    let (stop_background, background_stopped) = watch::channel(false);
    // Only when this process's descendants are all the run's (not in tests
    // that run drills side by side in one process).
    let descendants = options
        .sweep_descendants
        .then(|| crate::leftovers::DescendantRecorder::start(&run_dir));
    let mut run = Run {
        run_id,
        run_dir,
        workdir,
        emitter,
        inbox: Inbox::new(stops, inbox),
        background: JoinSet::new(),
        stop_background,
        background_stopped,
        _descendants: descendants,
        _lock: lock,
    };
    run.background.spawn(forward_interrupt(
        interrupt,
        messages.clone(),
        run.background_stopped.clone(),
    ));
    let inbox = &mut run.inbox;
    let halt_file = absolute(&options.halt_file);
    if halt_file.exists() {
        inbox.stops.stop(StopReason::Aborted(format!(
            "the halt file {} exists: no drill may start a fault while it is there",
            halt_file.display()
        )));
    }
    // A resumed run's services may hold their ports: they are adopted, and
    // one started again is checked to be alive once ready.
    if !inbox.stops.is_stopped()
        && resume.is_none()
        && let Err(why) = super::monitor::ports_free(drill, &env)
    {
        inbox.stops.stop(StopReason::Error(why));
    }
    // Setup runs to its end even after Ctrl-C, so that teardown knows what
    // it made (a half-created cluster is worse than a wait).
    let mut left_down = std::collections::BTreeSet::new();
    if !inbox.stops.is_stopped() {
        let set_up = match resume {
            Some(resume) => {
                let found = resume.found(drill);
                let result = target.resume(&ctx, &found).await;
                left_down = run
                    .emitter
                    .events()
                    .iter()
                    .filter_map(|e| match &e.kind {
                        EventKind::ServiceResumed {
                            service,
                            outcome: crate::event::ServiceOutcome::LeftDown,
                            ..
                        } => Some(service.clone()),
                        _ => None,
                    })
                    .collect();
                result
            }
            None => target.setup(&ctx).await,
        };
        match set_up {
            Ok(extra) => env.extend(extra),
            // A safety check said no (the cluster is not the one pinned):
            // aborted by a guard before anything started, exit 3.
            Err(crate::target::TargetError::Refused(why)) => inbox
                .stops
                .stop(StopReason::Aborted(format!("target setup refused: {why}"))),
            Err(error) => inbox
                .stops
                .stop(StopReason::Error(format!("target setup failed: {error}"))),
        }
        inbox.drain();
    }
    let surprise = options
        .surprise
        .as_ref()
        .map(|surprise| (surprise.window.clone(), surprise.delay(ctx.seed)));
    let shared = Arc::new(Shared {
        drill: drill.clone(),
        target: target.clone(),
        ctx: RunContext {
            env: env.clone(),
            ..ctx
        },
        env,
        runbook_continue: options.runbook_continue,
        operator: options
            .interactive
            .then(|| Arc::new(crate::engine::operator::Operator::stdin())),
        halt_file,
        resumed_runbook: resume.map(|r| r.runbook_done()).unwrap_or_default(),
        left_down,
        first_fault_epoch_ms: resume
            .and_then(|r| r.first_fault_epoch_ms())
            .map(OnceLock::from)
            .unwrap_or_default(),
        stop: stop_seen,
        messages,
        fault_landed: watch::channel(0).0,
        surprise,
    });
    // The halt file is watched for the whole run, from the services' start:
    // it ends the wait for them too.
    run.background.spawn(watch_halt_file(
        shared.clone(),
        run.background_stopped.clone(),
    ));
    // People's notes are taken in as they arrive, until the watchers stop;
    // what they write after is taken in with `run_finished`.
    let (people, mut people_stopped) = (run.emitter.clone(), run.background_stopped.clone());
    run.background.spawn(async move {
        tokio::select! {
            _ = crate::gameday::take_in(people) => {}
            _ = people_stopped.wait_for(|stopped| *stopped) => {}
        }
    });
    // Once a fault is in, the services are as the faults left them: a
    // ready probe of the whole system (quorum) fails by design, and what
    // holds is for the steady-state monitor to measure, not a reason to stop.
    let faults_in = resume.is_some_and(|r| r.first_fault_epoch_ms().is_some());
    if !run.inbox.stops.is_stopped()
        && !faults_in
        && let Some(Err(why)) = run.inbox.until_stopped(await_services(&shared)).await
    {
        run.inbox.stops.stop(StopReason::Error(why));
    }
    (run, shared)
}

/// Execute: heartbeats are written until the first fault, the dispatcher
/// runs the graph. Returns the faults that are in and the steps' outputs.
async fn execute(run: &mut Run, shared: &Arc<Shared>, options: &Options) -> (Vec<Active>, Outputs) {
    let resume = options.resume.as_ref();
    let drill = &shared.drill;
    let (fault_started, fault_started_seen) = watch::channel(false);
    let mut heartbeat = None;
    if let Some(data) = drill.data.as_ref().filter(|_| {
        !run.inbox.stops.is_stopped() && resume.is_none_or(|r| r.first_fault_epoch_ms().is_none())
    }) {
        heartbeat = Some(tokio::spawn(heartbeats(
            process::Cmd::shell(&run.run_id, &data.write)
                .envs(&shared.env)
                .cwd(&shared.ctx.scenario_dir)
                .timeout(Duration::from_secs(10)),
            data.every.map_or(Duration::from_secs(1), |d| d.0),
            fault_started_seen,
            run.background_stopped.clone(),
        )));
    }
    let mut active: Vec<Active> = resume
        .iter()
        .flat_map(|r| r.active_faults())
        .map(|f| Active {
            revert: drill
                .step(&f.step)
                .and_then(|s| s.fault())
                .map(|fault| fault.revert.clone())
                .unwrap_or_default(),
            step: f.step,
            kind: f.kind,
            undo: f.undo,
        })
        .collect();
    let mut outputs = Outputs::default();
    if !run.inbox.stops.is_stopped() {
        let mut dispatcher = Dispatcher::new(
            shared,
            &mut run.inbox,
            Background {
                fault_started: &fault_started,
                heartbeat: &mut heartbeat,
                tasks: &mut run.background,
                stopped: &run.background_stopped,
            },
            options.parallel,
            active,
        );
        if let Some(resume) = resume {
            dispatcher.resume(resume);
        }
        (active, outputs) = dispatcher.run().await;
    }
    let _ = fault_started.send(true);
    if let Some(heartbeat) = heartbeat {
        let _ = heartbeat.await;
    }
    (active, outputs)
}

/// Verify: does the steady state hold again, what data was lost? Then the
/// watchers stop, and how the run ends is decided.
async fn verify(run: &mut Run, shared: &Arc<Shared>, outputs: &Outputs) -> Ending {
    let inbox = &mut run.inbox;
    if !inbox.stops.is_stopped() && shared.first_fault_ms().is_some() {
        // The recovery's first pass is the graph; TTR ends with its check.
        // Data loss is what that recovery brought back. Then the
        // `check: idempotent` re-run, after which the steady state must
        // hold again.
        let held = inbox.until_stopped(recovery_check(shared, false)).await;
        if let Some(data) = &shared.drill.data {
            measure_data_loss(shared, &data.read).await;
        }
        inbox.drain();
        if held == Some(true)
            && !inbox.stops.is_stopped()
            && inbox
                .until_stopped(rerun_for_idempotency(shared, outputs))
                .await
                == Some(true)
        {
            inbox.until_stopped(recovery_check(shared, true)).await;
        }
    }
    let _ = run.stop_background.send(true);
    while run.background.join_next().await.is_some() {}
    run.inbox.drain();
    run.inbox.stops.ending()
}

/// Collect evidence while the faults are still in: it shows the broken
/// state. Returns the verdict it was decided on (reverts do not change it).
async fn collect_evidence(run: &Run, shared: &Shared, ending: &Ending) -> Verdict {
    let unreverted = score::journal(&run.emitter.events(), ending);
    if unreverted.verdict != Verdict::Passed {
        let evidence = run.run_dir.join("evidence");
        let _ = std::fs::create_dir_all(&evidence);
        shared.target.collect_evidence(&evidence, &shared.ctx).await;
        write_run_evidence(&evidence, &unreverted, &run.run_id).await;
    }
    unreverted.verdict
}

/// Record: teardown, the sweep, the score (teardown and the sweep record
/// no events that count; people may have written until the end, so the
/// journal is scored from exactly the events before `run_finished`), the
/// journal and the reports.
async fn record(run: Run, shared: &Shared, options: &Options, ending: &Ending) -> Outcome {
    let Run {
        run_id,
        run_dir,
        workdir,
        emitter,
        ..
    } = run;
    let leaving = process::run_processes(&run_id, options.sweep_descendants).await;
    if !leaving.is_empty() {
        emitter.emit(EventKind::ProcessesEnding {
            count: leaving.len(),
        });
    }
    shared.target.teardown(&shared.ctx, options.keep).await;
    let mut swept = process::sweep(&run_id, options.grace, options.sweep_descendants).await;
    // What a resumed run adopted is not its descendant, and what scrubbed
    // its environment carries no marker: found by the recorded groups.
    let mut recorded = crate::leftovers::Recorded::from_events(&emitter.events());
    if options.sweep_descendants {
        recorded = recorded.with_descendants(&run_dir);
    }
    swept.extend(recorded.end(options.grace).await);
    if !swept.is_empty() {
        tracing::info!(count = swept.len(), "ended processes the run left behind");
    }
    if !options.keep {
        let removal = tokio::task::spawn_blocking(move || {
            let left = crate::workdir::remove_workdir(&workdir);
            (workdir, left)
        })
        .await;
        if let Ok((workdir, left)) = removal
            && let Some(left) = crate::workdir::left_behind(&workdir, left)
        {
            emitter.emit(left);
        }
    }
    let mut scored = None;
    emitter.emit_with(|events| {
        let journal = score::journal(events, ending);
        let finished = EventKind::RunFinished {
            verdict: journal.verdict,
            reason: journal.reason.clone(),
            interrupted: matches!(ending, Ending::Interrupted(_)),
        };
        scored = Some(journal);
        finished
    });
    let mut journal = scored.unwrap_or_else(|| score::journal(&emitter.events(), ending));
    journal.duration_ms = emitter.now_ms();
    // The reporters' last writes, the journal and the reports are file work:
    // off the async threads.
    let (records, dir) = (journal.clone(), run_dir.clone());
    let _ = tokio::task::spawn_blocking(move || {
        emitter.finish();
        if let Ok(text) = serde_json::to_string_pretty(&records) {
            let _ = std::fs::write(dir.join("journal.json"), text + "\n");
        }
        if let Err(error) = crate::report::write_all(&dir, &records) {
            tracing::warn!(%error, "cannot write the reports");
        }
    })
    .await;
    let exit_code = if matches!(ending, Ending::Interrupted(_)) {
        crate::error::EXIT_INTERRUPTED
    } else {
        journal.verdict.exit_code()
    };
    Outcome {
        journal,
        run_dir,
        exit_code,
    }
}

/// What a run starts from.
struct Prepared {
    run_id: String,
    run_dir: PathBuf,
    workdir: PathBuf,
    emitter: Emitter,
    env: BTreeMap<String, String>,
    ctx: RunContext,
    lock: Arc<crate::rundir::Lock>,
}

/// The run's id, directories, records and environment; the first event.
/// A resumed run first ends what the dead runner left running.
async fn prepare(
    loaded: &LoadedDrill,
    target: &Arc<dyn Target>,
    options: &Options,
    reporters: Vec<Box<dyn Reporter>>,
) -> Result<Prepared, StartError> {
    let drill = &loaded.drill;
    let resume = options.resume.as_ref();
    let run_id = match resume {
        Some(resume) => resume.run_id.clone(),
        None => new_run_id(&drill.name),
    };
    let run_dir = match resume {
        Some(resume) => resume.run_dir.clone(),
        None => absolute(
            &options
                .run_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(".firedrill/runs").join(&run_id)),
        ),
    };
    let workdir = match resume {
        Some(resume) => resume.workdir.clone(),
        None => run_dir.join(crate::rundir::WORK),
    };
    let lock = match resume {
        None => {
            crate::rundir::claim(&run_dir).map_err(StartError)?;
            Arc::new(crate::rundir::Lock::take(&run_dir).map_err(StartError)?)
        }
        // What the dead runner was writing when it died ends here; the
        // resumed run's events start on a line of their own.
        Some(resume) => {
            crate::rundir::end_last_line(&run_dir.join("events.jsonl")).map_err(|error| {
                StartError(format!(
                    "cannot repair {}/events.jsonl: {error}",
                    run_dir.display()
                ))
            })?;
            match &resume.lock {
                Some(lock) => lock.clone(),
                None => Arc::new(crate::rundir::Lock::take(&run_dir).map_err(StartError)?),
            }
        }
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
    let log = EventLog::open(&run_dir.join("events.jsonl")).map_err(|error| {
        StartError(format!(
            "cannot write {}: {error}",
            run_dir.join("events.jsonl").display()
        ))
    })?;
    let emitter = match resume {
        Some(resume) => Emitter::resumed(reporters, resume.events.clone(), resume.started),
        None => Emitter::new(reporters),
    }
    .with_log(log);
    let seed = match resume {
        Some(resume) => resume.seed,
        None => options.seed.unwrap_or_else(rand::random),
    };
    let env = run_env(
        loaded,
        &run_id,
        &run_dir,
        &workdir,
        &options.vars,
        target.vars(&run_dir),
    );
    let ctx = RunContext {
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        workdir: workdir.clone(),
        scenario_dir: absolute(&loaded.dir),
        env: env.clone(),
        seed,
        emitter: emitter.clone(),
    };
    if let Some(resume) = resume {
        emitter.emit(EventKind::RunResumed {
            pid: std::process::id(),
            pid_started: crate::rundir::start_time(std::process::id()),
            boot_id: crate::leftovers::boot_id(),
            finished_steps: resume.finished().len(),
        });
        // The world as the dead runner left it is adopted: only the
        // processes of work that runs again are ended, so it does not run
        // twice.
        let is_fault = |step: &str| drill.step(step).is_some_and(|s| s.fault().is_some());
        let ended =
            crate::leftovers::Recorded::of_unfinished_work(&resume.events, &run_id, is_fault)
                .end(options.grace)
                .await;
        if !ended.is_empty() {
            tracing::info!(
                count = ended.len(),
                "ended the processes of unfinished steps"
            );
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
            pid_started: crate::rundir::start_time(std::process::id()),
            boot_id: crate::leftovers::boot_id(),
            rto_ms: drill.objectives.rto.0.as_millis() as u64,
            rpo_ms: drill
                .objectives
                .rpo
                .as_ref()
                .map(|rpo| rpo.value.0.as_millis() as u64),
            min_score: drill.min_score(),
            steady_state: drill.steady_state.iter().map(|s| s.value.clone()).collect(),
            has_data: drill.data.is_some(),
            expect_outage: drill.expect_outage(),
            options: Some(crate::event::RunOptions {
                vars: options.vars.clone(),
                parallel: options.parallel,
                keep: options.keep,
                runbook_continue: options.runbook_continue,
                halt_file: absolute(&options.halt_file).display().to_string(),
            }),
            files: crate::engine::resume::files_of(loaded),
        });
    }
    Ok(Prepared {
        run_id,
        run_dir,
        workdir,
        emitter,
        env,
        ctx,
        lock,
    })
}

/// Ctrl-C (or SIGTERM) becomes a message to the run.
async fn forward_interrupt(
    mut interrupt: watch::Receiver<bool>,
    messages: mpsc::UnboundedSender<Msg>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if *interrupt.borrow_and_update() {
            let signal = crate::signal::received().unwrap_or("a signal");
            let _ = messages.send(Msg::Stop(StopReason::Interrupted(signal)));
            return;
        }
        tokio::select! {
            _ = changed(&mut interrupt) => {}
            _ = changed(&mut stopped) => return,
        }
    }
}

/// What the engine itself knows of a failure: the steps and runbook steps
/// that failed with their output, and what of the run was still running.
async fn write_run_evidence(dir: &Path, journal: &Journal, run_id: &str) {
    let failed = crate::report::failed_steps(journal);
    if !failed.is_empty() {
        let _ = std::fs::write(dir.join("failed-steps.txt"), failed);
    }
    let mut processes = String::new();
    for pid in process::marked_processes_async(run_id).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::{FaultSpec, LoadedDrill};
    use crate::journal::StepStatus;
    use crate::target::{Injected, TargetError, Undo};
    use std::sync::Mutex;

    /// A target that records when faults arrive and can refuse them.
    struct FakeTarget {
        injected: Mutex<Vec<(String, u64)>>,
        /// Why it refuses a fault of this step, if it does.
        refuse: fn(&str) -> Option<TargetError>,
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
        fn preview(&self, _: &FaultSpec, _: &RunContext) -> String {
            String::new()
        }
        async fn inject(
            &self,
            step: &str,
            _: &FaultSpec,
            _: &BTreeMap<String, String>,
            _: &RunContext,
        ) -> Result<Injected, TargetError> {
            let at = self.clock.elapsed().as_secs();
            self.injected.lock().unwrap().push((step.to_owned(), at));
            if let Some(error) = (self.refuse)(step) {
                return Err(error);
            }
            Ok(Injected {
                targets: vec!["x".into()],
                detail: String::new(),
                undo: None,
            })
        }
        async fn revert(&self, _: &Undo, _: &RunContext) -> Result<String, TargetError> {
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

    fn accept(_: &str) -> Option<TargetError> {
        None
    }

    fn refuse_all(_: &str) -> Option<TargetError> {
        Some(TargetError::Refused("not our cluster".into()))
    }

    async fn schedule_with(
        parallel: usize,
        refuse: fn(&str) -> Option<TargetError>,
    ) -> (Vec<(String, u64)>, Journal) {
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
        let (injected, _) = schedule_with(4, accept).await;
        assert_eq!(injected.len(), 2);
        assert!(injected.iter().all(|(_, at)| *at == 10), "{injected:?}");
        // One at a time: a (0-10s), b (10-20s); f2 became ready at 10s but
        // waits for the slot b holds, so both faults start at 20s or later.
        let (injected, _) = schedule_with(1, accept).await;
        let f1 = injected.iter().find(|(s, _)| s == "f1").unwrap().1;
        let f2 = injected.iter().find(|(s, _)| s == "f2").unwrap().1;
        assert!(f2 >= 20 && f1 >= 20, "{injected:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_fault_aborts_and_skips_what_is_left() {
        let (injected, journal) = schedule_with(1, refuse_all).await;
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

    #[tokio::test(start_paused = true)]
    async fn a_target_gone_outranks_a_refusal_whichever_comes_first() {
        // f1 and f2 start together at 10s; one is refused, the other finds
        // the target gone. Either order, the run ends as an error.
        fn f1_gone(step: &str) -> Option<TargetError> {
            Some(match step {
                "f1" => TargetError::Unavailable("the cluster is gone".into()),
                _ => TargetError::Refused("not our cluster".into()),
            })
        }
        fn f2_gone(step: &str) -> Option<TargetError> {
            Some(match step {
                "f2" => TargetError::Unavailable("the cluster is gone".into()),
                _ => TargetError::Refused("not our cluster".into()),
            })
        }
        for refuse in [f1_gone as fn(&str) -> Option<TargetError>, f2_gone] {
            let (injected, journal) = schedule_with(4, refuse).await;
            assert_eq!(injected.len(), 2, "{injected:?}");
            assert_eq!(journal.verdict, Verdict::Error, "{}", journal.reason);
            assert!(
                journal.reason.contains("the cluster is gone"),
                "{}",
                journal.reason
            );
        }
    }

    #[test]
    fn outputs_are_name_value_lines() {
        // Lines that are not `NAME=value` now fail the step
        // (docs/drill-format.md, step outputs); the rest of the rules are
        // tested in crate::outputs.
        let outputs = crate::outputs::parse("A=1\nB=x=y\n").unwrap();
        assert_eq!(outputs.get("A").map(String::as_str), Some("1"));
        assert_eq!(outputs.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(outputs.len(), 2);
        assert!(crate::outputs::parse("A=1\nnot a line\n").is_err());
        assert!(crate::outputs::parse(" 9Z=no\n").is_err());
    }
}
