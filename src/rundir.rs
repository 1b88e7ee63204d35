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

/// The lock a runner holds on its run directory (`RUN_DIR/lock`, `flock`)
/// for as long as it runs: `run` and `resume` take it, so two runners never
/// drive one run; `clean` needs it too. The kernel drops it when the holder
/// dies, however it dies.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl Lock {
    /// Takes the lock, or says who holds it.
    pub fn take(run_dir: &Path) -> Result<Lock, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = run_dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // A `lock` that is a symlink (a crafted run directory) is never followed.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        // A holder that died a moment ago may still hold the lock through a
        // process it was starting (forked, not yet executing): gone soon.
        let mut patience = 40;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.seek(SeekFrom::Start(0));
                    let _ = file.read_to_string(&mut holder);
                    let mut fields = holder.split_whitespace();
                    let pid = fields.next().and_then(|p| p.parse::<u32>().ok());
                    let started = fields.next().and_then(|t| t.parse::<u64>().ok());
                    let holder_alive = pid.is_none_or(|pid| runner_alive(pid, started));
                    if holder_alive || patience == 0 {
                        let who = pid.map_or("another firedrill".to_owned(), |pid| {
                            format!("another firedrill (pid {pid})")
                        });
                        return Err(format!(
                            "{who} holds {} (its lock {}); wait for it to end",
                            run_dir.display(),
                            path.display()
                        ));
                    }
                    patience -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(error)) => {
                    return Err(format!("cannot lock {}: {error}", path.display()));
                }
            }
        }
        // Who holds it, for the message of whoever comes next.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let me = std::process::id();
        let started = start_time(me).map(|t| format!(" {t}")).unwrap_or_default();
        let _ = writeln!(file, "{me}{started}");
        Ok(Lock { _file: file })
    }
}

/// SHA-256 of a file's bytes, hex.
pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
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
    fn a_run_directory_is_locked_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = Lock::take(dir.path()).unwrap();
        let refused = Lock::take(dir.path()).unwrap_err();
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(held);
        Lock::take(dir.path()).unwrap();
    }

    #[test]
    fn files_are_known_by_their_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_of(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
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
