//! The executor: runs a drill's graph on a target, from setup to sweep.
//!
//! Order of a run: records and environment; target setup and services'
//! `ready`; the data heartbeat; the graph (steps whose needs are done run
//! concurrently up to `--parallel`); the steady-state check right before the
//! first fault; from then on the background monitor of steady-state and guard
//! probes; after the graph the recovery check and the data-loss read; reverts;
//! evidence on failure; teardown and the sweep of every process of the run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::drill::LoadedDrill;
use crate::event::{Emitter, EventKind, JsonlFile, Reporter};
use crate::journal::{Journal, StepStatus, Verdict};
use crate::process;
use crate::score::{self, Ending};
use crate::target::{RunContext, Target};
use crate::vars::expand_vars;

use super::monitor::{
    await_services, heartbeats, measure_data_loss, recovery_check, watch_halt_file,
};
use super::schedule::{Background, revert_all, schedule};
use super::shared::{Active, Shared};

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
    let workdir = match &resume {
        Some(resume) => resume.workdir.clone(),
        None => run_dir.join(crate::rundir::WORK),
    };
    match &resume {
        None => crate::rundir::claim(&run_dir).map_err(StartError)?,
        // What the dead runner was writing when it died ends here; the
        // resumed run's events start on a line of their own.
        Some(_) => {
            crate::rundir::end_last_line(&run_dir.join("events.jsonl")).map_err(|error| {
                StartError(format!(
                    "cannot repair {}/events.jsonl: {error}",
                    run_dir.display()
                ))
            })?
        }
    }
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
    let mut env = run_env(
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
    if let Some(resume) = &resume {
        emitter.emit(EventKind::RunResumed {
            pid: std::process::id(),
            pid_started: crate::rundir::start_time(std::process::id()),
            finished_steps: resume.finished().len(),
        });
        // What the dead runner left running goes first; services restart below.
        let mut ended = process::sweep(&run_id, options.grace, false).await;
        ended.extend(
            crate::leftovers::Recorded::from_events(&resume.events)
                .end(options.grace)
                .await,
        );
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
            pid_started: crate::rundir::start_time(std::process::id()),
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

    // Setup, on ports nobody else holds.
    if ending == Ending::Completed
        && let Err(why) = super::monitor::ports_free(&drill, &env)
    {
        ending = Ending::Error(why);
    }
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
                        .and_then(|s| s.fault())
                        .map(|fault| fault.revert.clone())
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
        fault_landed: watch::channel(0).0,
    });

    // The halt file is watched for the whole run, from the services' start.
    let (stop_watchers, watchers_stopped) = watch::channel(false);
    let halt_watch = tokio::spawn(watch_halt_file(shared.clone(), watchers_stopped.clone()));
    if ending == Ending::Completed {
        let mut aborted = abort_rx.clone();
        tokio::select! {
            result = await_services(&shared, interrupt.clone()) => {
                if let Err(why) = result {
                    ending = Ending::Error(why);
                }
            }
            Ok(reason) = aborted.wait_for(Option::is_some) => {
                ending = Ending::Aborted(reason.clone().unwrap_or_default());
            }
        }
    }
    // Ctrl-C during setup or the wait for services is an interruption, not
    // a failure of the system.
    if *interrupt.borrow() && !matches!(ending, Ending::Aborted(_)) {
        ending = Ending::Interrupted;
    }

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

    let fault_happened = shared.first_fault_ms().is_some();
    if ending == Ending::Completed && fault_happened {
        // The recovery's first pass is the graph; TTR ends with its check.
        // Data loss is what that recovery brought back. Then the
        // `check: idempotent` re-run, after which the steady state must
        // hold again.
        let held = recovery_check(&shared, interrupt.clone(), false).await;
        if let Some(data) = &drill.data {
            measure_data_loss(&shared, &data.read).await;
        }
        if held
            && !*interrupt.borrow()
            && crate::engine::recover::rerun_for_idempotency(&shared).await
            && !*interrupt.borrow()
        {
            recovery_check(&shared, interrupt.clone(), true).await;
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

    // Everything the score reads has happened: teardown and the sweep below
    // record no events that count.
    let mut journal = score::journal(&emitter.events(), &ending);
    if journal.verdict != Verdict::Passed {
        let evidence = run_dir.join("evidence");
        let _ = std::fs::create_dir_all(&evidence);
        target.collect_evidence(&evidence, &shared.ctx).await;
        write_run_evidence(&evidence, &journal, &run_id);
    }
    target.teardown(&shared.ctx, options.keep).await;
    let swept = process::sweep(&run_id, options.grace, options.sweep_descendants).await;
    if !swept.is_empty() {
        tracing::info!(count = swept.len(), "ended processes the run left behind");
    }
    if !options.keep {
        let _ = std::fs::remove_dir_all(&workdir);
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::{FaultSpec, LoadedDrill};
    use crate::target::{Injected, TargetError, Undo};

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
            if self.refuse {
                return Err(TargetError::Refused("not our cluster".into()));
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
        // Lines that are not `NAME=value` now fail the step (SPEC §2); the
        // rest of the rules are tested in crate::outputs.
        let outputs = crate::outputs::parse("A=1\nB=x=y\n").unwrap();
        assert_eq!(outputs.get("A").map(String::as_str), Some("1"));
        assert_eq!(outputs.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(outputs.len(), 2);
        assert!(crate::outputs::parse("A=1\nnot a line\n").is_err());
        assert!(crate::outputs::parse(" 9Z=no\n").is_err());
    }
}
