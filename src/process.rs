//! Processes the run starts: shells in their own process groups, timeouts
//! that kill the whole group, and the final sweep that ends everything the run
//! left behind, including what escaped into new sessions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Environment variable that marks every process of a run (inherited by all
/// its descendants), so a sweep can find what escaped the process tree.
pub const RUN_MARKER: &str = "FIREDRILL_RUN_ID";

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

/// A `/bin/sh -c` command in its own process group with the run's environment.
pub fn shell(script: &str, env: &BTreeMap<String, String>, cwd: Option<&Path>) -> Command {
    shell_in("/bin/sh", script, env, cwd)
}

/// Like [`shell`] with another shell (`/bin/bash` for `bash` runbook blocks).
pub fn shell_in(
    program: &str,
    script: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
) -> Command {
    let mut command = Command::new(program);
    command
        .arg("-c")
        .arg(script)
        .envs(env)
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    command
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
}

impl Finished {
    /// Exit 0 within the timeout.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// The last `lines` lines of a text, for reports.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

const MAX_OUTPUT: u64 = 256 * 1024;

/// Runs a shell with its output appended to `log`, waiting for the shell
/// itself, not for what it put in the background (which keeps running until
/// the run's sweep). On timeout the whole process group is killed.
pub async fn run_logged(
    script: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
    log: &Path,
    timeout: Duration,
    on_spawn: impl FnOnce(u32),
) -> std::io::Result<Finished> {
    run_logged_in("/bin/sh", script, env, cwd, log, timeout, on_spawn).await
}

/// [`run_logged`] with another shell.
pub async fn run_logged_in(
    program: &str,
    script: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
    log: &Path,
    timeout: Duration,
    on_spawn: impl FnOnce(u32),
) -> std::io::Result<Finished> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let start_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut command = shell_in(program, script, env, cwd);
    command.stdout(file.try_clone()?).stderr(file);
    let mut child = command.spawn()?;
    let pid = child.id();
    if let Some(pid) = pid {
        on_spawn(pid);
    }
    let (exit_code, timed_out) = wait_or_kill(&mut child, timeout).await;
    let output = read_from(log, start_len).unwrap_or_default();
    // What is left on disk is bounded: head and tail, the rest said dropped.
    if let Err(error) = crate::bounded::cap_log(log, crate::bounded::log_limit()) {
        tracing::warn!(%error, log = %log.display(), "cannot cap the log");
    }
    Ok(Finished {
        exit_code,
        timed_out,
        output,
        pid,
    })
}

fn read_from(path: &Path, offset: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = offset.max(len.saturating_sub(MAX_OUTPUT));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_OUTPUT).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Waits for a child; at the timeout kills its process group.
async fn wait_or_kill(child: &mut Child, timeout: Duration) -> (Option<i32>, bool) {
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(_)) => (None, false),
        Err(_) => {
            if let Some(pid) = child.id() {
                kill_group(pid as i32, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            (None, true)
        }
    }
}

/// Sends a signal to a process group; a group that is gone is not an error.
pub fn kill_group(pgid: i32, signal: Signal) -> bool {
    killpg(Pid::from_raw(pgid), signal).is_ok()
}

/// Runs a shell and captures stdout and stderr separately (for probes and
/// the data reader). The group is killed at the timeout, and output reading
/// stops then too, so a probe that leaves something holding its pipes cannot
/// hang the run.
pub async fn run_captured(
    script: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
    timeout: Duration,
) -> std::io::Result<(Finished, String)> {
    let mut command = shell(script, env, cwd);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let pid = child.id();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_all = async {
        // Read to the end (a command blocked on a full pipe never exits),
        // keep a bounded tail.
        let read_out = async {
            match stdout.as_mut() {
                Some(s) => crate::bounded::read_tail(s, MAX_OUTPUT as usize).await,
                None => Vec::new(),
            }
        };
        let read_err = async {
            match stderr.as_mut() {
                Some(s) => crate::bounded::read_tail(s, MAX_OUTPUT as usize).await,
                None => Vec::new(),
            }
        };
        let (out, err) = tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (out, err, status)
    };
    match tokio::time::timeout(timeout, read_all).await {
        Ok((out, err, status)) => {
            let exit_code = status.ok().and_then(|s| s.code());
            let stdout = String::from_utf8_lossy(&out).into_owned();
            let stderr = String::from_utf8_lossy(&err).into_owned();
            Ok((
                Finished {
                    exit_code,
                    timed_out: false,
                    output: stderr,
                    pid,
                },
                stdout,
            ))
        }
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid as i32, Signal::SIGKILL);
            }
            Ok((
                Finished {
                    exit_code: None,
                    timed_out: true,
                    output: String::new(),
                    pid,
                },
                String::new(),
            ))
        }
    }
}

/// A process seen in /proc.
#[derive(Debug, Clone)]
struct ProcInfo {
    ppid: i32,
    zombie: bool,
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
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain spaces: parse after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        table.insert(
            pid,
            ProcInfo {
                ppid,
                zombie: state == "Z" || state == "X",
            },
        );
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
    let me = std::process::id() as i32;
    let targets = |_: ()| {
        let mut pids = if with_descendants {
            descendants(me)
        } else {
            Vec::new()
        };
        pids.extend(marked_processes(run_id));
        pids.sort();
        pids.dedup();
        pids
    };
    let first = targets(());
    if first.is_empty() {
        reap_orphans();
        return first;
    }
    for pid in &first {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
        let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
    }
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        reap_orphans();
        let left = targets(());
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
    reap_orphans();
    first
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

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let env = BTreeMap::new();
        let finished = run_logged(
            "sleep 30 & sleep 30",
            &env,
            None,
            &log,
            Duration::from_millis(300),
            |_| {},
        )
        .await
        .unwrap();
        assert!(finished.timed_out);
        assert_eq!(finished.exit_code, None);
        let pid = finished.pid.unwrap() as i32;
        // The background `sleep` was in the same group and is gone too.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !kill_group(pid, Signal::SIGCONT) || descendants(std::process::id() as i32).is_empty()
        );
    }

    #[tokio::test]
    async fn captured_output_separates_stdout() {
        let env = BTreeMap::new();
        let (finished, stdout) = run_captured(
            "echo out; echo err >&2; exit 3",
            &env,
            None,
            Duration::from_secs(5),
        )
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
