//! The local target: services are processes on this host (SPEC §3.1), faults
//! are signals and file damage (SPEC §4).
//!
//! Safety: `delete` and `corrupt` only touch paths inside the run's `WORKDIR`,
//! the one directory the drill owns; anything else is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use serde_json::json;

use super::{Injected, RunContext, Target, TargetError};
use crate::drill::{Fault, Service};
use crate::event::EventKind;
use crate::process;
use crate::vars::expand;
use crate::workdir;

/// A service that was started: its process group.
#[derive(Debug, Clone)]
struct Running {
    pgid: i32,
}

/// Processes on this host.
pub struct LocalTarget {
    services: BTreeMap<String, Service>,
    running: Mutex<BTreeMap<String, Running>>,
    children: tokio::sync::Mutex<Vec<tokio::process::Child>>,
}

impl LocalTarget {
    /// A target for these services.
    pub fn new(services: BTreeMap<String, Service>) -> LocalTarget {
        LocalTarget {
            services,
            running: Mutex::new(BTreeMap::new()),
            children: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// Sends a signal to the process group of each service (the service and
    /// what it started); returns each service with its group.
    fn signal_services(
        &self,
        services: &[String],
        signal: Signal,
    ) -> Result<Vec<(String, i32)>, TargetError> {
        let mut hit = Vec::new();
        for service in services {
            let pgid = self.pgid_of(service)?;
            if !process::kill_group(pgid, signal) {
                return Err(TargetError::Failed(format!(
                    "service `{service}` (process group {pgid}) is not running"
                )));
            }
            hit.push((service.clone(), pgid));
        }
        Ok(hit)
    }

    fn pgid_of(&self, service: &str) -> Result<i32, TargetError> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get(service)
            .map(|r| r.pgid)
            .ok_or_else(|| TargetError::Failed(format!("service `{service}` was never started")))
    }
}

/// The environment of a service: the run's, then its own `env:` (expanded).
fn service_env(service: &Service, ctx: &RunContext) -> BTreeMap<String, String> {
    let mut env = ctx.env.clone();
    for (name, value) in &service.env {
        let value = expand(value, &env);
        env.insert(name.clone(), value);
    }
    env
}

/// Resolves a path written in the drill (after `${VAR}` expansion) to a
/// path inside `WORKDIR` (see [`crate::workdir`] for how it is then touched).
pub fn owned_path(written: &str, ctx: &RunContext) -> Result<workdir::Owned, TargetError> {
    let expanded = expand(written, &ctx.env);
    let owned = workdir::resolve(Path::new(&expanded), &ctx.scenario_dir, &ctx.workdir)
        .map_err(workdir_error)?;
    owned.check().map_err(workdir_error)?;
    Ok(owned)
}

fn workdir_error(error: workdir::WorkdirError) -> TargetError {
    match error {
        workdir::WorkdirError::Refused(why) => TargetError::Refused(why),
        workdir::WorkdirError::Failed(why) => TargetError::Failed(why),
    }
}

/// A stable per-step seed derived from the run's seed.
pub(crate) fn step_seed(seed: u64, step: &str) -> u64 {
    step.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[async_trait]
impl Target for LocalTarget {
    fn describe(&self) -> String {
        "local".to_owned()
    }

    async fn setup(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
        let logs = ctx.run_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| {
            TargetError::Unavailable(format!("cannot create {}: {e}", logs.display()))
        })?;
        for (name, service) in &self.services {
            let env = service_env(service, ctx);
            let log_path = logs.join(format!("{name}.log"));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| {
                    TargetError::Unavailable(format!("cannot open {}: {e}", log_path.display()))
                })?;
            let cwd = match &service.cwd {
                Some(cwd) => ctx.scenario_dir.join(expand(cwd, &ctx.env)),
                None => ctx.scenario_dir.clone(),
            };
            let mut command = process::shell(&service.run, &env, Some(&cwd));
            let err_log = log
                .try_clone()
                .map_err(|e| TargetError::Unavailable(e.to_string()))?;
            command.stdout(log).stderr(err_log);
            let child = command.spawn().map_err(|e| {
                TargetError::Failed(format!("service `{name}` could not be started: {e}"))
            })?;
            let pid = child.id().unwrap_or(0);
            ctx.emitter.emit(EventKind::ProcessStarted {
                what: format!("service {name}"),
                pid,
            });
            self.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone(), Running { pgid: pid as i32 });
            self.children.lock().await.push(child);
        }
        Ok(BTreeMap::new())
    }

    fn preview(&self, fault: &Fault, ctx: &RunContext) -> String {
        let kind = fault.kind();
        match kind {
            "kill" | "pause" => {
                let services = match (&fault.kill, &fault.pause) {
                    (Some(kill), _) => kill.service.names(),
                    (_, Some(pause)) => pause.service.names(),
                    _ => Vec::new(),
                };
                let signal = fault
                    .kill
                    .as_ref()
                    .and_then(|k| k.signal.as_ref())
                    .map_or("KILL".to_owned(), |s| s.value.clone());
                if kind == "kill" {
                    format!(
                        "SIG{} to the process group of {}",
                        signal.trim_start_matches("SIG"),
                        services.join(", ")
                    )
                } else {
                    format!(
                        "SIGSTOP to the process group of {} (SIGCONT on revert)",
                        services.join(", ")
                    )
                }
            }
            "delete" => {
                let paths = fault.delete.as_ref().and_then(|d| d.path.as_ref());
                let paths: Vec<String> = paths
                    .map(|p| p.names())
                    .unwrap_or_default()
                    .iter()
                    .map(|p| match owned_path(p, ctx) {
                        Ok(owned) => format!("remove {}", owned.path().display()),
                        Err(e) => format!("REFUSED: {e}"),
                    })
                    .collect();
                paths.join("; ")
            }
            "corrupt" => {
                let corrupt = fault.corrupt.as_ref();
                let path = corrupt.map(|c| c.path.clone()).unwrap_or_default();
                match owned_path(&path, ctx) {
                    Ok(p) => format!(
                        "overwrite {} bytes of {} at random offsets",
                        corrupt.and_then(|c| c.bytes).unwrap_or(64),
                        p.path().display()
                    ),
                    Err(e) => format!("REFUSED: {e}"),
                }
            }
            other => format!("{other} is not a local fault"),
        }
    }

    async fn inject(
        &self,
        step: &str,
        fault: &Fault,
        _env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        if let Some(kill) = &fault.kill {
            let signal_name = kill.signal.as_ref().map_or("KILL", |s| s.value.as_str());
            let signal: Signal = crate::signal::parse_signal(signal_name)
                .ok_or_else(|| TargetError::Failed(format!("unknown signal `{signal_name}`")))?;
            let hit = self.signal_services(&kill.service.names(), signal)?;
            return Ok(Injected {
                targets: hit.into_iter().map(|(service, _)| service).collect(),
                detail: format!("signal {signal:?}"),
                undo: None,
            });
        }
        if let Some(pause) = &fault.pause {
            let (hit, pgids): (Vec<String>, Vec<i32>) = self
                .signal_services(&pause.service.names(), Signal::SIGSTOP)?
                .into_iter()
                .unzip();
            let mut detail = "SIGSTOP".to_owned();
            if let Some(duration) = pause.duration {
                detail = format!(
                    "SIGSTOP for {}",
                    crate::duration::format_duration(duration.0)
                );
                let resume = pgids.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(duration.0).await;
                    for pgid in resume {
                        process::kill_group(pgid, Signal::SIGCONT);
                    }
                });
            }
            return Ok(Injected {
                targets: hit,
                detail,
                undo: Some(json!({ "pgids": pgids })),
            });
        }
        if let Some(delete) = &fault.delete {
            let mut hit = Vec::new();
            let written = delete.path.as_ref().map(|p| p.names()).unwrap_or_default();
            // Check every path before deleting any.
            let paths = written
                .iter()
                .map(|p| owned_path(p, ctx))
                .collect::<Result<Vec<_>, _>>()?;
            for owned in paths {
                owned.delete().map_err(workdir_error)?;
                hit.push(owned.path().display().to_string());
            }
            return Ok(Injected {
                targets: hit,
                detail: String::new(),
                undo: None,
            });
        }
        if let Some(corrupt) = &fault.corrupt {
            let owned = owned_path(&corrupt.path, ctx)?;
            let path = owned.path();
            let seed = step_seed(ctx.seed, step);
            let offsets = owned
                .corrupt(corrupt.bytes.unwrap_or(64), seed)
                .map_err(workdir_error)?;
            let count = offsets.len();
            let shown: Vec<String> = offsets.iter().take(8).map(u64::to_string).collect();
            return Ok(Injected {
                targets: vec![path.display().to_string()],
                detail: format!(
                    "{count} bytes overwritten, seed {seed}, offsets {}{}",
                    shown.join(","),
                    if offsets.len() > 8 { ",..." } else { "" }
                ),
                undo: None,
            });
        }
        Err(TargetError::Failed(format!(
            "fault kind `{}` is not supported by the local target",
            fault.kind()
        )))
    }

    async fn revert(
        &self,
        kind: &str,
        undo: &serde_json::Value,
        _ctx: &RunContext,
    ) -> Result<String, TargetError> {
        match kind {
            "pause" => {
                let pgids: Vec<i32> = undo["pgids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_i64())
                            .map(|v| v as i32)
                            .collect()
                    })
                    .unwrap_or_default();
                for pgid in &pgids {
                    process::kill_group(*pgid, Signal::SIGCONT);
                }
                Ok(format!("SIGCONT to process groups {pgids:?}"))
            }
            other => Err(TargetError::Failed(format!("{other} cannot be reverted"))),
        }
    }

    async fn collect_evidence(&self, dir: &Path, ctx: &RunContext) {
        let logs = ctx.run_dir.join("logs");
        for name in self.services.keys() {
            let from = logs.join(format!("{name}.log"));
            if from.exists() {
                let _ = std::fs::create_dir_all(dir);
                let _ = std::fs::copy(&from, dir.join(format!("service-{name}.log")));
            }
        }
        let mut listing = String::new();
        for (name, running) in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let alive =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(running.pgid), None).is_ok();
            listing.push_str(&format!(
                "{name}: process group {} {}\n",
                running.pgid,
                if alive { "alive" } else { "gone" }
            ));
        }
        if !listing.is_empty() {
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(dir.join("services.txt"), listing);
        }
    }

    async fn teardown(&self, _ctx: &RunContext, _keep: bool) {
        let pgids: Vec<i32> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|r| r.pgid)
            .collect();
        for pgid in &pgids {
            process::kill_group(*pgid, Signal::SIGTERM);
            process::kill_group(*pgid, Signal::SIGCONT);
        }
        let mut children = self.children.lock().await;
        // One grace period for all: services that ignore SIGTERM are not
        // waited for one after another.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for child in children.iter_mut() {
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                if let Some(pid) = child.id() {
                    process::kill_group(pid as i32, Signal::SIGKILL);
                }
                let _ = child.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Emitter;

    fn ctx(workdir: &Path) -> RunContext {
        RunContext {
            run_id: "t".into(),
            run_dir: workdir.join("run"),
            workdir: workdir.to_path_buf(),
            scenario_dir: workdir.to_path_buf(),
            env: [("WORKDIR".to_owned(), workdir.display().to_string())].into(),
            seed: 1,
            emitter: Emitter::new(Vec::new()),
        }
    }

    #[test]
    fn paths_outside_workdir_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        assert!(owned_path("${WORKDIR}/data", &ctx).is_ok());
        for bad in ["/etc/passwd", "${WORKDIR}/../x", "${WORKDIR}", "/"] {
            assert!(
                matches!(owned_path(bad, &ctx), Err(TargetError::Refused(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn symlinks_out_of_workdir_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let ctx = ctx(dir.path());
        assert!(matches!(
            owned_path("${WORKDIR}/link/file", &ctx),
            Err(TargetError::Refused(_))
        ));
    }
}
