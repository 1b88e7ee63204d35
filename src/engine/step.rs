//! One step of a run: its action with its timeout and retries, as a task
//! of its own that reports to the dispatcher; and the undo of a fault.

use super::monitor::await_probe;
use super::shared::{Active, Msg, Shared, StepResult};
use super::task::StepTask;
use crate::drill::{Action, ActionKind, FaultSpec, Revert, Step};
use crate::event::EventKind;
use crate::journal::StepStatus;
use crate::process;
use crate::target::TargetError;
use crate::text::first_line;
use crate::vars::expand;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Undoes faults that are in, the last first, per their `revert:`.
pub(crate) async fn revert_all(shared: &Shared, active: Vec<Active>) {
    for fault in active.into_iter().rev() {
        let result = match (&fault.revert, &fault.undo) {
            (Revert::Never, _) => continue,
            (Revert::Shell(script), _) => {
                let log = shared
                    .ctx
                    .run_dir
                    .join("logs")
                    .join(format!("{}.revert.log", fault.step));
                match process::Cmd::shell(&shared.ctx.run_id, script)
                    .envs(&shared.env)
                    .cwd(&shared.ctx.scenario_dir)
                    .timeout(Duration::from_secs(300))
                    .run_logged(&log, |_| {})
                    .await
                {
                    Ok(finished) if finished.success() => Ok("revert shell exited 0".to_owned()),
                    Ok(finished) => Err(format!(
                        "revert shell failed ({}{}): {}",
                        crate::text::exit_status(finished.exit_code),
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

/// Runs one step with its retries.
pub(crate) async fn run_step(shared: &Arc<Shared>, task: &StepTask<'_>) -> StepResult {
    let step = task.step;
    let attempts = step.retries.unwrap_or(0) + 1;
    let mut result = StepResult::failed("not run");
    // The process group of the attempt that runs, to end it at the timeout.
    let group = AtomicI32::new(0);
    for attempt in 1..=attempts {
        shared.ctx.emitter.emit(EventKind::StepStarted {
            step: step.id.value.clone(),
            action: step.action().key().to_owned(),
            attempt,
            summary: crate::plan::describe_action(step),
        });
        // A fault is not injected twice: a runner that dies while injecting
        // has recorded that it started (the emitter writes `events.jsonl`
        // before `emit` returns).
        let follows_runbook =
            matches!(&step.action, Action::Recover(recover) if recover.value.runbook.is_some());
        // A runbook's steps have their own timeouts; the recover step only
        // gets an overall one if the drill gives it.
        let timeout = if let Some(manual) = by_hand(step) {
            // People get `manual.timeout`; the step ends itself then.
            manual + Duration::from_secs(60)
        } else if follows_runbook && step.timeout.is_none() {
            Duration::from_secs(24 * 3600)
        } else {
            step.timeout()
        };
        let this = Attempt {
            shared,
            task,
            number: attempt,
            group: &group,
        };
        let action = run_action(&this);
        result = match tokio::time::timeout(timeout, action).await {
            Ok(result) => result,
            Err(_) => {
                let pgid = group.load(Ordering::SeqCst);
                if pgid > 0 {
                    process::kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
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
        if result.status == StepStatus::Ok || !retryable || shared.stopping().is_some() {
            break;
        }
        if attempt < attempts {
            tokio::time::sleep(step.retry_delay()).await;
        }
    }
    if step.repin && result.status == StepStatus::Ok {
        // The drill says this step rebuilt the cluster: pin the new one,
        // and say so in the step's record.
        match shared.target.kube() {
            Some(kube) => match kube.repin(&shared.ctx).await {
                Ok(detail) if result.detail.is_empty() => result.detail = detail,
                Ok(detail) => result.detail = format!("{}; {detail}", result.detail),
                Err(error) => {
                    let attempts = result.attempts;
                    result = StepResult::failed(format!(
                        "the step succeeded, but re-pinning the cluster failed: {error}"
                    ));
                    result.attempts = attempts;
                }
            },
            None => result = StepResult::failed("`repin` needs a Kubernetes target"),
        }
    }
    result
}

/// `manual.timeout` of a step where people recover by hand.
fn by_hand(step: &Step) -> Option<Duration> {
    match &step.action {
        Action::Recover(recover) => recover.value.manual.as_ref().map(|m| m.timeout.0),
        _ => None,
    }
}

/// One attempt of a step.
struct Attempt<'a> {
    shared: &'a Arc<Shared>,
    task: &'a StepTask<'a>,
    number: u32,
    /// Where its process group is noted, for the timeout.
    group: &'a AtomicI32,
}

async fn run_action(attempt: &Attempt<'_>) -> StepResult {
    let (shared, task) = (attempt.shared, attempt.task);
    let step = task.step;
    let shell = |script: String| run_shell(attempt, script);
    match &step.action {
        Action::Run(script) => shell(script.clone()).await,
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
        Action::Fault(_) => inject(attempt).await,
        Action::Recover(recover) => match (&recover.value.run, &recover.value.manual) {
            (Some(script), _) => shell(script.clone()).await,
            (None, Some(manual)) => super::manual::recover_by_hand(shared, task, manual).await,
            (None, None) => {
                crate::engine::recover::follow_runbook(shared, task, &recover.value).await
            }
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
async fn run_shell(attempt: &Attempt<'_>, script: String) -> StepResult {
    let (shared, task, group) = (attempt.shared, attempt.task, attempt.group);
    let step = task.step;
    let number = attempt.number;
    let id = step.id.value.clone();
    let output_file = shared
        .ctx
        .run_dir
        .join("outputs")
        .join(format!("{id}.{number}.env"));
    let _ = std::fs::write(&output_file, "");
    let mut env = task.env.clone();
    env.insert(
        "FIREDRILL_OUTPUT".to_owned(),
        output_file.display().to_string(),
    );
    env.insert(process::STEP_MARKER.to_owned(), id.clone());
    let log = shared.ctx.run_dir.join("logs").join(format!("{id}.log"));
    let finished = process::Cmd::shell(&shared.ctx.run_id, &script)
        .envs(&env)
        .cwd(&shared.ctx.scenario_dir)
        // The step's own timeout is enforced around this call.
        .timeout(step.timeout() + Duration::from_secs(5))
        .run_logged(&log, |pid| {
            group.store(pid as i32, Ordering::SeqCst);
            shared.send(Msg::ProcessStarted {
                step: task.index,
                pgid: pid as i32,
            });
            shared.ctx.emitter.emit(EventKind::ProcessStarted {
                what: format!("step {id}"),
                pid,
                owner: Some(crate::event::Owner::Step { step: id.clone() }),
            });
        })
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
        attempts: number,
        exit_code: finished.exit_code,
        detail,
        output_tail: tail,
        outputs,
        injected: None,
    }
}

async fn inject(attempt: &Attempt<'_>) -> StepResult {
    let (shared, task) = (attempt.shared, attempt.task);
    let step = task.step;
    let Some(fault) = step.fault() else {
        return StepResult::failed("no fault");
    };
    if let Some(reason) = shared.stopping() {
        return StepResult {
            status: StepStatus::Skipped,
            ..StepResult::failed(reason.for_steps())
        };
    }
    let kind = fault.spec.kind().to_owned();
    let env = &task.env;
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
        let result = run_shell(attempt, script.clone()).await;
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
            .inject(step.id.as_str(), &fault.spec, env, &shared.ctx)
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
                interrupted: false,
            });
            let mut result = StepResult::ok(if injected.targets.is_empty() {
                injected.detail
            } else {
                format!("hit {}", injected.targets.join(", "))
            });
            result.injected = Some(Active {
                step: step.id.value.clone(),
                kind,
                undo: injected.undo.map(Ok),
                revert: fault.revert.clone(),
            });
            result
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
