//! A run's directory as firedrill owns it (docs/cli.md, "The run directory"):
//! claimed atomically by one run, never a directory that already holds
//! something; the only `WORKDIR` `clean` removes is the one inside it; its
//! runner is recognised by pid and start time, never by its name.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The name of the work directory inside a run directory.
pub const WORK: &str = "work";

/// Creates `run_dir` for a new run and claims it: `events.jsonl` is created
/// exclusively (`O_EXCL`), so of two runs started into one directory, one
/// wins and the other is refused. A directory that exists and is not empty
/// is refused (`--run-dir ~` must never touch `~/work`).
pub fn claim(run_dir: &Path) -> Result<(), String> {
    if let Some(parent) = run_dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    match std::fs::create_dir(run_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let is_dir = run_dir.symlink_metadata().is_ok_and(|m| m.is_dir());
            let empty = is_dir
                && std::fs::read_dir(run_dir).is_ok_and(|mut entries| entries.next().is_none());
            if !empty {
                return Err(refusal(run_dir));
            }
        }
        Err(error) => return Err(format!("cannot create {}: {error}", run_dir.display())),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(run_dir.join("events.jsonl"))
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => refusal(run_dir),
            _ => format!(
                "cannot write {}: {error}",
                run_dir.join("events.jsonl").display()
            ),
        })?;
    // The work directory is new too: nothing of somebody else's is in it.
    std::fs::create_dir(run_dir.join(WORK))
        .map_err(|error| format!("cannot create {}: {error}", run_dir.join(WORK).display()))
}

fn refusal(run_dir: &Path) -> String {
    format!(
        "{} exists and is not empty: a run writes only into a new or empty directory; give another --run-dir (or `firedrill resume` a run that died)",
        run_dir.display()
    )
}

/// The WORKDIR of a run directory, and whether it is the one `events.jsonl`
/// records. A recorded WORKDIR elsewhere (a crafted or copied run
/// directory) is never used: only `RUN_DIR/work` belongs to the run.
pub fn workdir_of(run_dir: &Path, recorded: &Path) -> (PathBuf, bool) {
    let workdir = run_dir.join(WORK);
    let same = recorded == workdir
        || matches!(
            (recorded.canonicalize(), workdir.canonicalize()),
            (Ok(a), Ok(b)) if a == b
        );
    (workdir, same)
}

/// Ends a damaged last line of an events file (a runner killed while
/// writing it) with a newline, so that what is appended next starts a line
/// of its own.
pub fn end_last_line(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

/// When a process started, in clock ticks after boot (`/proc/PID/stat`,
/// field 22): with the pid, it names one process for good, as a pid alone
/// does not (pids are reused).
pub fn start_time(pid: u32) -> Option<u64> {
    crate::leftovers::ProcStat::read(i32::try_from(pid).ok()?).map(|stat| stat.start)
}

/// Whether the process recorded as (`pid`, `started`) is alive. Without a
/// recorded start time (runs from older versions) a live pid counts as
/// alive: better refuse to clean than kill a live run.
pub fn runner_alive(pid: u32, started: Option<u64>) -> bool {
    match (start_time(pid), started) {
        (Some(now), Some(recorded)) => now == recorded,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_claimed_once_and_never_when_it_holds_something() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("deep/run");
        claim(&run).unwrap();
        assert!(run.join(WORK).is_dir());
        assert!(claim(&run).unwrap_err().contains("not empty"));
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("work")).unwrap();
        assert!(claim(&home).is_err());
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        claim(&empty).unwrap();
    }

    #[test]
    fn this_process_is_alive_by_pid_and_start_time() {
        let me = std::process::id();
        let started = start_time(me);
        assert!(started.is_some());
        assert!(runner_alive(me, started));
        assert!(!runner_alive(me, started.map(|t| t + 1)));
    }

    #[test]
    fn a_damaged_last_line_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":\xc3").unwrap();
        end_last_line(&path).unwrap();
        end_last_line(&path).unwrap();
        assert!(std::fs::read(&path).unwrap().ends_with(b"\xc3\n"));
    }
}
