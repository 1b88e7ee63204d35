//! `recover: {manual: ...}` (docs/game-days.md): after the faults, people recover
//! the system by hand while firedrill watches. The step ends when the steady
//! state holds again after it broke (each steady-state probe's latest
//! results, as the background monitor records them, pass its
//! `success_threshold` in a row), or fails at `timeout`: not recovered. A
//! runbook, if given, is announced with its steps' headings so the live view
//! can show them and `firedrill step N` can be checked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::drill::Manual;
use crate::event::{EventKind, ProbeRole};
use crate::text::first_line;

use super::shared::{Shared, StepResult};
use super::task::StepTask;

/// The file in `RUN_DIR` that people `source` for the drill's variables.
pub(crate) const PEOPLE_ENV: &str = "people.env";

/// Writes `export NAME='value'` lines (mode 0600, never through a symlink).
fn write_people_env(path: &std::path::Path, env: &BTreeMap<String, String>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::from("# firedrill: source this file to follow the runbook by hand\n");
    for (name, value) in env {
        let shell_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if shell_name {
            text.push_str(&format!(
                "export {name}='{}'\n",
                value.replace('\'', "'\\''")
            ));
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(text.as_bytes())
}

pub(crate) async fn recover_by_hand(
    shared: &Arc<Shared>,
    task: &StepTask<'_>,
    manual: &Manual,
) -> StepResult {
    let step = task.step;
    // What the people's shells need to follow the runbook: the drill's
    // variables, and the run's marker, so what they start by hand is ended
    // with the run's own processes.
    let env_file = shared.ctx.run_dir.join(PEOPLE_ENV);
    if let Err(error) = write_people_env(&env_file, &task.env) {
        tracing::warn!("cannot write {}: {error}", env_file.display());
    }
    if let Some(written) = &manual.runbook {
        let path = shared.ctx.scenario_dir.join(&written.value);
        let book = match crate::runbook::load(&path) {
            Ok(book) => book,
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return StepResult::failed(format!(
                    "the runbook cannot be read: {}",
                    text.join("; ")
                ));
            }
        };
        if task.announce_runbook {
            shared.ctx.emitter.emit(EventKind::RunbookStarted {
                step: step.id.value.clone(),
                path: written.value.clone(),
                executable: book.steps.len(),
                total: book.steps.len(),
                manual: true,
                titles: book.steps.iter().map(|s| s.title.clone()).collect(),
            });
        }
    }
    // What each steady-state probe needs in a row, and its passes in a row.
    let mut needed: BTreeMap<String, u32> = BTreeMap::new();
    for name in &shared.drill.steady_state {
        if let Some(probe) = shared.probe(name) {
            needed.insert(name.value.clone(), probe.success_threshold());
        }
    }
    let mut streaks: BTreeMap<String, u32> = BTreeMap::new();
    let mut last_failure: BTreeMap<String, String> = BTreeMap::new();
    let look_every = shared
        .drill
        .steady_state
        .iter()
        .filter_map(|name| shared.probe(name))
        .map(|p| p.interval())
        .min()
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_millis(100));
    let timeout = manual.timeout.0;
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    // "Holds again": after an outage, unless none is expected.
    let mut broke = !shared.drill.expect_outage();
    let mut seen = 0;
    let mut after_fault = false;
    loop {
        let events = shared.ctx.emitter.events_after(seen);
        seen += events.len();
        for event in events {
            match event.kind {
                EventKind::FaultInjected { .. } => after_fault = true,
                EventKind::Probe {
                    probe,
                    role: ProbeRole::Steady,
                    ok,
                    detail,
                } if after_fault => {
                    let streak = streaks.entry(probe.clone()).or_default();
                    if ok {
                        *streak += 1;
                    } else {
                        *streak = 0;
                        broke = true;
                        last_failure.insert(probe, first_line(&detail).to_owned());
                    }
                }
                _ => {}
            }
        }
        let failing: Vec<String> = needed
            .iter()
            .filter(|(name, need)| streaks.get(*name).copied().unwrap_or(0) < **need)
            .map(|(name, _)| match last_failure.get(name) {
                Some(why) => format!("`{name}`: {why}"),
                None => format!("`{name}` not passing long enough"),
            })
            .collect();
        if broke && failing.is_empty() {
            return StepResult::ok(format!(
                "recovered by hand: the steady state holds again after {}",
                crate::duration::format_duration(Duration::from_millis(
                    started.elapsed().as_millis() as u64
                ))
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            let why = if broke {
                format!("still failing: {}", failing.join("; "))
            } else {
                "no outage was observed".to_owned()
            };
            return StepResult::failed(format!(
                "not recovered by hand within {} ({why})",
                crate::duration::format_duration(timeout)
            ));
        }
        tokio::time::sleep(look_every).await;
    }
}
