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
                            || self.leaders.contains(&stat.pgrp)
                            || self.leaders.contains(&stat.session))
                })
            })
            .collect();
        found.sort_unstable();
        found
    }

    /// Ends them: SIGTERM (and SIGCONT, so a paused one can die), SIGKILL
    /// after `grace`. Returns the pids that were alive.
    pub async fn end(&self, grace: Duration) -> Vec<i32> {
        let first = self.alive();
        for pid in &first {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
            let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !self.alive().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pid in self.alive() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        first
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
