//! What a dead run left running, found without its environment marker.
//!
//! The sweep finds a run's processes by `FIREDRILL_RUN_ID` in their
//! environment; a process that scrubbed its environment (`env -i`) drops
//! the marker. Every step and service is started as the leader of its own
//! process group, and `events.jsonl` records those pids with their start
//! times and the boot they ran on. A pid alone names nobody for good (after
//! a reboot or a wrap-around it is someone else's), so a recorded pid counts
//! only on the same boot and with the same start time; see
//! [`Recorded::alive`] for the groups and sessions.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::event::{Event, EventKind};

/// The fields of `/proc/PID/stat` that say whose a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Its parent.
    pub ppid: i32,
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
            ppid: fields.get(1)?.parse().ok()?,
            pgrp: fields.get(2)?.parse().ok()?,
            session: fields.get(3)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`): pids and start
/// times recorded under another boot name nobody's process now.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned()).filter(|id| !id.is_empty())
}

/// Clock ticks after boot of a wall-clock time (RFC 3339), on this boot:
/// `btime` of `/proc/stat` and the kernel's tick rate.
fn ticks_at(time: &str) -> Option<u64> {
    let at = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: i64 = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf reads a constant of the running system, no memory.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let millis = at
        .timestamp_millis()
        .checked_sub(btime.checked_mul(1000)?)?;
    u64::try_from(millis.checked_mul(i64::from(u32::try_from(hz).ok()?))? / 1000).ok()
}

/// The file of `RUN_DIR` where a runner records its descendants: one line
/// each, `BOOT_ID PID START_TIME`.
pub const DESCENDANTS: &str = "descendants";

/// Records every descendant of this runner into `RUN_DIR/descendants` as it
/// sees them (a scan of /proc every 200ms), so that `clean` finds what a
/// runner killed with SIGKILL left, even a daemon that cleared its
/// environment and left its step's session (`env -i setsid ...`). A process
/// that starts and leaves the runner's tree within one scan is missed.
/// Stops when dropped.
pub struct DescendantRecorder(tokio::task::JoinHandle<()>);

impl Drop for DescendantRecorder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl DescendantRecorder {
    /// Starts recording into `run_dir`.
    pub fn start(run_dir: &Path) -> DescendantRecorder {
        let path = run_dir.join(DESCENDANTS);
        DescendantRecorder(tokio::spawn(async move {
            let Some(boot) = boot_id() else {
                return;
            };
            let mut seen: HashSet<(i32, u64)> = HashSet::new();
            loop {
                let found = tokio::task::spawn_blocking(descendants)
                    .await
                    .unwrap_or_default();
                let new: String = found
                    .into_iter()
                    .filter(|found| seen.insert(*found))
                    .map(|(pid, start)| format!("{boot} {pid} {start}\n"))
                    .collect();
                if !new.is_empty() {
                    use std::io::Write;
                    let _ = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .and_then(|mut file| file.write_all(new.as_bytes()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

/// This process's live descendants, each with its start time.
fn descendants() -> Vec<(i32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<(i32, u64)>> = HashMap::new();
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if let Some(stat) = ProcStat::read(pid) {
            children
                .entry(stat.ppid)
                .or_default()
                .push((pid, stat.start));
        }
    }
    let mut found = Vec::new();
    let mut parents = vec![std::process::id() as i32];
    while let Some(parent) = parents.pop() {
        for child in children.remove(&parent).unwrap_or_default() {
            parents.push(child.0);
            found.push(child);
        }
    }
    found
}

/// The processes a run recorded starting, each by pid and start time.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Group and session leaders the run started: pid to start time.
    leaders: HashMap<i32, u64>,
    /// Processes matched by themselves only (they carry the run's marker).
    pids: HashSet<i32>,
    /// When the run last wrote an event (ticks after boot): a group whose
    /// leader is gone counts only members started before.
    until: Option<u64>,
    /// Whether the run was recorded by an older version, without a boot
    /// id: its pids are not matched (marker only).
    pub old_record: bool,
    /// Whether the run was recorded on another boot than this one.
    pub other_boot: bool,
    /// Processes the runner saw among its descendants
    /// ([`DescendantRecorder`]), this boot's: pid to start time.
    exact: HashMap<i32, u64>,
}

/// The boot and start time a `process_started` counts with: only one of
/// this boot with its start time recorded names a process now.
fn this_boot(boot: Option<&str>, now: Option<&str>, started: Option<u64>) -> Option<u64> {
    match (boot, now) {
        (Some(boot), Some(now)) if boot == now => started,
        _ => None,
    }
}

impl Recorded {
    /// From a run's events: the pids of `process_started` with their start
    /// times, those of this boot only (a pid of another boot, or without
    /// its start time, may be anybody's process now).
    pub fn from_events(events: &[Event]) -> Recorded {
        let now = boot_id();
        let mut recorded = Recorded::default();
        let mut boot: Option<String> = None;
        for event in events {
            match &event.kind {
                EventKind::RunStarted { boot_id, .. } | EventKind::RunResumed { boot_id, .. } => {
                    boot = boot_id.clone();
                    recorded.other_boot |= boot_id.is_some() && now.is_some() && *boot_id != now;
                    recorded.old_record |= boot_id.is_none();
                }
                EventKind::ProcessStarted { pid, started, .. } => {
                    let started = this_boot(boot.as_deref(), now.as_deref(), *started);
                    if let (Some(pid), Some(started)) = (leader_pid(*pid), started) {
                        recorded.leaders.insert(pid, started);
                    }
                }
                _ => {}
            }
        }
        recorded.until = events.last().and_then(|e| ticks_at(&e.time));
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
        let now = boot_id();
        let mut boot: Option<String> = None;
        let mut open: Vec<(Owner, i32, Option<u64>)> = Vec::new();
        for event in events {
            match &event.kind {
                EventKind::RunStarted { boot_id, .. } | EventKind::RunResumed { boot_id, .. } => {
                    boot = boot_id.clone();
                }
                EventKind::ProcessStarted {
                    pid,
                    started,
                    owner: Some(owner @ (Owner::Step { .. } | Owner::Runbook { .. })),
                    ..
                } => open.push((
                    owner.clone(),
                    *pid as i32,
                    this_boot(boot.as_deref(), now.as_deref(), *started),
                )),
                EventKind::StepFinished { step, .. } => open.retain(
                    |(owner, _, _)| !matches!(owner, Owner::Step { step: s } if s == step),
                ),
                EventKind::RunbookStep { step, index, .. } => open.retain(|(owner, _, _)| {
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
        let open: Vec<(i32, Option<u64>)> = open
            .into_iter()
            .filter(|(owner, _, _)| !matches!(owner, Owner::Step { step } if is_fault(step)))
            .map(|(_, pid, started)| (pid, started))
            .collect();
        Recorded {
            old_record: false,
            leaders: open
                .into_iter()
                .filter_map(|(pid, started)| Some((leader_pid(pid as u32)?, started?)))
                .collect(),
            pids,
            until: events.last().and_then(|e| ticks_at(&e.time)),
            other_boot: false,
            exact: HashMap::new(),
        }
    }

    /// Adds the descendants the run's runners recorded in
    /// `RUN_DIR/descendants` on this boot (see [`DescendantRecorder`]).
    pub fn with_descendants(mut self, run_dir: &Path) -> Recorded {
        let (Some(now), Ok(text)) = (
            boot_id(),
            std::fs::read_to_string(run_dir.join(DESCENDANTS)),
        ) else {
            return self;
        };
        for line in text.lines() {
            let mut words = line.split(' ');
            if let (Some(boot), Some(Ok(pid)), Some(Ok(start))) = (
                words.next(),
                words.next().map(str::parse::<i32>),
                words.next().map(str::parse::<u64>),
            ) && boot == now
            {
                self.exact.insert(pid, start);
            }
        }
        self
    }

    /// Live processes of the run, never this process:
    /// - one the runner saw among its descendants, by pid and start time;
    /// - one that carries the run's marker ([`Recorded::of_unfinished_work`]);
    /// - a recorded leader, by pid and the start time recorded with it;
    /// - a member of a recorded leader's process group or session, while
    ///   that leader lives with its recorded start time (a group or session
    ///   keeps its id from reuse while it has members, so a different
    ///   process under that pid means a foreign group);
    /// - once that leader is gone, a member started after the leader and
    ///   before the run's last event: a process started after the run died
    ///   is never matched this way.
    pub fn alive(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        // Each recorded leader: Some(true) alive as recorded, Some(false)
        // its pid is another process now, None gone.
        let leaders: HashMap<i32, (u64, Option<bool>)> = self
            .leaders
            .iter()
            .map(|(pid, started)| {
                let now = ProcStat::read(*pid).map(|stat| stat.start == *started);
                (*pid, (*started, now))
            })
            .collect();
        let member = |id: i32, start: u64| match leaders.get(&id) {
            Some((_, Some(alive))) => *alive,
            Some((started, None)) => self
                .until
                .is_some_and(|until| *started <= start && start <= until),
            None => false,
        };
        let mut found: Vec<i32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid != me && *pid > 1)
            .filter(|pid| {
                ProcStat::read(*pid).is_some_and(|stat| {
                    self.pids.contains(pid)
                        || self.exact.get(pid) == Some(&stat.start)
                        || matches!(leaders.get(pid), Some((_, Some(true))))
                        || member(stat.pgrp, stat.start)
                        || member(stat.session, stat.start)
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

/// A recorded pid that can lead a group or session of the run. Not 0: a
/// process whose group or session leader lives outside its pid namespace
/// (a container's processes, often) reads 0 there, so a leader "0" from a
/// damaged or crafted journal would claim every such process. Not 1 (init),
/// and not a value that does not fit a pid.
fn leader_pid(pid: u32) -> Option<i32> {
    i32::try_from(pid).ok().filter(|pid| *pid > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_stat() {
        let stat = ProcStat::read(std::process::id() as i32).unwrap();
        // Group and session read 0 when their leader is outside this pid
        // namespace, as in many CI containers.
        assert!(stat.pgrp >= 0 && stat.session >= 0 && stat.start > 0);
    }

    #[test]
    fn leaders_zero_init_and_out_of_range_pids_are_never_recorded() {
        assert_eq!(leader_pid(0), None);
        assert_eq!(leader_pid(1), None);
        assert_eq!(leader_pid(u32::MAX), None);
        assert_eq!(leader_pid(i32::MAX as u32 + 1), None);
        assert_eq!(leader_pid(4242), Some(4242));
    }
}
