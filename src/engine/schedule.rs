//! The scheduler: starts every step whose needs are done, up to `--parallel`,
//! runs each step's action with its timeout and retries, injects and reverts
//! faults, and stops what runs when the run aborts or is interrupted.

use super::monitor::{await_probe, start_monitors, steady_state_holds};
use super::shared::{Active, Shared, StepResult, changed};
use crate::drill::{Action, ActionKind, FaultSpec, Revert, Step};
use crate::event::EventKind;
use crate::journal::StepStatus;
use crate::plan::Graph;
use crate::process;
use crate::score::Ending;
use crate::target::TargetError;
use crate::text::first_line;
use crate::vars::expand;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Undoes every fault that is still in, per its `revert:`.
pub(crate) async fn revert_all(shared: &Shared) {
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
            (Revert::Auto, Some(Err(unreadable))) => Err(unreadable.clone()),
            (Revert::Auto, Some(Ok(undo))) => shared
                .target
                .revert(undo, &shared.ctx)
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
pub(crate) enum State {
    Pending,
    Running,
    Done(StepStatus),
}

/// What runs beside the graph once the first fault is in.
pub(crate) struct Background<'a> {
    /// Turns true at the first fault (stops the heartbeat writer).
    pub(crate) fault_started: &'a watch::Sender<bool>,
    /// The probe monitors, started at the first fault.
    pub(crate) monitors: &'a mut Vec<tokio::task::JoinHandle<()>>,
    /// Turns true when the monitors must stop.
    pub(crate) stopped: &'a watch::Receiver<bool>,
}

/// The scheduler: starts every step whose needs are done, up to `parallel`.
pub(crate) async fn schedule(
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
                    .ok()
                    .and_then(|text| crate::outputs::parse(&text).ok())
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
                    shared.abort(format!("halt file {} exists", shared.halt_file.display()));
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
                if shared.mark_first_fault() {
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

pub(crate) fn skip(shared: &Shared, state: &mut HashMap<String, State>, step: &Step, why: &str) {
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

pub(crate) fn finish_step(
    shared: &Shared,
    state: &mut HashMap<String, State>,
    id: &str,
    result: StepResult,
) {
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
pub(crate) async fn run_step(shared: &Arc<Shared>, step: &Step) -> StepResult {
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
        let follows_runbook =
            matches!(&step.action, Action::Recover(recover) if recover.value.runbook.is_some());
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

pub(crate) async fn run_action(shared: &Arc<Shared>, step: &Step, attempt: u32) -> StepResult {
    match &step.action {
        Action::Run(script) => run_shell(shared, step, script, attempt).await,
        Action::Wait(duration) => {
            let duration = duration.0;
            if !duration.is_zero() {
                tokio::time::sleep(duration).await;
            }
            StepResult::ok(format!(
                "waited {}",
                crate::duration::format_duration(duration)
            ))
        }
        Action::Probe(probes) => {
            let names = probes.names();
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
        Action::Fault(_) => inject(shared, step, attempt).await,
        Action::Recover(recover) => match &recover.value.run {
            Some(script) => run_shell(shared, step, script, attempt).await,
            None => crate::engine::recover::follow_runbook(shared, step, &recover.value).await,
        },
        Action::Apply(manifests) => {
            let paths: Vec<PathBuf> = manifests
                .iter()
                .map(|p| shared.ctx.scenario_dir.join(expand(p, &shared.env)))
                .collect();
            let Some(kube) = shared.target.kube() else {
                return StepResult::failed("apply needs a Kubernetes target");
            };
            match kube.apply(&paths, &shared.ctx).await {
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
    let (status, detail, outputs) =
        match std::fs::read_to_string(&output_file).map(|text| crate::outputs::parse(&text)) {
            Ok(Ok(outputs)) => (status, detail, outputs),
            // A line against the rules fails the step that wrote it.
            Ok(Err(error)) => (StepStatus::Failed, error.to_string(), BTreeMap::new()),
            Err(_) => (status, detail, BTreeMap::new()),
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

pub(crate) async fn inject(shared: &Arc<Shared>, step: &Step, attempt: u32) -> StepResult {
    let Some(fault) = step.fault() else {
        return StepResult::failed("no fault");
    };
    if let Some(reason) = shared.aborted() {
        return StepResult {
            status: StepStatus::Skipped,
            ..StepResult::failed(format!("run aborted: {reason}"))
        };
    }
    let kind = fault.spec.kind().to_owned();
    let env = shared.step_env(step);
    let injected = if let FaultSpec::Shell(script) = &fault.spec {
        // On a cluster, a shell fault too must hit the cluster this run set up.
        if let Some(kube) = shared.target.kube()
            && let Err(error) = kube
                .confirm_cluster("run the `run` fault", &shared.ctx)
                .await
        {
            let message = error.to_string();
            shared.target_failed(error);
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
            .inject(step.id.as_str(), &fault.spec, &env, &shared.ctx)
            .await
    };
    match injected {
        Ok(injected) => {
            shared.ctx.emitter.emit(EventKind::FaultInjected {
                step: step.id.value.clone(),
                kind: kind.clone(),
                targets: injected.targets.clone(),
                detail: injected.detail.clone(),
                undo: injected
                    .undo
                    .as_ref()
                    .and_then(|undo| serde_json::to_value(undo).ok()),
            });
            shared
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Active {
                    step: step.id.value.clone(),
                    kind,
                    undo: injected.undo.map(Ok),
                    revert: fault.revert.clone(),
                });
            shared.fault_landed.send_modify(|landed| *landed += 1);
            StepResult::ok(if injected.targets.is_empty() {
                injected.detail
            } else {
                format!("hit {}", injected.targets.join(", "))
            })
        }
        Err(error) => {
            let message = error.to_string();
            if matches!(error, TargetError::Refused(_) | TargetError::Unavailable(_)) {
                shared.target_failed(error);
            }
            StepResult::failed(message)
        }
    }
}
