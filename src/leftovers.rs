//! What a dead run left running, found without its environment marker.
//!
//! The sweep finds a run's processes by `FIREDRILL_RUN_ID` in their
//! environment; a process that scrubbed its environment (`env -i`) drops
//! the marker. Every step and service is started as the leader of its own
//! process group, and `events.jsonl` records those pids: what still lives in
//! one of those groups (or sessions, or is one of those pids) and started
//! after the run did, belongs to the run.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::event::{Event, EventKind};

/// The fields of `/proc/PID/stat` that say whose a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Its process group.
    pub pgrp: i32,
    /// Its session.
    pub session: i32,
    /// When it started, in clock ticks after boot.
    pub start: u64,
}

impl ProcStat {
    /// The stat of a live (not zombie) process.
    pub fn read(pid: i32) -> Option<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses:
        // count fields after its last ')'. State is field 3.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        if matches!(fields.first(), Some(&"Z" | &"X") | None) {
            return None;
        }
        Some(ProcStat {
            pgrp: fields.get(2)?.parse().ok()?,
            session: fields.get(3)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    }
}

/// The processes a run recorded starting, and when the run began.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    leaders: HashSet<i32>,
    /// Processes matched by themselves only (not their groups).
    pids: HashSet<i32>,
    since: Option<u64>,
}

impl Recorded {
    /// From a run's events: the pids of `process_started`, and the start
    /// time of its first runner (without it nothing is matched: a pid alone
    /// may have been reused by anybody's process since).
    pub fn from_events(events: &[Event]) -> Recorded {
        let mut recorded = Recorded::default();
        for event in events {
            match &event.kind {
                EventKind::RunStarted { pid_started, .. } => recorded.since = *pid_started,
                EventKind::ProcessStarted { pid, .. } => {
                    recorded.leaders.insert(*pid as i32);
                }
                _ => {}
            }
        }
        recorded
    }

    /// From a run's events: only the processes of work that did not finish
    /// and that `resume` runs again (a step's shell, a runbook step's), so
    /// that the work does not run twice. Faults' are not among them: a fault
    /// is never run again, and what it started is part of the fault. Every
    /// other process of the run (services, what finished work left running)
    /// is adopted as it is.
    ///
    /// A process whose start the dead runner had no time to record is found
    /// by the step its environment names (`FIREDRILL_STEP`,
    /// `FIREDRILL_RUNBOOK_STEP`, `FIREDRILL_RUNBOOK_PASS`, see
    /// [`crate::process::STEP_MARKER`]).
    pub fn of_unfinished_work(
        events: &[Event],
        run_id: &str,
        is_fault: impl Fn(&str) -> bool,
    ) -> Recorded {
        use crate::event::Owner;
        let mut open: Vec<(Owner, i32)> = Vec::new();
        let mut since = None;
        for event in events {
            match &event.kind {
                EventKind::RunStarted { pid_started, .. } => since = *pid_started,
                EventKind::ProcessStarted {
                    pid,
                    owner: Some(owner @ (Owner::Step { .. } | Owner::Runbook { .. })),
                    ..
                } => open.push((owner.clone(), *pid as i32)),
                EventKind::StepFinished { step, .. } => open.retain(
                    |(owner, _)| !matches!(owner, Owner::Step { step: s } if s == step),
                ),
                EventKind::RunbookStep { step, index, .. } => open.retain(|(owner, _)| {
                    !matches!(owner, Owner::Runbook { step: s, index: i } if s == step && i == index)
                }),
                _ => {}
            }
        }
        let finished: HashSet<&str> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StepFinished { step, .. } => Some(step.as_str()),
                _ => None,
            })
            .collect();
        let runbook_done: HashSet<(&str, String)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::RunbookStep {
                    step,
                    index,
                    idempotent,
                    ..
                } => Some((
                    step.as_str(),
                    crate::process::runbook_marker(*index, idempotent.is_some()),
                )),
                _ => None,
            })
            .collect();
        let pids = crate::process::step_markers(run_id)
            .into_iter()
            .filter(|(_, step, runbook)| match runbook {
                Some(runbook) => !runbook_done.contains(&(step.as_str(), runbook.clone())),
                None => !finished.contains(step.as_str()) && !is_fault(step),
            })
            .map(|(pid, _, _)| pid)
            .collect();
        Recorded {
            leaders: open
                .into_iter()
                .filter(|(owner, _)| !matches!(owner, Owner::Step { step } if is_fault(step)))
                .map(|(_, pid)| pid)
                .collect(),
            pids,
            since,
        }
    }

    /// Live processes of the run: a recorded pid, or in a recorded process
    /// group or session, started after the run began. Never this process.
    pub fn alive(&self) -> Vec<i32> {
        let Some(since) = self.since else {
            return Vec::new();
        };
        let me = std::process::id() as i32;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut found: Vec<i32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid != me && *pid > 1)
            .filter(|pid| {
                ProcStat::read(*pid).is_some_and(|stat| {
                    stat.start >= since
                        && (self.leaders.contains(pid)
                            || self.pids.contains(pid)
                            || self.leaders.contains(&stat.pgrp)
                            || self.leaders.contains(&stat.session))
                })
            })
            .collect();
        found.sort_unstable();
        found
    }

    /// Ends them: SIGTERM (and SIGCONT, so a paused one can die), SIGKILL
    /// after `grace`. One that appears meanwhile (started by one still
    /// running) gets its SIGTERM too. Returns the pids that were alive.
    pub async fn end(&self, grace: Duration) -> Vec<i32> {
        let mut signalled: Vec<i32> = Vec::new();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let alive = self.alive();
            if alive.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            for pid in alive {
                if !signalled.contains(&pid) {
                    signalled.push(pid);
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                    let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pid in self.alive() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            if !signalled.contains(&pid) {
                signalled.push(pid);
            }
        }
        signalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_stat() {
        let stat = ProcStat::read(std::process::id() as i32).unwrap();
        assert!(stat.pgrp > 0 && stat.session > 0 && stat.start > 0);
    }
}
