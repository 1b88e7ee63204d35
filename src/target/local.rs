//! The local target: services are processes on this host (SPEC §3.1), faults
//! are signals and file damage (SPEC §4).
//!
//! Safety: `delete` and `corrupt` only touch paths inside the run's `WORKDIR`,
//! the one directory the drill owns; anything else is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{Injected, RunContext, Target, TargetError};
use crate::drill::{Fault, Service};
use crate::event::EventKind;
use crate::process;
use crate::vars::expand;

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

/// Resolves a path written in the drill (after `${VAR}` expansion) and checks
/// that it lies inside `WORKDIR`.
pub fn owned_path(written: &str, ctx: &RunContext) -> Result<PathBuf, TargetError> {
    let expanded = expand(written, &ctx.env);
    let path = Path::new(&expanded);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        ctx.scenario_dir.join(path)
    };
    let normal = normalize(&path);
    let workdir = normalize(&ctx.workdir);
    // Resolve symlinks of the parent so a link cannot lead outside WORKDIR.
    let real_parent = normal
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| normal.clone());
    let real_workdir = workdir.canonicalize().unwrap_or(workdir.clone());
    if normal == workdir || !normal.starts_with(&workdir) || !real_parent.starts_with(&real_workdir)
    {
        return Err(TargetError::Refused(format!(
            "refusing to touch {}: the local target only deletes or corrupts paths inside WORKDIR ({}), the directory the drill owns",
            normal.display(),
            workdir.display()
        )));
    }
    Ok(normal)
}

/// Removes `.` and `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Overwrites `count` bytes at random offsets chosen by `seed`. Returns the offsets.
pub fn corrupt_file(path: &Path, count: u64, seed: u64) -> std::io::Result<Vec<u64>> {
    let mut bytes = std::fs::read(path)?;
    if bytes.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty: nothing to corrupt",
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut offsets = Vec::new();
    for _ in 0..count {
        let offset = rng.random_range(0..bytes.len());
        let old = bytes[offset];
        // Always change the byte: flip at least one bit.
        bytes[offset] = old ^ rng.random_range(1..=255u8);
        offsets.push(offset as u64);
    }
    std::fs::write(path, &bytes)?;
    offsets.sort();
    Ok(offsets)
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

    fn service_alive(&self, service: &str) -> Option<bool> {
        let pid = self.pgid_of(service).ok()?;
        // A process that exited but was not reaped yet is a zombie: dead.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        Some(matches!(state, Some(state) if state != "Z" && state != "X"))
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
                        Ok(path) => format!("remove {}", path.display()),
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
                        p.display()
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
            for path in paths {
                let result = match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
                    Ok(_) => std::fs::remove_file(&path),
                    Err(e) => Err(e),
                };
                result.map_err(|e| {
                    TargetError::Failed(format!("cannot delete {}: {e}", path.display()))
                })?;
                hit.push(path.display().to_string());
            }
            return Ok(Injected {
                targets: hit,
                detail: String::new(),
                undo: None,
            });
        }
        if let Some(corrupt) = &fault.corrupt {
            let path = owned_path(&corrupt.path, ctx)?;
            let seed = step_seed(ctx.seed, step);
            let count = corrupt.bytes.unwrap_or(64);
            let offsets = corrupt_file(&path, count, seed).map_err(|e| {
                TargetError::Failed(format!("cannot corrupt {}: {e}", path.display()))
            })?;
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
        for child in children.iter_mut() {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
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

    #[test]
    fn corruption_is_seeded_and_changes_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, vec![0u8; 4096]).unwrap();
        std::fs::write(&b, vec![0u8; 4096]).unwrap();
        let offsets_a = corrupt_file(&a, 16, 7).unwrap();
        let offsets_b = corrupt_file(&b, 16, 7).unwrap();
        assert_eq!(offsets_a, offsets_b);
        let bytes = std::fs::read(&a).unwrap();
        assert!(bytes.iter().any(|b| *b != 0));
        assert_eq!(bytes, std::fs::read(&b).unwrap());
    }
}
