//! Recovery by runbook (docs/runbooks.md, "How a step runs"): every executable
//! step runs exactly as written, in order, in the run's environment; the first
//! failure stops the runbook (the remaining steps are `skipped`) unless
//! `--runbook-continue`; manual steps are `unverified`. With `check:
//! idempotent` every step that succeeded runs a second time afterwards.
//!
//! Each step's blocks run in one `/bin/sh -c` with `WORKDIR` as the working
//! directory. `stdout_contains`/`stdout_matches` are checked against what the
//! step printed (stdout and stderr as they interleaved, as a person at a
//! terminal sees them), every byte of it as it goes through the pipe, not
//! only what its capped log keeps.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::drill::{Check, Recover, Step};
use crate::engine::operator::Operator;
use crate::engine::shared::{Shared, StepResult};
use crate::engine::task::{Outputs, StepTask};
use crate::event::EventKind;
use crate::journal::{RunbookStepStatus, StepStatus};
use crate::process;
use crate::runbook::{self, RunbookStep};
use crate::watch::Printed;

/// Time a block gets without a `timeout` attribute.
pub const DEFAULT_BLOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// How one runbook step went.
struct Ran {
    status: RunbookStepStatus,
    exit_code: Option<i32>,
    output: String,
    detail: String,
    duration: Duration,
}

/// Runs a step's script with its retries; checks the expectations.
/// What every runbook step of one recover step shares.
struct Book<'a> {
    shared: &'a Arc<Shared>,
    step: &'a Step,
    env: &'a BTreeMap<String, String>,
    /// The runbook's directory: where its commands run.
    dir: &'a std::path::Path,
}

/// In a runbook's environment on its `check: idempotent` re-run.
const RERUN: &str = "FIREDRILL_RUNBOOK_RERUN";

async fn execute(
    book: &Book<'_>,
    index: usize,
    script: &str,
    rb_step: &RunbookStep,
    outputs: &mut BTreeMap<String, String>,
) -> Ran {
    let (shared, step, env, cwd) = (book.shared, book.step, book.env, book.dir);
    let expectations = rb_step.expectations();
    let timeout = rb_step.timeout(DEFAULT_BLOCK_TIMEOUT);
    let started = Instant::now();
    let log = shared
        .ctx
        .run_dir
        .join("logs")
        .join(format!("{}.log", step.id.value));
    let mut last = Ran {
        status: RunbookStepStatus::Failed,
        exit_code: None,
        output: String::new(),
        detail: String::new(),
        duration: Duration::ZERO,
    };
    for attempt in 0..=expectations.retries {
        let output_file = shared.ctx.run_dir.join("outputs").join(format!(
            "{}.runbook-{}.{}.env",
            step.id.value,
            index + 1,
            attempt + 1
        ));
        let _ = std::fs::write(&output_file, "");
        let mut env = env.clone();
        env.extend(outputs.clone());
        env.insert(
            "FIREDRILL_OUTPUT".to_owned(),
            output_file.display().to_string(),
        );
        env.insert(process::STEP_MARKER.to_owned(), step.id.value.clone());
        let again = env.contains_key(RERUN);
        env.insert(
            process::RUNBOOK_MARKER.to_owned(),
            process::runbook_marker(index, again),
        );
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            let _ = writeln!(
                file,
                "=== runbook step {} (line {}): {} — attempt {}",
                index + 1,
                rb_step.line,
                rb_step.title,
                attempt + 1
            );
        }
        // `set -e`: the first failing command fails the step, where a person
        // at a terminal would stop too. A step with a `bash` block runs in bash.
        let program = if rb_step.blocks.iter().any(|b| b.lang == "bash") {
            "/bin/bash"
        } else {
            "/bin/sh"
        };
        let strict = format!("set -e\n{script}");
        let finished = process::Cmd::shell_in(&shared.ctx.run_id, program, &strict)
            .envs(&env)
            .cwd(cwd)
            .timeout(timeout)
            .watching(expectations.watch())
            .run_logged(&log, |pid| {
                shared.ctx.emitter.emit(EventKind::ProcessStarted {
                    what: format!("runbook step {} of {}", index + 1, step.id.value),
                    pid,
                    started: crate::rundir::start_time(pid),
                    owner: Some(crate::event::Owner::Runbook {
                        step: step.id.value.clone(),
                        index,
                    }),
                });
            })
            .await;
        last = match finished {
            Err(error) => Ran {
                status: RunbookStepStatus::Failed,
                exit_code: None,
                output: String::new(),
                detail: format!("cannot start /bin/sh: {error}"),
                duration: started.elapsed(),
            },
            Ok(finished) => {
                let mut checked = if finished.timed_out {
                    Err(format!(
                        "timed out after {}",
                        crate::duration::format_duration(timeout)
                    ))
                } else {
                    match finished.exit_code {
                        Some(code) => expectations.check(
                            code,
                            &Printed {
                                kept: &crate::bounded::kept_pieces(&finished.output),
                                dropped: finished.dropped,
                                seen: finished.seen.as_ref(),
                            },
                        ),
                        None => Err("killed by a signal".to_owned()),
                    }
                };
                if checked.is_ok() {
                    // A line against the rules fails the step that wrote it.
                    match std::fs::read_to_string(&output_file)
                        .map(|text| crate::outputs::parse(&text))
                    {
                        Ok(Ok(values)) => outputs.extend(values),
                        Ok(Err(error)) => checked = Err(error.to_string()),
                        Err(_) => {}
                    }
                }
                Ran {
                    status: if checked.is_ok() {
                        RunbookStepStatus::Ok
                    } else {
                        RunbookStepStatus::Failed
                    },
                    exit_code: finished.exit_code,
                    output: finished.output,
                    detail: checked.err().unwrap_or_default(),
                    duration: started.elapsed(),
                }
            }
        };
        if last.status == RunbookStepStatus::Ok {
            break;
        }
        if attempt < expectations.retries {
            tokio::time::sleep(expectations.retry_delay).await;
        }
    }
    if last.status == RunbookStepStatus::Failed && expectations.retries > 0 {
        last.detail = format!(
            "{} (after {} attempts)",
            last.detail,
            expectations.retries + 1
        );
    }
    last
}

#[allow(clippy::too_many_arguments)]
fn emit_step(
    shared: &Shared,
    step: &Step,
    index: usize,
    rb_step: &RunbookStep,
    ran: &Ran,
    command: &str,
    idempotent: Option<bool>,
    note: Option<String>,
    deviation: Option<String>,
) {
    shared.ctx.emitter.emit(EventKind::RunbookStep {
        step: step.id.value.clone(),
        index,
        title: rb_step.title.clone(),
        line: rb_step.line,
        status: ran.status,
        duration_ms: ran.duration.as_millis() as u64,
        exit_code: ran.exit_code,
        command: command.trim_end().to_owned(),
        output_tail: process::tail(&ran.output, 20),
        detail: ran.detail.clone(),
        idempotent,
        note,
        deviation,
    });
}

fn not_run(status: RunbookStepStatus, detail: &str) -> Ran {
    Ran {
        status,
        exit_code: None,
        output: String::new(),
        detail: detail.to_owned(),
        duration: Duration::ZERO,
    }
}

/// Follows a Markdown runbook step by step.
pub(crate) async fn follow_runbook(
    shared: &Arc<Shared>,
    task: &StepTask<'_>,
    recover: &Recover,
) -> StepResult {
    let step = task.step;
    let Some(written) = recover.runbook.as_ref() else {
        return StepResult::failed("recover gives no runbook to follow");
    };
    let path = shared.ctx.scenario_dir.join(&written.value);
    let book = match runbook::load(&path) {
        Ok(book) => book,
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return StepResult::failed(format!("the runbook cannot be read: {}", text.join("; ")));
        }
    };
    let executable = book.steps.iter().filter(|s| !s.is_manual()).count();
    if task.announce_runbook {
        shared.ctx.emitter.emit(EventKind::RunbookStarted {
            step: step.id.value.clone(),
            path: written.value.clone(),
            executable,
            total: book.steps.len(),
            manual: false,
            titles: Vec::new(),
        });
    }
    // On resume, the steps a dead runner finished are kept as recorded.
    let done_before = shared.resumed_runbook.get(step.id.as_str());
    let env = &task.env;
    let book_dir = book_dir(&path, shared);
    let rb = Book {
        shared,
        step,
        env,
        dir: &book_dir,
    };
    let mut outputs = BTreeMap::new();
    let mut stopped: Option<String> = None;
    let mut failed = Vec::new();
    let mut succeeded = Vec::new();
    for (index, rb_step) in book.steps.iter().enumerate() {
        let script = rb_step.script();
        if done_before.is_some_and(|done| done.contains(&index)) {
            if !rb_step.is_manual() {
                succeeded.push(index);
            }
            continue;
        }
        if let Some(operator) = &shared.operator {
            let answer = interact(&rb, index, rb_step, &mut outputs, operator).await;
            if answer.status == RunbookStepStatus::Failed {
                failed.push((index, answer.detail.clone()));
            } else if answer.status == RunbookStepStatus::Ok {
                succeeded.push(index);
            }
            continue;
        }
        if rb_step.is_manual() {
            emit_step(
                shared,
                step,
                index,
                rb_step,
                &not_run(
                    RunbookStepStatus::Unverified,
                    "manual step: nothing to run, a person must do it",
                ),
                "",
                None,
                None,
                None,
            );
            continue;
        }
        if let Some(why) = &stopped {
            emit_step(
                shared,
                step,
                index,
                rb_step,
                &not_run(RunbookStepStatus::Skipped, why),
                &script,
                None,
                None,
                None,
            );
            continue;
        }
        let ran = execute(&rb, index, &script, rb_step, &mut outputs).await;
        emit_step(
            shared, step, index, rb_step, &ran, &script, None, None, None,
        );
        if ran.status == RunbookStepStatus::Ok {
            succeeded.push(index);
        } else {
            failed.push((index, ran.detail.clone()));
            if !shared.runbook_continue {
                stopped = Some(format!(
                    "not run: step {} ({}) failed before it",
                    index + 1,
                    rb_step.title
                ));
            }
        }
    }
    let mut result = if failed.is_empty() {
        StepResult::ok(format!(
            "runbook {}: {} of {executable} executable steps ok",
            written.value,
            succeeded.len()
        ))
    } else {
        // The reason line shows the first line: it says what fell short.
        let (index, why) = &failed[0];
        let first = &book.steps[*index];
        let why = crate::text::first_line(why);
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        };
        StepResult::failed(format!(
            "runbook {}: step {} ({}, line {}) failed{why}",
            written.value,
            index + 1,
            first.title,
            first.line
        ))
    };
    result.outputs = outputs;
    if result.status == StepStatus::Ok {
        result.exit_code = Some(0);
    }
    result
}

/// The `check: idempotent` re-run (docs/runbooks.md), after the recovery's
/// first pass has been checked: every runbook step that succeeded the first
/// time runs again, with the outputs of the first pass, and the result is
/// recorded as the step's second run. Only recover steps that succeeded are
/// re-run. Returns whether anything ran again. What ran before comes from the
/// run's events, so a resumed run re-runs what its dead runner finished too.
pub(crate) async fn rerun_for_idempotency(shared: &Arc<Shared>, outputs: &Outputs) -> bool {
    let events = shared.ctx.emitter.events();
    let mut any = false;
    for (position, step) in shared.drill.steps.iter().enumerate() {
        let crate::drill::Action::Recover(recover) = &step.action else {
            continue;
        };
        let recover = &recover.value;
        let (Some(written), Some(Check::Idempotent)) = (&recover.runbook, recover.check) else {
            continue;
        };
        let id = step.id.as_str();
        let recovered = events.iter().rev().find_map(|event| match &event.kind {
            EventKind::StepFinished { step, status, .. } if step == id => Some(*status),
            _ => None,
        }) == Some(StepStatus::Ok);
        if !recovered {
            continue;
        }
        let succeeded: std::collections::BTreeSet<usize> = events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::RunbookStep {
                    step,
                    index,
                    status: RunbookStepStatus::Ok,
                    idempotent: None,
                    ..
                } if step == id => Some(*index),
                _ => None,
            })
            .collect();
        let path = shared.ctx.scenario_dir.join(&written.value);
        let Ok(book) = runbook::load(&path) else {
            continue;
        };
        let mut env = outputs.env_for(&shared.env, position);
        env.insert(RERUN.to_owned(), "1".to_owned());
        let book_dir = book_dir(&path, shared);
        let rb = Book {
            shared,
            step,
            env: &env,
            dir: &book_dir,
        };
        let mut outputs = outputs.of(position).cloned().unwrap_or_default();
        for index in succeeded {
            let Some(rb_step) = book.steps.get(index) else {
                continue;
            };
            let script = rb_step.script();
            if script.is_empty() {
                continue;
            }
            any = true;
            let ran = execute(&rb, index, &script, rb_step, &mut outputs).await;
            let ok = ran.status == RunbookStepStatus::Ok;
            emit_step(
                shared,
                step,
                index,
                rb_step,
                &ran,
                &script,
                Some(ok),
                None,
                None,
            );
        }
    }
    any
}

/// `--interactive`: show the step, take the operator's answer.
async fn interact(
    book: &Book<'_>,
    index: usize,
    rb_step: &RunbookStep,
    outputs: &mut BTreeMap<String, String>,
    operator: &Arc<Operator>,
) -> Ran {
    let (shared, step) = (book.shared, book.step);
    let script = rb_step.script();
    let shown_at = Instant::now();
    let clock = shared
        .first_fault_ms()
        .map(|fault| {
            let now = chrono::Utc::now().timestamp_millis() as u64;
            format!(
                " — recovery clock {}",
                crate::duration::format_duration(Duration::from_millis(now.saturating_sub(fault)))
            )
        })
        .unwrap_or_default();
    let mut text = format!(
        "\n── runbook step {}: {} (line {}){clock}\n",
        index + 1,
        rb_step.title,
        rb_step.line
    );
    if !rb_step.prose.trim().is_empty() {
        text.push_str(rb_step.prose.trim());
        text.push('\n');
    }
    if !script.is_empty() {
        for line in script.lines() {
            text.push_str(&format!("  $ {line}\n"));
        }
    }
    eprint!("{text}");
    let mut note: Option<String> = None;
    let elapsed = |mut ran: Ran| {
        ran.duration = shown_at.elapsed();
        ran
    };
    let prompt = if script.is_empty() {
        "[d]one by hand, [s]kip, [f]ailed, [n]ote > "
    } else {
        "[r]un it, [d]one by hand, [s]kip, [e]dit, [f]ailed, [n]ote > "
    };
    loop {
        let answer = operator.ask_async(prompt).await;
        let (ran, deviation) = match answer.as_deref().map(str::trim) {
            // No more answers (end of the pipe): nothing is run on nobody's say-so.
            None => (
                not_run(
                    RunbookStepStatus::Skipped,
                    "no answer from the operator (end of input)",
                ),
                None,
            ),
            Some("r") if !script.is_empty() => {
                let ran = execute(book, index, &script, rb_step, outputs).await;
                eprintln!(
                    "   {}{}",
                    if ran.status == RunbookStepStatus::Ok {
                        "ok"
                    } else {
                        "FAILED: "
                    },
                    ran.detail
                );
                (ran, None)
            }
            Some("d") => (
                elapsed(not_run(RunbookStepStatus::Unverified, "done by hand")),
                None,
            ),
            Some("s") => (
                elapsed(not_run(
                    RunbookStepStatus::Skipped,
                    "skipped by the operator",
                )),
                None,
            ),
            Some("f") => (
                elapsed(not_run(
                    RunbookStepStatus::Failed,
                    "the operator reported it failed",
                )),
                None,
            ),
            Some("e") if !script.is_empty() => {
                let Some(replacement) = operator
                    .ask_async("command to run instead > ")
                    .await
                    .filter(|r| !r.trim().is_empty())
                else {
                    continue;
                };
                let mut ran = execute(book, index, &replacement, rb_step, outputs).await;
                if ran.status == RunbookStepStatus::Ok {
                    ran.status = RunbookStepStatus::Deviated;
                    ran.detail = "the runbook's command was replaced by the operator's".to_owned();
                } else {
                    ran.detail = format!("the operator's replacement failed: {}", ran.detail);
                }
                (ran, Some(replacement))
            }
            Some("n") => {
                if let Some(text) = operator.ask_async("note > ").await {
                    note = Some(match note {
                        Some(before) => format!("{before}\n{text}"),
                        None => text,
                    });
                }
                continue;
            }
            Some(other) => {
                eprintln!("   unknown answer {other:?}");
                continue;
            }
        };
        emit_step(
            shared, step, index, rb_step, &ran, &script, None, note, deviation,
        );
        return ran;
    }
}

/// The directory a runbook's steps run in: the runbook's own, so relative
/// paths in it read as they do for its links.
fn book_dir(path: &std::path::Path, shared: &Shared) -> std::path::PathBuf {
    path.parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| shared.ctx.scenario_dir.clone())
}
