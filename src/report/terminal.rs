//! What a person or a CI log sees of a run: consumers of the event stream.
//!
//! - [`Live`]: on a terminal, indicatif bars — a line per running step with
//!   its elapsed time, the recovery clock once a fault is in, probe health.
//! - [`Plain`]: without a terminal, one timestamped line per event.
//! - [`JsonLines`]: `--json`, every event as a JSON line on stdout.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::duration::format_duration;
use crate::event::{Event, EventKind, ProbeRole, Reporter};
use crate::journal::{Journal, RunbookStepStatus, StepStatus};
use crate::text::{escape_controls, first_line};

/// One line of text for an event, or `None` for events not worth a line.
/// What drills and commands wrote is shown with its control characters
/// escaped: a drill cannot drive the terminal.
pub fn describe(event: &Event) -> Option<String> {
    describe_raw(event).map(|text| escape_controls(&text).into_owned())
}

fn describe_raw(event: &Event) -> Option<String> {
    Some(match &event.kind {
        EventKind::RunStarted {
            drill,
            run_id,
            seed,
            target,
            run_dir,
            ..
        } => format!(
            "run {run_id}: drill {drill} on {target}, seed {seed} (replay with --seed {seed}); records in {run_dir}"
        ),
        EventKind::ProcessStarted { .. } => return None,
        EventKind::RunResumed {
            pid,
            finished_steps,
            ..
        } => format!("resumed by pid {pid}: {finished_steps} finished steps kept"),
        EventKind::ServiceReady { service } => format!("service {service} is ready"),
        EventKind::StepStarted {
            step,
            action,
            attempt,
            summary,
        } => {
            let again = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            let _ = action;
            format!("▶ {step}{again}: {summary}")
        }
        EventKind::StepFinished {
            step,
            status,
            duration_ms,
            detail,
            output_tail,
            ..
        } => {
            let mark = match status {
                StepStatus::Ok => "✓",
                StepStatus::Failed => "✗",
                StepStatus::Skipped => "-",
                StepStatus::Interrupted => "!",
            };
            let mut line = format!(
                "{mark} {step} {} in {}",
                status_word(*status),
                format_duration(Duration::from_millis(*duration_ms))
            );
            if !detail.is_empty() {
                line.push_str(&format!(": {detail}"));
            }
            if *status == StepStatus::Failed && !output_tail.is_empty() {
                for out in crate::process::tail(output_tail, 5).lines() {
                    line.push_str(&format!("\n    | {out}"));
                }
            }
            line
        }
        EventKind::SteadyStateChecked { ok, detail } => {
            if *ok {
                "steady state holds: injecting faults".to_owned()
            } else {
                format!("system not healthy before the drill: {detail}")
            }
        }
        EventKind::FaultInjected {
            step,
            kind,
            targets,
            detail,
            ..
        } => format!(
            "⚡ fault {step}: {kind} hit {}{}",
            if targets.is_empty() {
                "-".to_owned()
            } else {
                targets.join(", ")
            },
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        ),
        EventKind::FaultReverted {
            step, ok, detail, ..
        } => format!(
            "↺ revert {step}: {}{detail}",
            if *ok { "" } else { "FAILED: " }
        ),
        EventKind::Probe {
            probe,
            role,
            ok,
            detail,
        } => {
            let role = match role {
                ProbeRole::Steady => "steady",
                ProbeRole::Guard => "guard",
                ProbeRole::Wait => "probe",
            };
            if *ok {
                format!("{role} {probe}: ok")
            } else {
                format!("{role} {probe}: FAILING: {}", first_line(detail))
            }
        }
        EventKind::Aborted { reason } => format!("ABORT: {reason}"),
        EventKind::RunbookStarted {
            path,
            executable,
            total,
            ..
        } => format!("runbook {path}: {executable} executable of {total} steps"),
        EventKind::RunbookStep {
            index,
            title,
            line,
            status,
            duration_ms,
            detail,
            idempotent,
            output_tail,
            ..
        } => {
            if let Some(again) = idempotent {
                let mut text = format!(
                    "  runbook step {} ({title}) second run: {}",
                    index + 1,
                    if *again {
                        "ok (safe to re-run)"
                    } else {
                        "FAILED (not safe to re-run)"
                    }
                );
                if !again {
                    if !detail.is_empty() {
                        text.push_str(&format!(": {}", first_line(detail)));
                    }
                    for out in crate::process::tail(output_tail, 5).lines() {
                        text.push_str(&format!("\n      | {out}"));
                    }
                }
                text
            } else {
                let mut text = format!(
                    "  runbook step {} ({title}, line {line}): {} in {}",
                    index + 1,
                    runbook_word(*status),
                    format_duration(Duration::from_millis(*duration_ms))
                );
                if !detail.is_empty() {
                    text.push_str(&format!(": {}", first_line(detail)));
                }
                text
            }
        }
        EventKind::DataLoss {
            loss_ms, detail, ..
        } => match loss_ms {
            Some(ms) => format!("data loss: {}", format_duration(Duration::from_millis(*ms))),
            None => format!("data loss unknown: {detail}"),
        },
        EventKind::RecoveryChecked {
            ok,
            detail,
            after_rerun,
        } => {
            let when = if *after_rerun {
                "after the idempotency re-run"
            } else {
                "after the recovery"
            };
            if *ok {
                format!("steady state holds {when}: {detail}")
            } else {
                format!("NOT recovered: the steady state does not hold {when}: {detail}")
            }
        }
        EventKind::RunFinished {
            verdict, reason, ..
        } => format!("verdict: {} ({reason})", verdict.as_str()),
    })
}

fn status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Ok => "ok",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
        StepStatus::Interrupted => "interrupted",
    }
}

fn runbook_word(status: RunbookStepStatus) -> &'static str {
    match status {
        RunbookStepStatus::Ok => "ok",
        RunbookStepStatus::Failed => "FAILED",
        RunbookStepStatus::Skipped => "skipped",
        RunbookStepStatus::Unverified => "manual (unverified)",
        RunbookStepStatus::Deviated => "deviated",
    }
}

/// Plain timestamped lines, for logs and CI.
pub struct Plain<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> Plain<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Plain<W> {
        Plain { out }
    }
}

impl<W: Write + Send> Reporter for Plain<W> {
    fn event(&mut self, event: &Event) {
        if let EventKind::Probe { ok: true, .. } = event.kind {
            // Passing probes every interval would drown the log; failures show.
            return;
        }
        if let Some(text) = describe(event) {
            let clock = event.time.get(11..23).unwrap_or(&event.time);
            let _ = writeln!(
                self.out,
                "{clock} +{:>7.1}s {text}",
                event.at_ms as f64 / 1000.0
            );
            let _ = self.out.flush();
        }
    }
}

/// `--json`: every event as a JSON line.
pub struct JsonLines<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonLines<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> JsonLines<W> {
        JsonLines { out }
    }
}

impl<W: Write + Send> Reporter for JsonLines<W> {
    fn event(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }
}

/// Live progress on a terminal.
pub struct Live {
    multi: MultiProgress,
    steps: HashMap<String, ProgressBar>,
    clock: Option<ProgressBar>,
    health: BTreeMap<String, bool>,
    rto: Duration,
}

impl Live {
    /// Draws on stderr.
    pub fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        crate::logging::set_progress(Some(multi.clone()));
        Live {
            multi,
            steps: HashMap::new(),
            clock: None,
            health: BTreeMap::new(),
            rto: Duration::ZERO,
        }
    }

    fn line(&self, text: &str) {
        let _ = self.multi.println(text);
    }

    fn health_text(&self) -> String {
        if self.health.is_empty() {
            return String::new();
        }
        self.health
            .iter()
            .map(|(name, ok)| format!("{} {name}", if *ok { "●" } else { "○" }))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

impl Default for Live {
    fn default() -> Live {
        Live::new()
    }
}

impl Reporter for Live {
    fn event(&mut self, event: &Event) {
        match &event.kind {
            EventKind::RunStarted { rto_ms, .. } => {
                self.rto = Duration::from_millis(*rto_ms);
            }
            EventKind::StepStarted {
                step,
                summary,
                action,
                ..
            } => {
                let bar = self.steps.remove(step).unwrap_or_else(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_prefix(step.clone());
                let _ = action;
                bar.set_message(escape_controls(summary).into_owned());
                self.steps.insert(step.clone(), bar);
            }
            EventKind::StepFinished { step, .. } => {
                if let Some(bar) = self.steps.remove(step) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            EventKind::FaultInjected { .. } if self.clock.is_none() => {
                let bar = self.multi.insert(0, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "⏱  recovery clock {{elapsed_precise}} (RTO {})  {{msg}}",
                        format_duration(self.rto)
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(250));
                self.clock = Some(bar);
            }
            EventKind::Probe {
                probe,
                role: ProbeRole::Steady | ProbeRole::Guard,
                ok,
                ..
            } => {
                self.health.insert(probe.clone(), *ok);
                if let Some(clock) = &self.clock {
                    clock.set_message(self.health_text());
                }
            }
            EventKind::RecoveryChecked { ok: true, .. } => {
                if let Some(clock) = &self.clock {
                    clock.abandon_with_message(self.health_text());
                }
            }
            _ => {}
        }
        if let EventKind::Probe { ok: true, .. } = event.kind {
            return;
        }
        if let Some(text) = describe(event) {
            self.line(&text);
        }
    }

    fn finish(&mut self) {
        for (_, bar) in self.steps.drain() {
            bar.finish_and_clear();
        }
        if let Some(clock) = self.clock.take() {
            clock.finish_and_clear();
        }
        let _ = self.multi.clear();
        crate::logging::set_progress(None);
    }
}

/// The end-of-run summary: verdict, each part of the score, the formula.
pub fn summary(journal: &Journal, run_dir: &std::path::Path) -> String {
    escape_controls(&summary_raw(journal, run_dir)).into_owned()
}

fn summary_raw(journal: &Journal, run_dir: &std::path::Path) -> String {
    let ms = |v: Option<u64>| {
        v.map_or("-".to_owned(), |v| {
            format_duration(Duration::from_millis(v))
        })
    };
    let mut out = String::new();
    out.push_str(&format!(
        "\n{}: {} — score {} (minimum {})\n",
        journal.drill,
        journal.verdict.as_str().to_uppercase(),
        journal.score,
        journal.min_score
    ));
    if !journal.reason.is_empty() {
        out.push_str(&format!("  why:              {}\n", journal.reason));
    }
    out.push_str(&format!(
        "  time to detect:   {}\n  time to recover:  {} (RTO {})\n  time score:       {}\n",
        ms(journal.ttd_ms),
        ms(journal.ttr_ms),
        ms(Some(journal.rto_ms)),
        journal.time_score
    ));
    if let Some(accuracy) = journal.runbook_accuracy {
        out.push_str(&format!("  runbook accuracy: {accuracy}\n"));
    }
    if journal.rpo_ms.is_some() || journal.data_loss_detail.is_some() {
        let loss = match (journal.data_loss_ms, journal.data_loss_detail.as_deref()) {
            (Some(_), _) | (None, None) => ms(journal.data_loss_ms),
            (None, Some(detail)) => format!("not measured: {}", first_line(detail)),
        };
        out.push_str(&format!(
            "  data loss:        {loss} (RPO {})\n",
            ms(journal.rpo_ms)
        ));
    }
    if let Some(runbook) = &journal.runbook {
        for (index, step) in runbook.steps.iter().enumerate() {
            if step.idempotent != Some(false) {
                continue;
            }
            out.push_str(&format!(
                "  not safe to re-run: runbook step {} ({}, line {}) failed its second run\n",
                index + 1,
                step.title,
                step.line
            ));
            if let Some(output) = crate::report::facts::second_run_failure(step) {
                for line in crate::process::tail(output, 5).lines() {
                    out.push_str(&format!("      | {line}\n"));
                }
            }
        }
    }
    out.push_str(&format!(
        "  recovered:        {}   complete: {}\n",
        if journal.recovered { "yes" } else { "no" },
        if journal.complete { "yes" } else { "no" }
    ));
    if !journal.formula.is_empty() {
        out.push_str(&format!("  formula:          {}\n", journal.formula));
    }
    out.push_str(&format!(
        "  seed:             {} (replay with --seed {})\n  records:          {}\n",
        journal.seed,
        journal.seed,
        run_dir.display()
    ));
    out
}
