//! firedrill's error type and its process exit codes: the one place both live.
//!
//! Library modules return their own typed errors (`drill::FileProblems`,
//! `journal::JournalError`, `runbook::RunbookError`, ...); the commands in
//! `cmd` wrap them in [`Error`], and `main` turns an `Error` into an exit code
//! with [`Error::exit_code`]. The codes are those of docs/cli.md (exit codes).

use std::path::PathBuf;

/// The command did what was asked; a drill passed.
pub const EXIT_OK: i32 = 0;
/// A drill failed (recovered too slowly, not at all, ...), or `runbook lint` found something.
pub const EXIT_FAILED: i32 = 1;
/// Invalid input or usage: a drill with problems, an unknown flag, a missing file.
pub const EXIT_INVALID: i32 = 2;
/// A drill was aborted: a guard failed or the halt file appeared.
pub const EXIT_ABORTED: i32 = 3;
/// The drill or command could not be carried out (a missing tool, a failing system).
pub const EXIT_ERROR: i32 = 4;
/// The run was interrupted (Ctrl-C or SIGTERM): 128 + SIGINT, as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Why a command did not do what was asked.
///
/// Problems with several parts (every problem of a drill file, every finding
/// of a lint) are printed by the command as it finds them; the error then
/// carries the summary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A drill file has problems; they render with [`crate::drill::FileProblems::render`].
    #[error("{} has {} problem(s)", .0.path.display(), .0.problems.len())]
    Drill(Box<crate::drill::FileProblems>),
    /// `validate` found invalid drills (their problems are already printed).
    #[error("{invalid} of {total} drill{} invalid ({problems} problem{})", plural(*.total), plural(*.problems))]
    InvalidDrills {
        /// Drills with problems.
        invalid: usize,
        /// Drills checked.
        total: usize,
        /// Problems in all of them.
        problems: usize,
    },
    /// A directory named on the command line cannot be listed.
    #[error("cannot read directory {}: {source}", .path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A directory named on the command line holds no drill files.
    #[error("no *.yaml or *.yml drill files in {}", .0.display())]
    NoDrillFiles(PathBuf),
    /// `--var` is not `NAME=VALUE`.
    #[error("--var {0:?}: expected NAME=VALUE with NAME made of letters, digits and _")]
    InvalidVar(String),
    /// `--var` names a variable firedrill sets itself.
    #[error(
        "--var {0}: `{0}` is reserved: firedrill sets it for every run (WORKDIR, RUN_ID, DRILL, SCENARIO_DIR, RUN_DIR, CLUSTER, KUBECONFIG, KUBECACHEDIR, FIREDRILL_*, KIND_*)"
    )]
    ReservedVar(String),
    /// `run --surprise` with a window that is not `LOW-HIGH`.
    #[error("{0}")]
    Surprise(String),
    /// `--run-dir` or `--junit` with several drills.
    #[error(
        "--run-dir and --junit name one run's records, and this game day has {0} drills; leave them out (each drill's records go under .firedrill/runs/, and the table at the end lists them)"
    )]
    OneRunOnly(usize),
    /// A run directory cannot be resumed or cleaned (the engine's own words).
    #[error("{0}")]
    RunDir(String),
    /// The engine refused to start the run.
    #[error("{0}")]
    Start(String),
    /// `report` on a directory without a journal.
    #[error("{} has no journal.json: not a finished firedrill run directory{}", .run_dir.display(), if *.has_events { " (the run has events.jsonl but never finished; `firedrill resume` it first)" } else { "" })]
    NoJournal {
        /// The directory given.
        run_dir: PathBuf,
        /// It has `events.jsonl`: a run that never finished.
        has_events: bool,
    },
    /// A journal that cannot be read back.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// `history --dir` names something that is not a directory.
    #[error("{} is not a directory of runs", .0.display())]
    NotRunsDir(PathBuf),
    /// `runbook lint` could not read some runbooks (each error is already printed).
    #[error("{unreadable} of {total} runbook{} could not be read", plural(*.total))]
    UnreadableRunbooks {
        /// Runbooks that could not be read or parsed.
        unreadable: usize,
        /// Runbooks named.
        total: usize,
    },
    /// Writing the command's output failed (not a closed pipe: that is the reader's choice).
    #[error("cannot write the {what}: {source}")]
    Output {
        /// What was being written.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// `clean` on a run whose runner is still alive.
    #[error(
        "the run's runner (pid {0}) is still alive; stop it with Ctrl-C (or `kill -INT {0}`) and it cleans up itself"
    )]
    RunnerAlive(u32),
    /// `cluster-id`: no usable kubeconfig or context.
    #[error("{0}")]
    Kubeconfig(String),
    /// `cluster-id`: the cluster's API server does not answer or refuses.
    #[error("{0}")]
    Cluster(String),
    /// `clean`: the kind cluster the run created was not deleted.
    #[error("{0}")]
    KindCluster(String),
    /// `clean` could not remove a WORKDIR.
    #[error("cannot remove {}: {source}", .path.display())]
    RemoveWorkdir {
        /// The WORKDIR.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Drill(_)
            | Error::InvalidDrills { .. }
            | Error::ReadDir { .. }
            | Error::NoDrillFiles(_)
            | Error::InvalidVar(_)
            | Error::ReservedVar(_)
            | Error::Surprise(_)
            | Error::OneRunOnly(_)
            | Error::RunDir(_)
            | Error::Start(_)
            | Error::NoJournal { .. }
            | Error::Journal(_)
            | Error::NotRunsDir(_)
            | Error::UnreadableRunbooks { .. }
            | Error::Kubeconfig(_) => EXIT_INVALID,
            Error::Output { .. }
            | Error::Cluster(_)
            | Error::KindCluster(_)
            | Error::Runtime(_)
            | Error::RunnerAlive(_)
            | Error::RemoveWorkdir { .. } => EXIT_ERROR,
        }
    }

    /// Whether the error is a summary of problems already printed one by one
    /// (then it is shown as is, not as `error: ...`).
    pub fn is_summary(&self) -> bool {
        matches!(
            self,
            Error::InvalidDrills { .. } | Error::UnreadableRunbooks { .. }
        )
    }
}

impl crate::journal::Verdict {
    /// The process exit code for a run that ended with this verdict.
    pub fn exit_code(self) -> i32 {
        use crate::journal::Verdict;
        match self {
            Verdict::Passed => EXIT_OK,
            Verdict::Failed => EXIT_FAILED,
            Verdict::Aborted => EXIT_ABORTED,
            Verdict::Error => EXIT_ERROR,
        }
    }
}

/// `"s"` unless there is exactly one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_read_as_before() {
        let error = Error::InvalidDrills {
            invalid: 1,
            total: 2,
            problems: 3,
        };
        assert_eq!(error.to_string(), "1 of 2 drills invalid (3 problems)");
        assert_eq!(error.exit_code(), EXIT_INVALID);
        let error = Error::UnreadableRunbooks {
            unreadable: 1,
            total: 1,
        };
        assert_eq!(error.to_string(), "1 of 1 runbook could not be read");
        assert_eq!(Error::RunnerAlive(7).exit_code(), EXIT_ERROR);
    }
}
