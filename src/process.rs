//! Processes the run starts: shells in their own process groups, timeouts
//! that kill the whole group, and the final sweep that ends everything the run
//! left behind, including what escaped into new sessions.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Environment variable that marks every process of a run (inherited by all
/// its descendants), so a sweep can find what escaped the process tree.
pub const RUN_MARKER: &str = "FIREDRILL_RUN_ID";

/// The step whose process it is, in the environment of a step's and a
/// runbook step's processes: `resume` ends what unfinished work left, even
/// when its start was never recorded.
pub const STEP_MARKER: &str = "FIREDRILL_STEP";

/// The runbook step of a runbook's process: `<index>` on the first pass,
/// `<index> again` on the `check: idempotent` re-run (see [`runbook_marker`]).
pub const RUNBOOK_MARKER: &str = "FIREDRILL_RUNBOOK_STEP";

/// The value of [`RUNBOOK_MARKER`] for runbook step `index` (0-based).
pub fn runbook_marker(index: usize, again: bool) -> String {
    if again {
        format!("{index} again")
    } else {
        index.to_string()
    }
}

/// Live processes of run `run_id` that carry a [`STEP_MARKER`]: each pid
/// with its step and its [`RUNBOOK_MARKER`], if any.
pub fn step_markers(run_id: &str) -> Vec<(i32, String, Option<String>)> {
    let run = format!("{RUN_MARKER}={run_id}");
    let me = std::process::id() as i32;
    read_proc_table()
        .iter()
        .filter(|(pid, info)| **pid != me && !info.zombie)
        .filter_map(|(pid, _)| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            if !vars.contains(&run.as_bytes()) {
                return None;
            }
            let value = |name: &str| {
                let prefix = format!("{name}=");
                vars.iter().find_map(|var| {
                    var.strip_prefix(prefix.as_bytes())
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
            };
            Some((*pid, value(STEP_MARKER)?, value(RUNBOOK_MARKER)))
        })
        .collect()
}

/// Makes this process the reaper of its orphaned descendants, so that a
/// daemon started by a step (double fork, `setsid`, `nohup ... &`) stays in
/// our process tree and is found by [`sweep`].
pub fn become_subreaper() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers and only
        // changes a flag of the calling process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Time a command gets when its caller names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A command the run starts: a shell script or an argv. Whatever it is, it
/// runs in its own process group (so a timeout or an abort ends all of it),
/// carries the run marker (so the sweep finds what escapes the group), has
/// no stdin, and has a timeout that kills its group.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    run_id: String,
    timeout: Duration,
    watch: Option<crate::watch::Watch>,
}

impl Cmd {
    /// `/bin/sh -c script`.
    pub fn shell(run_id: &str, script: &str) -> Cmd {
        Cmd::shell_in(run_id, "/bin/sh", script)
    }

    /// `program -c script` with another shell (`/bin/bash` for `bash`
    /// runbook blocks).
    pub fn shell_in(run_id: &str, program: &str, script: &str) -> Cmd {
        Cmd::argv(run_id, program, ["-c", script])
    }

    /// `program args…`, no shell.
    pub fn argv<S: AsRef<str>>(
        run_id: &str,
        program: impl Into<String>,
        args: impl IntoIterator<Item = S>,
    ) -> Cmd {
        Cmd {
            program: program.into(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env: BTreeMap::new(),
            cwd: None,
            run_id: run_id.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            watch: None,
        }
    }

    /// Adds variables to the environment it inherits.
    pub fn envs(mut self, env: &BTreeMap<String, String>) -> Cmd {
        self.env
            .extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// Its working directory.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Cmd {
        self.cwd = Some(cwd.into());
        self
    }

    /// When its process group is killed.
    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = timeout;
        self
    }

    /// Watches every byte of its output for the texts and patterns a check
    /// needs ([`Finished::seen`]): of its combined output with
    /// [`Cmd::run_logged`], of its stdout then its stderr with
    /// [`Cmd::run_captured`].
    pub fn watching(mut self, watch: Option<crate::watch::Watch>) -> Cmd {
        self.watch = watch;
        self
    }

    /// The process to spawn, for callers that keep it running (services):
    /// own process group, the run marker, no stdin.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(&self.env)
            .env(RUN_MARKER, &self.run_id)
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command
    }

    fn spawn(&self, mut command: Command) -> std::io::Result<Child> {
        tracing::debug!(program = %self.program, args = ?self.args, timeout = ?self.timeout, "spawn");
        command.spawn()
    }

    /// Runs it with its output appended to `log`, waiting for the command
    /// itself, not for what it put in the background (which keeps running
    /// until the run's sweep). On timeout the whole process group is killed.
    /// `on_spawn` gets its pid (= its process group).
    pub async fn run_logged(
        &self,
        log: &Path,
        on_spawn: impl FnOnce(u32),
    ) -> std::io::Result<Finished> {
        let start_len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        // Through a pipe into a capped writer: however much the command
        // prints, the log never holds more than its cap.
        let mut capped = crate::bounded::CappedLog::open_watched(
            log,
            crate::bounded::log_limit(),
            self.watch.clone(),
        )?;
        let mut command = self.command();
        command.stdout(capped.stdio()?).stderr(capped.stdio()?);
        // What it leaves in the background is not killed by SIGPIPE if the
        // runner dies: `resume` adopts it.
        capped.outlive_runner(&mut command);
        let spawned = self.spawn(command);
        capped.close();
        let mut child = spawned?;
        let pid = child.id();
        let guard = GroupGuard(pid);
        if let Some(pid) = pid {
            on_spawn(pid);
        }
        let (exit_code, timed_out) = wait_or_kill(&mut child, self.timeout).await;
        guard.disarm();
        // What the command printed before it ended is in the file; what it
        // left in the background goes on being written, capped. However the
        // pipe behaves, the run goes on within moments.
        if !capped.sync(LOG_PATIENCE).await {
            tracing::warn!(log = %log.display(), patience = ?LOG_PATIENCE, "the log did not catch up with the command's output; its last lines may be missing");
        }
        let seen = capped.seen();
        let log = log.to_path_buf();
        let (output, dropped) =
            tokio::task::spawn_blocking(move || read_from(&log, start_len).unwrap_or_default())
                .await
                .unwrap_or_default();
        Ok(Finished {
            exit_code,
            timed_out,
            output,
            pid,
            dropped,
            seen,
        })
    }

    /// Runs it and captures stdout and stderr separately (probes, the data
    /// reader, the programs a target drives). The group is killed at the
    /// timeout, and output reading stops then too, so a command that leaves
    /// something holding its pipes cannot hang the run.
    pub async fn run_captured(&self) -> std::io::Result<(Finished, String)> {
        let mut command = self.command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.spawn(command)?;
        let pid = child.id();
        let guard = GroupGuard(pid);
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut out_watch = self.watch.clone();
        let mut err_watch = self.watch.as_ref().map(crate::watch::Watch::following);
        let read_all = async {
            // Read to the end (a command blocked on a full pipe never exits),
            // keep a bounded tail.
            let read_out = async {
                match stdout.as_mut() {
                    Some(s) => {
                        crate::bounded::read_tail(s, MAX_OUTPUT as usize, out_watch.as_mut()).await
                    }
                    None => (Vec::new(), 0),
                }
            };
            let read_err = async {
                match stderr.as_mut() {
                    Some(s) => {
                        crate::bounded::read_tail(s, MAX_OUTPUT as usize, err_watch.as_mut()).await
                    }
                    None => (Vec::new(), 0),
                }
            };
            let ((out, out_dropped), (err, err_dropped)) = tokio::join!(read_out, read_err);
            let status = child.wait().await;
            (out, err, out_dropped + err_dropped, status)
        };
        let finished = tokio::time::timeout(self.timeout, read_all).await;
        guard.disarm();
        match finished {
            Ok((out, err, dropped, status)) => {
                let exit_code = status.ok().and_then(|s| s.code());
                let seen = match (&out_watch, &err_watch) {
                    (Some(out), Some(err)) => Some(out.seen_then(err)),
                    _ => None,
                };
                let stdout = String::from_utf8_lossy(&out).into_owned();
                let stderr = String::from_utf8_lossy(&err).into_owned();
                Ok((
                    Finished {
                        exit_code,
                        timed_out: false,
                        output: stderr,
                        pid,
                        dropped,
                        seen,
                    },
                    stdout,
                ))
            }
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid as i32, Signal::SIGKILL);
                }
                tracing::warn!(program = %self.program, timeout = ?self.timeout, "timed out; its process group was killed");
                Ok((
                    Finished {
                        exit_code: None,
                        timed_out: true,
                        output: String::new(),
                        pid,
                        dropped: 0,
                        seen: None,
                    },
                    String::new(),
                ))
            }
        }
    }
}

/// Kills a command's process group if whoever waits for it gives up (its
/// future is dropped: an aborted step, a probe check that lost the race).
struct GroupGuard(Option<u32>);

impl GroupGuard {
    /// The command ended as it should; what it left in the background is the
    /// sweep's.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_group(pid as i32, Signal::SIGKILL);
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Exit code; `None` if killed by a signal or timed out.
    pub exit_code: Option<i32>,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Its output (stdout and stderr as they interleaved), bounded.
    pub output: String,
    /// Process id of the shell.
    pub pid: Option<u32>,
    /// Bytes of output that `output` (and a captured stdout) do not hold:
    /// cut from a capped log or beyond the kept tail. A text expectation
    /// that fails on cut output says so.
    pub dropped: u64,
    /// What the command's [`Cmd::watching`] watch saw of all its output.
    pub seen: Option<crate::watch::Seen>,
}

impl Finished {
    /// Exit 0 within the timeout.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// The last `lines` lines of a text, whole (evidence files).
pub fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// The last `lines` lines of a command's output, for a detail, a record or
/// a report: at most [`crate::text::MAX_DETAIL`] characters, so one huge
/// line is shown as its start and its end.
pub fn tail(text: &str, lines: usize) -> String {
    crate::text::clip(&last_lines(text, lines), crate::text::MAX_DETAIL).into_owned()
}

/// [`tail`] on one line (`a | b`), for an error message.
pub fn tail_on_one_line(text: &str, lines: usize) -> String {
    tail(text.trim(), lines).replace('\n', " | ")
}

const MAX_OUTPUT: u64 = 256 * 1024;

/// The log from `offset` on, at most its last [`MAX_OUTPUT`] bytes, and how
/// many bytes of the command's output it does not hold (skipped here, or
/// dropped by the log's cap as its note says).
fn read_from(path: &Path, offset: u64) -> std::io::Result<(String, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = offset.max(len.saturating_sub(MAX_OUTPUT));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_OUTPUT).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let dropped = (start - offset.min(start)) + crate::bounded::dropped_in(&text);
    Ok((text, dropped))
}

/// Waits for a child; at the timeout kills its process group, and waits
/// for it to be reaped at most [`KILL_PATIENCE`] more (a process in
/// uninterruptible sleep dies only when it leaves it; the run's sweep ends
/// it then).
async fn wait_or_kill(child: &mut Child, timeout: Duration) -> (Option<i32>, bool) {
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(_)) => (None, false),
        Err(_) => {
            if let Some(pid) = child.id() {
                kill_group(pid as i32, Signal::SIGKILL);
            }
            let _ = tokio::time::timeout(KILL_PATIENCE, child.wait()).await;
            (None, true)
        }
    }
}

/// How long a command whose group was killed at its timeout gets to end.
const KILL_PATIENCE: Duration = Duration::from_secs(10);

/// How long a command's log may take, once the command ended, to hold all
/// it printed (the pump's turn on a loaded machine): the runner never waits
/// longer on a log pipe, whatever holds it.
const LOG_PATIENCE: Duration = Duration::from_secs(10);

/// Sends a signal to a process group; a group that is gone is not an error.
/// Group ids 0 and 1 are refused, whatever the caller read them from: 0
/// means the caller's own group to the kernel (and is what /proc shows for
/// a group whose leader is outside this pid namespace), 1 is init's.
pub fn kill_group(pgid: i32, signal: Signal) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), signal).is_ok()
}

/// A process seen in /proc.
#[derive(Debug, Clone)]
struct ProcInfo {
    ppid: i32,
    pgrp: i32,
    zombie: bool,
    stopped: bool,
}

impl ProcInfo {
    /// From the text of `/proc/<pid>/stat`.
    fn parse(stat: &str) -> Option<ProcInfo> {
        // The command name is in parentheses and may contain spaces: parse after the last ')'.
        let rest = stat.rfind(')').map(|i| &stat[i + 1..])?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let pgrp = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(ProcInfo {
            ppid,
            pgrp,
            zombie: matches!(state, "Z" | "X"),
            stopped: matches!(state, "T" | "t"),
        })
    }

    fn of(pid: i32) -> Option<ProcInfo> {
        ProcInfo::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

fn read_proc_table() -> HashMap<i32, ProcInfo> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(info) = ProcInfo::of(pid) {
            table.insert(pid, info);
        }
    }
    table
}

/// Live (not zombie) descendants of `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let table = read_proc_table();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (pid, info) in &table {
        children.entry(info.ppid).or_default().push(*pid);
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if table.get(child).is_some_and(|info| !info.zombie) {
                found.push(*child);
            }
            stack.push(*child);
        }
    }
    found.sort();
    found
}

/// Live processes whose environment carries `FIREDRILL_RUN_ID=<run_id>`:
/// what a run started, wherever it ended up in the process tree.
pub fn marked_processes(run_id: &str) -> Vec<i32> {
    let needle = format!("{RUN_MARKER}={run_id}");
    let me = std::process::id() as i32;
    let table = read_proc_table();
    let mut found: Vec<i32> = table
        .iter()
        .filter(|(pid, info)| **pid != me && !info.zombie)
        .filter(|(pid, _)| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
        })
        .map(|(pid, _)| *pid)
        .collect();
    found.sort();
    found
}

/// Ends every process of the run: our descendants and everything marked
/// with the run's id. TERM first, so services can flush; KILL after `grace`.
/// Stopped processes are continued so that they can die. Returns the pids
/// that had to be ended.
/// With `descendants`, every descendant of this process is ended too (right
/// for the runner, whose children all belong to the run; not for a test
/// harness that runs a drill in-process).
pub async fn sweep(run_id: &str, grace: Duration, with_descendants: bool) -> Vec<i32> {
    // /proc scans read a file per process: off the async threads.
    let scan = || async {
        let _ = tokio::task::spawn_blocking(reap_orphans).await;
        run_processes(run_id, with_descendants).await
    };
    let first = scan().await;
    if first.is_empty() {
        return first;
    }
    let deadline = tokio::time::Instant::now() + grace;
    // One at a time, the newest first, each given a moment to end before the
    // next is asked: peers that hand their work over when they stop (an etcd
    // leader transfers leadership) stop at once while the others are still
    // there, where all asked together each waits out its timeout on a peer
    // that is stopping too.
    for pid in first.iter().rev() {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
        let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
        let until = deadline.min(now + EACH_MAY_TAKE);
        let mut pause = Duration::from_millis(1);
        while is_alive(*pid) && tokio::time::Instant::now() < until {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
    for pid in &first {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
        let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
    }
    loop {
        let left = scan().await;
        if left.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for pid in &left {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
        }
        if tokio::time::Instant::now() >= deadline + Duration::from_secs(5) {
            tracing::warn!(?left, "processes did not end after SIGKILL");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::task::spawn_blocking(reap_orphans).await;
    first
}

/// How long the sweep waits for one process to end before it asks the next.
const EACH_MAY_TAKE: Duration = Duration::from_millis(500);

/// Whether a process runs (a zombie has ended).
fn is_alive(pid: i32) -> bool {
    ProcInfo::of(pid).is_some_and(|info| !info.zombie)
}

/// The processes of a run that are still there: everything marked with
/// its id, and with `with_descendants` every descendant of this process.
pub async fn run_processes(run_id: &str, with_descendants: bool) -> Vec<i32> {
    let run_id = run_id.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut pids = if with_descendants {
            descendants(std::process::id() as i32)
        } else {
            Vec::new()
        };
        pids.extend(marked_processes(&run_id));
        pids.sort();
        pids.dedup();
        pids
    })
    .await
    .unwrap_or_default()
}

/// Waits until every process of these groups has stopped (a SIGSTOP takes
/// effect only when the process next runs, which on a busy machine can be
/// many milliseconds later). Whether they all did within `within`.
pub async fn wait_until_stopped(pgids: &[i32], within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let pgids = pgids.to_vec();
    let mut pause = Duration::from_millis(1);
    loop {
        let groups = pgids.clone();
        let running = tokio::task::spawn_blocking(move || running_in_groups(&groups))
            .await
            .unwrap_or(0);
        if running == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// How many processes of these groups are neither stopped nor ended.
fn running_in_groups(pgids: &[i32]) -> usize {
    read_proc_table()
        .values()
        .filter(|info| pgids.contains(&info.pgrp) && !info.stopped && !info.zombie)
        .count()
}

/// [`marked_processes`] off the async threads.
pub async fn marked_processes_async(run_id: &str) -> Vec<i32> {
    let run_id = run_id.to_owned();
    tokio::task::spawn_blocking(move || marked_processes(&run_id))
        .await
        .unwrap_or_default()
}

/// Reaps exited children that are no longer tracked by anyone (orphans that
/// were reparented to us as subreaper), so they do not linger as zombies.
fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let table = read_proc_table();
    let me = std::process::id() as i32;
    for (pid, info) in table {
        if info.ppid == me && info.zombie {
            // Only zombies: a live child tracked by tokio is never waited here.
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => {}
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_zero_and_one_are_never_signalled() {
        // SIGCONT is harmless should the guard ever be lost: the test then
        // fails on the return value, not by stopping the test runner.
        assert!(!kill_group(0, Signal::SIGCONT));
        assert!(!kill_group(1, Signal::SIGCONT));
        assert!(!kill_group(-5, Signal::SIGCONT));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let env = BTreeMap::new();
        let finished = Cmd::shell("test-run", "sleep 30 & sleep 30")
            .envs(&env)
            .timeout(Duration::from_millis(300))
            .run_logged(&log, |_| {})
            .await
            .unwrap();
        assert!(finished.timed_out);
        assert_eq!(finished.exit_code, None);
        let pid = finished.pid.unwrap() as i32;
        // The background `sleep` was in the same group and is gone too (a
        // zombie at most). Only this group is looked at: other tests of this
        // binary run their own children meanwhile.
        let live_member = || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|p| p.parse::<i32>().ok())
                    .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
                    .is_some_and(|stat| {
                        // After the command name: state, ppid, pgrp.
                        let fields: Vec<&str> = stat
                            .rsplit_once(')')
                            .map(|(_, rest)| rest.split_whitespace().collect())
                            .unwrap_or_default();
                        fields.first() != Some(&"Z") && fields.get(2) == Some(&&*pid.to_string())
                    })
            })
        };
        for _ in 0..100 {
            if !live_member() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !live_member(),
            "a process of group {pid} outlived the timeout"
        );
    }

    #[tokio::test]
    async fn captured_output_separates_stdout() {
        let env = BTreeMap::new();
        let (finished, stdout) = Cmd::shell("test-run", "echo out; echo err >&2; exit 3")
            .envs(&env)
            .timeout(Duration::from_secs(5))
            .run_captured()
            .await
            .unwrap();
        assert_eq!(finished.exit_code, Some(3));
        assert_eq!(stdout, "out\n");
        assert_eq!(finished.output, "err\n");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
    }
}
