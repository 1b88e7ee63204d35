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
use crate::text::{escape_controls, first_line, visible};

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
        EventKind::ProcessesEnding { count } => format!(
            "ending {count} process{}…",
            if *count == 1 { "" } else { "es" }
        ),
        EventKind::WorkdirLeft { paths, reason } => format!(
            "warning: WORKDIR not fully removed, left {}: {}",
            visible(&paths.join(", ")),
            visible(reason)
        ),
        EventKind::RunResumed {
            pid,
            finished_steps,
            ..
        } => format!("resumed by pid {pid}: {finished_steps} finished steps kept"),
        EventKind::ServiceReady { service, .. } => format!("service {service} is ready"),
        EventKind::ServiceResumed {
            service,
            pid,
            detail,
            ..
        } => match pid {
            Some(pid) => format!("service {service} (pid {pid}): {detail}"),
            None => format!("service {service}: {detail}"),
        },
        EventKind::RunCleaned { ended } => format!(
            "cleaned: {ended} process{} ended, WORKDIR removed; the run cannot be resumed",
            if *ended == 1 { "" } else { "es" }
        ),
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
            if *ok && detail.is_empty() {
                "steady state holds: injecting faults".to_owned()
            } else if *ok {
                format!("{detail}: injecting faults")
            } else {
                format!("system not healthy before the drill: {detail}")
            }
        }
        EventKind::FaultInjected {
            step,
            kind,
            detail,
            interrupted: true,
            ..
        } => format!("⚡ fault {step} ({kind}) interrupted: {detail}"),
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
                ProbeRole::Detect if *ok => return Some(format!("🔔 alert: `{probe}` passed")),
                ProbeRole::Detect => "detect",
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
            total,
            manual: true,
            titles,
            ..
        } => {
            let mut text = format!("runbook {path}, followed by hand: {total} steps");
            for (n, title) in titles.iter().enumerate() {
                text.push_str(&format!("\n    {}. {}", n + 1, visible(title)));
            }
            text.push_str("\n  mark each: firedrill step RUN_DIR N ok|wrong|skipped [--note TEXT]");
            text.push_str("\n  the drill's variables for your shell: . RUN_DIR/people.env");
            text
        }
        EventKind::RunbookStarted {
            path,
            executable,
            total,
            ..
        } => format!("runbook {path}: {executable} executable of {total} steps"),
        EventKind::Note { text } => format!("✎ note: {}", visible(text)),
        EventKind::Acknowledged {} => "✋ acknowledged".to_owned(),
        EventKind::SurpriseFault { window, delay_ms } => format!(
            "surprise: the first fault starts now, {} after the steady-state check (window {})",
            crate::duration::format_duration(std::time::Duration::from_millis(*delay_ms)),
            visible(window)
        ),
        EventKind::StepMarked { step, mark, note } => format!(
            "runbook step {step} marked {}{}",
            mark.as_str(),
            note.as_deref()
                .map_or(String::new(), |n| format!(": {}", visible(n)))
        ),
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
                if *status == RunbookStepStatus::Failed {
                    for out in crate::process::tail(output_tail, 5).lines() {
                        text.push_str(&format!("\n      | {out}"));
                    }
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

/// The legend of the probe dots, printed with the first health line.
pub const LEGEND: &str = "(● passing, ○ failing: the steady-state and guard probes)";

/// What the line-by-line views print for each event. Probes are polled
/// every interval, so their results are not a line each: the steady-state
/// and guard probes are one `health:` line, printed when a probe starts or
/// stops failing, and an awaited probe's failure is printed once until it
/// passes. An operator reading a runbook step keeps it on screen.
#[derive(Debug, Default)]
pub struct Lines {
    /// Colours (ANSI) on the marks that matter: ✗, FAILED, FAILING, ○ ...
    pub color: bool,
    health: BTreeMap<String, (bool, String)>,
    waiting: BTreeMap<String, bool>,
    legend_shown: bool,
    /// `detect` probes that have passed: the first pass is the alert.
    alerted: std::collections::BTreeSet<String>,
}

impl Lines {
    /// Lines with colours or without.
    pub fn new(color: bool) -> Lines {
        Lines {
            color,
            ..Lines::default()
        }
    }

    /// The lines to print for `event` (often none).
    pub fn lines(&mut self, event: &Event) -> Vec<String> {
        let text = match &event.kind {
            EventKind::Probe {
                probe,
                role: ProbeRole::Steady | ProbeRole::Guard,
                ok,
                detail,
            } => {
                let was = self
                    .health
                    .insert(probe.clone(), (*ok, first_line(detail).to_owned()));
                // A probe first seen passing is no news; a change of state is.
                let changed = match was {
                    Some((before, _)) => before != *ok,
                    None => !*ok,
                };
                if !changed {
                    return Vec::new();
                }
                let mut line = format!("health: {}", self.health_line());
                if !self.legend_shown {
                    self.legend_shown = true;
                    line.push_str(&format!("  {LEGEND}"));
                }
                Some(escape_controls(&line).into_owned())
            }
            // A `detect` probe's first pass is the alert; its failures are
            // no news (the alert has not fired yet).
            EventKind::Probe {
                probe,
                role: ProbeRole::Detect,
                ok,
                ..
            } => {
                if !*ok || !self.alerted.insert(probe.clone()) {
                    return Vec::new();
                }
                describe(event)
            }
            EventKind::Probe {
                probe,
                role: ProbeRole::Wait,
                ok,
                ..
            } => {
                let was = self.waiting.insert(probe.clone(), *ok);
                if *ok || was == Some(false) {
                    return Vec::new();
                }
                describe(event)
            }
            _ => describe(event),
        };
        text.map(|text| vec![paint(&text, self.color)])
            .unwrap_or_default()
    }

    /// `○ web (FAILING: connection refused)  ● db`, in probe name order.
    pub fn health_line(&self) -> String {
        self.health
            .iter()
            .map(|(name, (ok, detail))| {
                if *ok {
                    format!("● {name}")
                } else if detail.is_empty() {
                    format!("○ {name} FAILING")
                } else {
                    format!("○ {name} FAILING: {detail}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// `text` with ✗, FAILED, FAILING, NOT, ABORT and ○ in red, ✓ and ● in
/// green, ⚡ in yellow: ANSI colours, or `text` as is without `color`.
pub fn paint(text: &str, color: bool) -> String {
    const RED: &str = "\x1b[31m";
    const GREEN: &str = "\x1b[32m";
    const YELLOW: &str = "\x1b[33m";
    const BOLD_RED: &str = "\x1b[1;31m";
    const RESET: &str = "\x1b[0m";
    if !color {
        return text.to_owned();
    }
    let marks: [(&str, &str); 9] = [
        ("✗", RED),
        ("FAILED", BOLD_RED),
        ("FAILING", BOLD_RED),
        ("NOT recovered", BOLD_RED),
        ("ABORT", BOLD_RED),
        ("○", RED),
        ("✓", GREEN),
        ("●", GREEN),
        ("⚡", YELLOW),
    ];
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        for (mark, code) in marks {
            if let Some(after) = rest.strip_prefix(mark) {
                out.push_str(code);
                out.push_str(mark);
                out.push_str(RESET);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Plain timestamped lines, for logs and CI (and `--interactive`, where the
/// operator's prompts share the terminal).
pub struct Plain<W: Write + Send> {
    out: W,
    lines: Lines,
}

impl<W: Write + Send> Plain<W> {
    /// Writes to `out`, without colours.
    pub fn new(out: W) -> Plain<W> {
        Plain::with_color(out, false)
    }

    /// Writes to `out`, with colours if `color`.
    pub fn with_color(out: W, color: bool) -> Plain<W> {
        Plain {
            out,
            lines: Lines::new(color),
        }
    }
}

impl<W: Write + Send> Reporter for Plain<W> {
    fn event(&mut self, event: &Event) {
        let clock = event.time.get(11..23).unwrap_or(&event.time);
        for text in self.lines.lines(event) {
            let _ = writeln!(
                self.out,
                "{clock} +{:>7.1}s {text}",
                event.at_ms as f64 / 1000.0
            );
        }
        let _ = self.out.flush();
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
    /// Shown from the start of the run until the first step, probe or
    /// fault: services can take seconds to start and become ready.
    starting: Option<ProgressBar>,
    lines: Lines,
    rto: Duration,
}

impl Live {
    /// Draws on stderr (a terminal), with colours unless `NO_COLOR` says not.
    pub fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        crate::logging::set_progress(Some(multi.clone()));
        Live {
            multi,
            steps: HashMap::new(),
            clock: None,
            starting: None,
            lines: Lines::new(crate::text::use_color(true)),
            rto: Duration::ZERO,
        }
    }

    fn line(&self, text: &str) {
        let _ = self.multi.println(text);
    }

    fn health_text(&self) -> String {
        paint(&self.lines.health_line(), self.lines.color)
    }

    fn started(&mut self) {
        if let Some(bar) = self.starting.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
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
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message("starting the drill's services, waiting until they are ready");
                bar.enable_steady_tick(Duration::from_millis(120));
                self.starting = Some(bar);
            }
            EventKind::ServiceReady { service, .. } => {
                if let Some(bar) = &self.starting {
                    bar.set_message(format!(
                        "starting the drill's services: {} is ready, waiting for the rest",
                        escape_controls(service)
                    ));
                }
            }
            EventKind::ProcessStarted { .. } => {}
            EventKind::RunFinished { .. } | EventKind::Aborted { .. } => self.started(),
            EventKind::StepStarted {
                step,
                summary,
                action,
                ..
            } => {
                self.started();
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
                self.started();
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
                role: ProbeRole::Steady | ProbeRole::Guard,
                ..
            } => {
                self.started();
            }
            EventKind::RecoveryChecked { ok: true, .. } => {
                if let Some(clock) = &self.clock {
                    clock.abandon_with_message(self.health_text());
                }
            }
            _ => {}
        }
        for text in self.lines.lines(event) {
            self.line(&text);
        }
        if let (EventKind::Probe { .. }, Some(clock)) = (&event.kind, &self.clock)
            && !clock.is_finished()
        {
            clock.set_message(self.health_text());
        }
    }

    fn finish(&mut self) {
        self.started();
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
    if journal.tta_alert_ms.is_some() || journal.tt_ack_ms.is_some() {
        out.push_str(&format!(
            "  time to alert:    {}\n  time to ack:      {}\n",
            ms(journal.tta_alert_ms),
            ms(journal.tt_ack_ms)
        ));
    }
    if let Some(surprise) = &journal.surprise {
        out.push_str(&format!(
            "  surprise:         first fault {} after the steady-state check (window {})\n",
            ms(Some(surprise.delay_ms)),
            surprise.window
        ));
    }
    if let Some(accuracy) = journal.runbook_accuracy {
        out.push_str(&format!("  runbook accuracy: {accuracy}\n"));
    }
    if !journal.notes.is_empty() || !journal.marks.is_empty() {
        out.push_str(&format!(
            "  people:           {} note(s), {} runbook step(s) marked\n",
            journal.notes.len(),
            journal.marks.len()
        ));
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

/// A measured time, or `-` when there is none.
fn ms(value: Option<u64>) -> String {
    value.map_or("-".to_owned(), |v| {
        format_duration(Duration::from_millis(v))
    })
}

/// One drill of a game day (`firedrill run DIR|FILE...`), for the table.
pub struct GameDayRow {
    /// The drill's name (or its file, if it never ran).
    pub drill: String,
    /// Its result; `None` if it was skipped (Ctrl-C) or could not start.
    pub journal: Option<Journal>,
    /// Where its records are.
    pub run_dir: Option<std::path::PathBuf>,
    /// Why it has no result.
    pub missing: &'static str,
}

/// The table printed after a game day: one line per drill.
pub fn game_day_table(rows: &[GameDayRow]) -> String {
    let header = [
        "drill", "verdict", "score", "TTR", "alert", "ack", "runbook", "records",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for row in rows {
        let mut line = vec![row.drill.clone()];
        match &row.journal {
            Some(journal) => line.extend([
                journal.verdict.as_str().to_owned(),
                journal.score.to_string(),
                ms(journal.ttr_ms),
                ms(journal.tta_alert_ms),
                ms(journal.tt_ack_ms),
                journal
                    .runbook_accuracy
                    .map_or("-".to_owned(), |a| format!("{a}%")),
            ]),
            None => {
                line.push(row.missing.to_owned());
                line.extend(std::iter::repeat_n("-".to_owned(), 5));
            }
        }
        line.push(
            row.run_dir
                .as_ref()
                .map_or("-".to_owned(), |d| d.display().to_string()),
        );
        lines.push(line);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            lines
                .iter()
                .map(|line| line[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("\ngame day: {} drill(s)\n", rows.len());
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    escape_controls(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> Event {
        Event {
            at_ms: 0,
            time: "2026-01-01T00:00:00.000Z".to_owned(),
            kind,
        }
    }

    fn probe(name: &str, role: ProbeRole, ok: bool) -> Event {
        event(EventKind::Probe {
            probe: name.to_owned(),
            role,
            ok,
            detail: if ok { "ok" } else { "connection refused" }.to_owned(),
        })
    }

    #[test]
    fn probe_polls_are_a_health_line_when_something_changes() {
        let mut lines = Lines::new(false);
        let mut printed = Vec::new();
        for (name, ok) in [
            ("web", true),
            ("db", true),
            ("web", true),
            ("web", false),
            ("web", false),
            ("db", true),
            ("web", false),
            ("db", false),
            ("db", false),
            ("web", true),
            ("web", true),
        ] {
            printed.extend(lines.lines(&probe(name, ProbeRole::Steady, ok)));
        }
        assert_eq!(
            printed,
            [
                format!("health: ● db  ○ web FAILING: connection refused  {LEGEND}"),
                "health: ○ db FAILING: connection refused  ○ web FAILING: connection refused"
                    .to_owned(),
                "health: ○ db FAILING: connection refused  ● web".to_owned(),
            ]
        );
        // An awaited probe says it fails once, until it passes again.
        let mut waits = Vec::new();
        for ok in [false, false, false, true, false] {
            waits.extend(lines.lines(&probe("up", ProbeRole::Wait, ok)));
        }
        assert_eq!(
            waits,
            [
                "probe up: FAILING: connection refused",
                "probe up: FAILING: connection refused"
            ]
        );
    }

    #[test]
    fn marks_are_coloured_only_when_asked() {
        let failed = event(EventKind::StepFinished {
            step: "fix".to_owned(),
            action: "recover".to_owned(),
            status: StepStatus::Failed,
            duration_ms: 4,
            detail: "exit code 1".to_owned(),
            output_tail: String::new(),
            attempts: 1,
            exit_code: Some(1),
        });
        let plain = Lines::new(false).lines(&failed);
        assert_eq!(plain, ["✗ fix FAILED in 4ms: exit code 1"]);
        let coloured = Lines::new(true).lines(&failed);
        assert_eq!(
            coloured,
            ["\x1b[31m✗\x1b[0m fix \x1b[1;31mFAILED\x1b[0m in 4ms: exit code 1"]
        );
        assert_eq!(
            paint("health: ● a  ○ b FAILING", true),
            "health: \x1b[32m●\x1b[0m a  \x1b[31m○\x1b[0m b \x1b[1;31mFAILING\x1b[0m"
        );
    }

    #[test]
    fn a_failed_runbook_step_shows_the_tail_of_its_output() {
        let step = event(EventKind::RunbookStep {
            step: "restore".to_owned(),
            index: 1,
            title: "Put the file back".to_owned(),
            line: 9,
            status: RunbookStepStatus::Failed,
            duration_ms: 4,
            exit_code: Some(127),
            command: "restore-health-tool --all".to_owned(),
            output_tail: "line 1\nsh: restore-health-tool: not found\n".to_owned(),
            detail: "exit 127, expected 0".to_owned(),
            idempotent: None,
            note: None,
            deviation: None,
        });
        assert_eq!(
            describe(&step).unwrap(),
            "  runbook step 2 (Put the file back, line 9): FAILED in 4ms: exit 127, expected 0\n      | line 1\n      | sh: restore-health-tool: not found"
        );
    }
}
