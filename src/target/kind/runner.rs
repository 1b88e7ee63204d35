//! The seam between the kind target and the programs it drives (`kind`,
//! `docker`, `podman`): the real one spawns them, the fake one records the
//! argv and answers from a script, so tests can assert every command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::process::Cmd;

/// How long one `kind`, `docker` or `podman` command may take.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What a finished command left.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code; `None` if it was ended by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// A command that exited 0 and printed `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Output {
        Output {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A command that exited `code` and printed `stderr`.
    pub fn failed(code: i32, stderr: impl Into<String>) -> Output {
        Output {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// It exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs programs.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Where `program` is on the search path, if it is installed.
    fn find(&self, program: &str) -> Option<PathBuf>;

    /// Runs `program args` to the end with `env` added to the environment,
    /// marked as a process of the run `run_id`.
    async fn run(
        &self,
        program: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        run_id: &str,
    ) -> std::io::Result<Output>;
}

/// Spawns real processes.
#[derive(Debug, Clone, Default)]
pub struct SystemRunner {
    /// Search path to use instead of the process's `PATH`.
    path: Option<String>,
}

impl SystemRunner {
    /// Uses the process's `PATH`.
    pub fn new() -> SystemRunner {
        SystemRunner { path: None }
    }

    /// Looks programs up in `path` (a `PATH`-style list) instead.
    pub fn with_path(path: impl Into<String>) -> SystemRunner {
        SystemRunner {
            path: Some(path.into()),
        }
    }

    fn search_path(&self) -> String {
        self.path
            .clone()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default()
    }
}

/// The first executable file named `program` in a `PATH`-style list.
pub fn find_in_path(program: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

#[async_trait]
impl Runner for SystemRunner {
    fn find(&self, program: &str) -> Option<PathBuf> {
        find_in_path(program, &self.search_path())
    }

    async fn run(
        &self,
        program: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        run_id: &str,
    ) -> std::io::Result<Output> {
        let resolved = self
            .find(program)
            .unwrap_or_else(|| Path::new(program).to_path_buf());
        // `kind create cluster --wait 5m` is the longest of them.
        let (finished, stdout) = Cmd::argv(run_id, resolved.display().to_string(), args)
            .envs(env)
            .timeout(COMMAND_TIMEOUT)
            .run_captured()
            .await?;
        let mut stderr = finished.output;
        if finished.timed_out {
            stderr.push_str(&format!(
                "{program} did not finish within {}; its process group was killed",
                crate::duration::format_duration(COMMAND_TIMEOUT)
            ));
        }
        Ok(Output {
            code: finished.exit_code,
            stdout,
            stderr,
        })
    }
}

/// One command the fake runner was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The environment added for it.
    pub env: BTreeMap<String, String>,
    /// The run it was marked with.
    pub run_id: String,
}

impl Call {
    /// `program arg arg ...`, for assertions.
    pub fn argv(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

type Script = dyn Fn(&str) -> Output + Send + Sync;

/// A runner for tests: records every call and answers from a script that
/// maps the argv (`program arg ...`) to an [`Output`].
#[derive(Clone)]
pub struct FakeRunner {
    installed: Vec<String>,
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Script>,
}

impl FakeRunner {
    /// Programs in `installed` are found; the others are not.
    pub fn new(
        installed: &[&str],
        script: impl Fn(&str) -> Output + Send + Sync + 'static,
    ) -> FakeRunner {
        FakeRunner {
            installed: installed.iter().map(|p| (*p).to_owned()).collect(),
            calls: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(script),
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every argv so far.
    pub fn argvs(&self) -> Vec<String> {
        self.calls().iter().map(Call::argv).collect()
    }
}

#[async_trait]
impl Runner for FakeRunner {
    fn find(&self, program: &str) -> Option<PathBuf> {
        self.installed
            .iter()
            .any(|p| p == program)
            .then(|| PathBuf::from("/fake/bin").join(program))
    }

    async fn run(
        &self,
        program: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        run_id: &str,
    ) -> std::io::Result<Output> {
        let call = Call {
            program: program.to_owned(),
            args: args.to_vec(),
            env: env.clone(),
            run_id: run_id.to_owned(),
        };
        let output = (self.script)(&call.argv());
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_executable_files() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = dir.path().display().to_string();
        assert_eq!(find_in_path("tool", &path), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_in_path("tool", &path), Some(tool));
        assert_eq!(find_in_path("other", &path), None);
    }

    #[tokio::test]
    async fn the_system_runner_passes_env_and_captures_output() {
        let runner = SystemRunner::new();
        let env = BTreeMap::from([("KUBECONFIG".to_owned(), "/run/kubeconfig".to_owned())]);
        let out = runner
            .run(
                "sh",
                &[
                    "-c".to_owned(),
                    "echo $KUBECONFIG; echo err >&2; exit 3".to_owned(),
                ],
                &env,
                "run-1",
            )
            .await
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "/run/kubeconfig\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[tokio::test]
    async fn the_system_runner_marks_its_commands_and_gives_them_a_group() {
        let runner = SystemRunner::new();
        let out = runner
            .run(
                "sh",
                &[
                    "-c".to_owned(),
                    // Own process group: the group id is the shell's pid.
                    "echo $FIREDRILL_RUN_ID; [ \"$(ps -o pgid= -p $$ | tr -d ' ')\" = \"$$\" ] && echo own-group".to_owned(),
                ],
                &BTreeMap::new(),
                "run-7",
            )
            .await
            .unwrap();
        assert_eq!(out.stdout, "run-7\nown-group\n", "{}", out.stderr);
    }
}
