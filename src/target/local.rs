//! The local target: services are processes on this host, faults are signals
//! and file damage (docs/drill-format.md, `services` and "Local target
//! faults").
//!
//! Safety: `delete` and `corrupt` only touch paths inside the run's `WORKDIR`,
//! the one directory the drill owns; anything else is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{FaultCheck, Found, Injected, RunContext, Target, TargetError, Undo};
use schemars::JsonSchema;

use super::{FaultSpec, RawFault};
use crate::duration::Dur;
use crate::event::{EventKind, Owner, ServiceOutcome};
use crate::located::{Located, OneOrMany, Problem};
use crate::process;
use crate::vars::expand;
use crate::workdir;

/// `kill: {service, signal}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillFault {
    /// Service name or names.
    pub service: OneOrMany,
    /// Signal name (default KILL): `TERM`, `SIGINT`, ...
    pub signal: Option<Located<String>>,
}

/// `pause: {service, duration}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseFault {
    /// Service name or names.
    pub service: OneOrMany,
    /// Resume after this long; without it, resumed at revert.
    pub duration: Option<Dur>,
}

/// `corrupt: {path, bytes}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorruptFault {
    /// The file.
    pub path: String,
    /// How many bytes to overwrite (default 64).
    pub bytes: Option<u64>,
}

/// A fault of the local target.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalFault {
    /// `kill`: send a signal to the process group of services.
    Kill {
        /// Service names.
        services: Vec<String>,
        /// The signal (default SIGKILL).
        signal: Signal,
    },
    /// `pause`: SIGSTOP services; SIGCONT after `duration`, or at revert.
    Pause {
        /// Service names.
        services: Vec<String>,
        /// Resume after this long.
        duration: Option<Duration>,
    },
    /// `delete`: remove files or directories inside `WORKDIR`.
    Delete {
        /// Paths as written (`${VAR}` expanded at injection).
        paths: Vec<String>,
    },
    /// `corrupt`: overwrite bytes of a file inside `WORKDIR` at random offsets.
    Corrupt {
        /// The file as written.
        path: String,
        /// How many bytes.
        bytes: u64,
    },
}

/// How to undo a [`LocalFault`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalUndo {
    /// SIGCONT to these process groups (a `pause`).
    Resume {
        /// The paused process groups.
        pgids: Vec<i32>,
    },
}

/// The `fault:` keys of [`LocalFault`], in the order they are listed.
pub const FAULT_KINDS: &[&str] = &["kill", "pause", "delete", "corrupt"];

impl LocalFault {
    /// The key as written.
    pub fn kind(&self) -> &'static str {
        match self {
            LocalFault::Kill { .. } => "kill",
            LocalFault::Pause { .. } => "pause",
            LocalFault::Delete { .. } => "delete",
            LocalFault::Corrupt { .. } => "corrupt",
        }
    }

    /// What it hits, for `plan`.
    pub fn describe(&self) -> String {
        match self {
            LocalFault::Kill { services, signal } => {
                format!("{} ({})", services.join(", "), signal_name(*signal))
            }
            LocalFault::Pause { services, .. } => services.join(", "),
            LocalFault::Delete { paths } => paths.join(", "),
            LocalFault::Corrupt { path, bytes } => format!("{path} ({bytes} bytes)"),
        }
    }

    /// What it would do, with paths resolved (`--dry-run`).
    pub fn preview(&self, ctx: &RunContext) -> String {
        match self {
            LocalFault::Kill { services, signal } => format!(
                "SIG{} to the process group of {}",
                signal_name(*signal),
                services.join(", ")
            ),
            LocalFault::Pause { services, .. } => format!(
                "SIGSTOP to the process group of {} (SIGCONT on revert)",
                services.join(", ")
            ),
            LocalFault::Delete { paths } => paths
                .iter()
                .map(|p| preview_path(p, ctx, |path| format!("remove {path}")))
                .collect::<Vec<_>>()
                .join("; "),
            LocalFault::Corrupt { path, bytes } => preview_path(path, ctx, |path| {
                format!("overwrite {bytes} bytes of {path} at random offsets")
            }),
        }
    }

    /// Validates the `kind` key of `raw` as a local fault: `None` if it is
    /// not one; `Some(None)` if it is one with problems.
    fn parse(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<Option<LocalFault>> {
        let step = check.step;
        Some(match kind {
            "kill" => raw.kill.as_ref().and_then(|kill| {
                let services = check_services(kind, &kill.service, check);
                let signal = match &kill.signal {
                    None => Some(Signal::SIGKILL),
                    Some(signal) => {
                        let parsed = crate::signal::parse_signal(signal);
                        if parsed.is_none() {
                            check.push(
                                Problem::at(signal.loc, format!("unknown signal `{}`", signal.value))
                                    .help("use a signal name such as KILL, TERM, INT, HUP, STOP, or SIGKILL"),
                            );
                        }
                        parsed
                    }
                };
                Some(LocalFault::Kill {
                    services: services?,
                    signal: signal?,
                })
            }),
            "pause" => raw.pause.as_ref().and_then(|pause| {
                Some(LocalFault::Pause {
                    services: check_services(kind, &pause.service, check)?,
                    duration: pause.duration.map(|d| d.0),
                })
            }),
            "delete" => raw.delete.as_ref().and_then(|delete| {
                let before = check.problems.len();
                let paths = delete.path.as_ref().map(|p| p.names()).unwrap_or_default();
                if paths.is_empty() {
                    check.push(
                        Problem::at(check.loc, format!("step `{step}`: `delete` needs `path`"))
                            .help("e.g. `delete: {path: \"$WORKDIR/data\"}`"),
                    );
                }
                if delete.kind.is_some()
                    || delete.name.is_some()
                    || delete.selector.is_some()
                    || delete.namespace.is_some()
                {
                    check.problem(format!("step `{step}`: `kind`, `namespace`, `name` and `selector` delete Kubernetes objects, on a kind target only"));
                }
                for path in &paths {
                    outside_as_written(step, "delete", path, check);
                }
                (check.problems.len() == before).then_some(LocalFault::Delete { paths })
            }),
            "corrupt" => raw.corrupt.as_ref().and_then(|corrupt| {
                if corrupt.bytes == Some(0) {
                    check.problem(format!("step `{step}`: `corrupt` with 0 bytes does nothing"));
                    return None;
                }
                if let Some(bytes) = corrupt.bytes.filter(|b| *b > workdir::MAX_CORRUPT_BYTES) {
                    check.problem(format!(
                        "step `{step}`: `corrupt` may overwrite at most {} bytes, not {bytes}; a few bytes at random offsets damage a file, `delete` loses it",
                        workdir::MAX_CORRUPT_BYTES
                    ));
                    return None;
                }
                if outside_as_written(step, "corrupt", &corrupt.path, check) {
                    return None;
                }
                Some(LocalFault::Corrupt {
                    path: corrupt.path.clone(),
                    bytes: corrupt.bytes.unwrap_or(64),
                })
            }),
            _ => return None,
        })
    }
}

/// Refuses at validation a `delete` or `corrupt` path that is outside
/// WORKDIR whatever the run: the run checks again once variables are
/// expanded. Whether it did.
fn outside_as_written(step: &str, kind: &str, path: &str, check: &mut FaultCheck) -> bool {
    let Some(why) = workdir::outside_as_written(path) else {
        return false;
    };
    check.push(
        Problem::at(
            check.loc,
            format!("step `{step}`: `{kind}` path `{path}` is outside WORKDIR: {why}"),
        )
        .help(format!(
            "`{kind}` only touches files inside the run's WORKDIR: write the path as `${{WORKDIR}}/...` and create the file there in an earlier step"
        )),
    );
    true
}

/// Validates the one fault kind `kind` of `raw` for the local target.
pub fn parse_fault(kind: &str, raw: &RawFault, check: &mut FaultCheck) -> Option<FaultSpec> {
    match LocalFault::parse(kind, raw, check) {
        Some(fault) => fault.map(FaultSpec::Local),
        None => {
            check.unsupported(
                kind,
                "local",
                "it is a kind target fault (`target: {kind: {cluster: ...}}`)",
                FAULT_KINDS,
            );
            None
        }
    }
}

/// A signal's name without `SIG`: `KILL`, `TERM`.
fn signal_name(signal: Signal) -> &'static str {
    let name = signal.as_str();
    name.strip_prefix("SIG").unwrap_or(name)
}

/// The services a `kill` or `pause` names, if each is defined.
fn check_services(kind: &str, names: &OneOrMany, check: &mut FaultCheck) -> Option<Vec<String>> {
    let before = check.problems.len();
    if names.0.is_empty() {
        let step = check.step;
        check.problem(format!("step `{step}`: `{kind}` names no service"));
    }
    for name in &names.0 {
        if !check.known_services.contains(&name.value) {
            let help = (check.name_help)(&name.value, check.known_services, "service", "services");
            check.push(
                Problem::at(
                    name.loc,
                    format!("unknown service `{}` in the `{kind}` fault", name.value),
                )
                .help(help),
            );
        }
    }
    (check.problems.len() == before).then(|| names.names())
}

/// A service as the local target runs it: a drill's `services:` entry
/// without its readiness, which the engine awaits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The shell command that runs it in the foreground.
    pub run: String,
    /// Extra environment (`${VAR}` expanded).
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the drill file.
    pub cwd: Option<String>,
}

/// A service that was started: its process group, and how its own process
/// exited once it has (a task waits for it: exits are watched, not polled).
#[derive(Debug, Clone)]
struct Running {
    pgid: i32,
    exited: watch::Receiver<Option<String>>,
}

/// Processes on this host.
pub struct LocalTarget {
    services: BTreeMap<String, ServiceSpec>,
    /// The services started, in the order they started.
    running: Mutex<Vec<(String, Running)>>,
    /// The tasks that wait for the services' processes, ended at teardown.
    waiters: Mutex<tokio::task::JoinSet<()>>,
    /// Timers of `pause` faults with a `duration`, ended at teardown.
    timers: Mutex<tokio::task::JoinSet<()>>,
    /// The services' logs, written through their caps for the whole run.
    logs: Mutex<Vec<crate::bounded::CappedLog>>,
}

impl LocalTarget {
    /// A target for these services.
    pub fn new(services: BTreeMap<String, ServiceSpec>) -> LocalTarget {
        LocalTarget {
            services,
            running: Mutex::new(Vec::new()),
            waiters: Mutex::new(tokio::task::JoinSet::new()),
            timers: Mutex::new(tokio::task::JoinSet::new()),
            logs: Mutex::new(Vec::new()),
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

    /// Starts a service in a process group of its own, its output appended
    /// to `logs/<service>.log`, its exit watched; returns its pid.
    async fn start_service(&self, name: &str, ctx: &RunContext) -> Result<u32, TargetError> {
        let Some(service) = self.services.get(name) else {
            return Err(TargetError::Failed(format!("no service `{name}`")));
        };
        let logs = ctx.run_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| {
            TargetError::Unavailable(format!("cannot create {}: {e}", logs.display()))
        })?;
        let env = service_env(service, ctx);
        let log_path = logs.join(format!("{name}.log"));
        // Capped while it runs: a service that prints for the whole run
        // leaves a bounded log.
        let unavailable = |e: std::io::Error| {
            TargetError::Unavailable(format!("cannot open {}: {e}", log_path.display()))
        };
        let mut log = crate::bounded::CappedLog::open(&log_path, crate::bounded::log_limit())
            .map_err(unavailable)?;
        let cwd = match &service.cwd {
            Some(cwd) => ctx.scenario_dir.join(expand(cwd, &ctx.env)),
            None => ctx.scenario_dir.clone(),
        };
        let mut command = process::Cmd::shell(&ctx.run_id, &service.run)
            .envs(&env)
            .cwd(&cwd)
            .command();
        command
            .stdout(log.stdio().map_err(unavailable)?)
            .stderr(log.stdio().map_err(unavailable)?);
        // A service outlives a runner that dies: `resume` adopts it.
        log.outlive_runner(&mut command);
        let spawned = command.spawn();
        // Only the service holds the pipe now.
        drop(command);
        log.close();
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(log);
        let mut child = spawned.map_err(|e| {
            TargetError::Failed(format!("service `{name}` could not be started: {e}"))
        })?;
        let pid = child.id().unwrap_or(0);
        ctx.emitter.emit(EventKind::ProcessStarted {
            what: format!("service {name}"),
            pid,
            owner: Some(Owner::Service {
                name: name.to_owned(),
            }),
        });
        let (exit_tx, exited) = watch::channel(None);
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(async move {
                let status = child.wait().await;
                let _ = exit_tx.send(Some(exit_text(status)));
            });
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((
                name.to_owned(),
                Running {
                    pgid: pid as i32,
                    exited,
                },
            ));
        Ok(pid)
    }

    /// Takes over a service a dead runner started: not this runner's child,
    /// so its exit is watched in /proc.
    fn adopt(&self, name: &str, pgid: i32, since: Option<u64>) {
        let (exit_tx, exited) = watch::channel(None);
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(async move {
                while leader_alive(pgid, since) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = exit_tx.send(Some("exited (adopted: its status is not known)".to_owned()));
            });
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_owned(), Running { pgid, exited }));
    }

    fn pgid_of(&self, service: &str) -> Result<i32, TargetError> {
        self.running_of(service)
            .map(|r| r.pgid)
            .ok_or_else(|| TargetError::Failed(format!("service `{service}` was never started")))
    }

    fn running_of(&self, service: &str) -> Option<Running> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .find(|(name, _)| name == service)
            .map(|(_, r)| r.clone())
    }
}

/// Whether `pid` lives as the leader of its process group and started after
/// `since` (ticks after boot): the same process the run started, not
/// another that reuses its pid.
fn leader_alive(pid: i32, since: Option<u64>) -> bool {
    crate::leftovers::ProcStat::read(pid)
        .is_some_and(|stat| stat.pgrp == pid && since.is_some_and(|since| stat.start >= since))
}

/// How a process ended: `exit 1`, `killed by SIGKILL`.
fn exit_text(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => Signal::try_from(signal)
                .map_or(format!("killed by signal {signal}"), |s| {
                    format!("killed by {}", s.as_str())
                }),
            (None, None) => "ended".to_owned(),
        },
        Err(error) => format!("cannot be waited for: {error}"),
    }
}

/// Waits until `exited` says the process has, or `until`; whether it has.
async fn exited_by(exited: &watch::Receiver<Option<String>>, until: tokio::time::Instant) -> bool {
    let mut exited = exited.clone();
    tokio::time::timeout_at(until, exited.wait_for(Option::is_some))
        .await
        .is_ok_and(|seen| seen.is_ok())
}

/// The environment of a service: the run's, then its own `env:` (expanded).
fn service_env(service: &ServiceSpec, ctx: &RunContext) -> BTreeMap<String, String> {
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

/// What a WORKDIR fault would do, for `plan` and `--dry-run`. Before a real
/// run WORKDIR does not exist yet, so only the lexical rule can be judged (the
/// path must be inside WORKDIR); once it exists, links on the way are judged
/// too. Only what the run would refuse is marked refused.
fn preview_path(written: &str, ctx: &RunContext, action: impl Fn(&str) -> String) -> String {
    let checked = if ctx.workdir.exists() {
        owned_path(written, ctx)
    } else {
        let expanded = expand(written, &ctx.env);
        workdir::resolve(Path::new(&expanded), &ctx.scenario_dir, &ctx.workdir)
            .map_err(workdir_error)
    };
    match checked {
        Ok(owned) => action(&owned.path().display().to_string()),
        Err(TargetError::Refused(why)) => format!("{}{why}", super::REFUSED),
        Err(e) => format!("{} (cannot check it now: {e})", action(written)),
    }
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

    async fn service_exited(&self, service: &str) -> String {
        let Some(running) = self.running_of(service) else {
            return std::future::pending().await;
        };
        let mut exited = running.exited;
        let how = exited
            .wait_for(Option::is_some)
            .await
            .map(|how| how.clone().unwrap_or_default());
        match how {
            Ok(how) => how,
            // The waiter was ended (teardown): nothing more will be seen.
            Err(_) => std::future::pending().await,
        }
    }

    async fn setup(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
        for name in self.services.keys() {
            self.start_service(name, ctx).await?;
        }
        Ok(BTreeMap::new())
    }

    async fn resume(
        &self,
        ctx: &RunContext,
        found: &Found,
    ) -> Result<BTreeMap<String, String>, TargetError> {
        for name in self.services.keys() {
            let recorded = found.services.get(name).copied();
            let alive = recorded.filter(|pid| leader_alive(*pid as i32, found.since));
            let (outcome, pid, detail) = match (alive, recorded, found.hit.get(name)) {
                (Some(pid), _, _) => {
                    self.adopt(name, pid as i32, found.since);
                    // What it printed while no runner read goes on into its
                    // log, capped.
                    let log_path = ctx.run_dir.join("logs").join(format!("{name}.log"));
                    match crate::bounded::CappedLog::attach(
                        &log_path,
                        crate::bounded::log_limit(),
                        pid,
                    ) {
                        Ok(Some(log)) => self
                            .logs
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(log),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%error, service = %name, "cannot read the adopted service's output again")
                        }
                    }
                    (
                        ServiceOutcome::Adopted,
                        Some(pid),
                        "still running: adopted as it is".to_owned(),
                    )
                }
                (None, Some(pid), Some(why)) => {
                    // Down as the fault left it: the runbook brings it back.
                    let (_, exited) =
                        watch::channel(Some("down when the run was resumed".to_owned()));
                    self.running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((
                            name.clone(),
                            Running {
                                pgid: pid as i32,
                                exited,
                            },
                        ));
                    (
                        ServiceOutcome::LeftDown,
                        None,
                        format!("down, and {why}: left down, as the fault left it"),
                    )
                }
                (None, recorded, _) => {
                    let pid = self.start_service(name, ctx).await?;
                    let detail = if recorded.is_some() {
                        "down, and no fault can have hit it: started again"
                    } else {
                        "never started: started"
                    };
                    (ServiceOutcome::Restarted, Some(pid), detail.to_owned())
                }
            };
            ctx.emitter.emit(EventKind::ServiceResumed {
                service: name.clone(),
                outcome,
                pid,
                detail,
            });
        }
        Ok(BTreeMap::new())
    }

    fn undo_interrupted(&self, fault: &FaultSpec) -> Option<Undo> {
        let FaultSpec::Local(LocalFault::Pause { services, .. }) = fault else {
            return None;
        };
        let pgids: Vec<i32> = services
            .iter()
            .filter_map(|service| self.pgid_of(service).ok())
            .collect();
        Some(Undo::Local(LocalUndo::Resume { pgids }))
    }

    fn preview(&self, fault: &FaultSpec, ctx: &RunContext) -> String {
        match fault {
            FaultSpec::Local(fault) => fault.preview(ctx),
            FaultSpec::Kube(_) | FaultSpec::Kind(_) | FaultSpec::Kwok(_) | FaultSpec::Shell(_) => {
                format!("{} is not a local fault", fault.kind())
            }
        }
    }

    async fn inject(
        &self,
        step: &str,
        fault: &FaultSpec,
        _env: &BTreeMap<String, String>,
        ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        let fault = match fault {
            FaultSpec::Local(fault) => fault,
            FaultSpec::Kube(_) | FaultSpec::Kind(_) | FaultSpec::Kwok(_) | FaultSpec::Shell(_) => {
                return Err(TargetError::Failed(format!(
                    "fault kind `{}` is not supported by the local target",
                    fault.kind()
                )));
            }
        };
        match fault {
            LocalFault::Kill { services, signal } => {
                let hit = self.signal_services(services, *signal)?;
                Ok(Injected {
                    targets: hit.into_iter().map(|(service, _)| service).collect(),
                    detail: format!("signal {signal:?}"),
                    undo: None,
                })
            }
            LocalFault::Pause { services, duration } => {
                let (hit, pgids): (Vec<String>, Vec<i32>) = self
                    .signal_services(services, Signal::SIGSTOP)?
                    .into_iter()
                    .unzip();
                // The fault is in when the processes are stopped, not when
                // the signal is sent.
                if !process::wait_until_stopped(&pgids, Duration::from_secs(2)).await {
                    tracing::warn!(?pgids, "not every process stopped within 2 s of SIGSTOP");
                }
                let mut detail = "SIGSTOP".to_owned();
                if let Some(duration) = *duration {
                    detail = format!("SIGSTOP for {}", crate::duration::format_duration(duration));
                    let resume = pgids.clone();
                    let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
                    timers.spawn(async move {
                        tokio::time::sleep(duration).await;
                        for pgid in resume {
                            process::kill_group(pgid, Signal::SIGCONT);
                        }
                    });
                }
                Ok(Injected {
                    targets: hit,
                    detail,
                    undo: Some(Undo::Local(LocalUndo::Resume { pgids })),
                })
            }
            LocalFault::Delete { paths } => {
                let mut hit = Vec::new();
                // Check every path before deleting any.
                let paths = paths
                    .iter()
                    .map(|p| owned_path(p, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                for owned in paths {
                    owned.delete().map_err(workdir_error)?;
                    hit.push(owned.path().display().to_string());
                }
                Ok(Injected {
                    targets: hit,
                    detail: String::new(),
                    undo: None,
                })
            }
            LocalFault::Corrupt { path, bytes } => {
                let owned = owned_path(path, ctx)?;
                let path = owned.path();
                let seed = step_seed(ctx.seed, step);
                let offsets = owned.corrupt(*bytes, seed).map_err(workdir_error)?;
                let count = offsets.len();
                let shown: Vec<String> = offsets.iter().take(8).map(u64::to_string).collect();
                Ok(Injected {
                    targets: vec![path.display().to_string()],
                    detail: format!(
                        "{count} bytes overwritten, seed {seed}, offsets {}{}",
                        shown.join(","),
                        if offsets.len() > 8 { ",..." } else { "" }
                    ),
                    undo: None,
                })
            }
        }
    }

    async fn revert(&self, undo: &Undo, _ctx: &RunContext) -> Result<String, TargetError> {
        match undo {
            Undo::Local(LocalUndo::Resume { pgids }) => {
                for pgid in pgids {
                    process::kill_group(*pgid, Signal::SIGCONT);
                }
                Ok(format!("SIGCONT to process groups {pgids:?}"))
            }
            Undo::Kube(_) | Undo::Kind(_) | Undo::Kwok(_) => Err(TargetError::Failed(
                "the local target cannot undo a Kubernetes fault".to_owned(),
            )),
        }
    }

    async fn collect_evidence(&self, dir: &Path, ctx: &RunContext) {
        let logs = ctx.run_dir.join("logs");
        for name in self.services.keys() {
            let from = logs.join(format!("{name}.log"));
            if from.exists() {
                let _ = std::fs::create_dir_all(dir);
                let copy = dir.join(format!("service-{name}.log"));
                let _ = std::fs::copy(&from, &copy);
                let _ = crate::bounded::cap_log(&copy, crate::bounded::log_limit());
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
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
        let running: Vec<Running> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, r)| r.clone())
            .collect();
        // One grace period for all: services that ignore SIGTERM are not
        // waited for one after another.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        // One at a time, the last started first, each given a moment: peers
        // that hand their work over when they stop (an etcd leader) do so to
        // a peer that is still there, instead of each waiting out its
        // timeout on a peer that is stopping too.
        for service in running.iter().rev() {
            if service.exited.borrow().is_some() {
                continue;
            }
            process::kill_group(service.pgid, Signal::SIGTERM);
            process::kill_group(service.pgid, Signal::SIGCONT);
            let moment = deadline.min(tokio::time::Instant::now() + Duration::from_millis(500));
            exited_by(&service.exited, moment).await;
        }
        // What the services started is in their groups, alive or not.
        for service in &running {
            process::kill_group(service.pgid, Signal::SIGTERM);
            process::kill_group(service.pgid, Signal::SIGCONT);
        }
        for service in &running {
            if !exited_by(&service.exited, deadline).await {
                process::kill_group(service.pgid, Signal::SIGKILL);
                // SIGKILL cannot be ignored; a process in the kernel's
                // uninterruptible sleep is left to the sweep.
                let soon = tokio::time::Instant::now() + Duration::from_secs(1);
                exited_by(&service.exited, soon).await;
            }
        }
        self.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
        // Services are gone: their logs get what was left in the pipes.
        let logs = std::mem::take(&mut *self.logs.lock().unwrap_or_else(|e| e.into_inner()));
        // Something a service left outside its group may hold a pipe open:
        // its log is final by then or goes on being written, capped.
        let until = deadline.max(tokio::time::Instant::now() + Duration::from_secs(1));
        for log in logs {
            let _ = tokio::time::timeout_at(until, log.finish()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Emitter;
    use crate::target::DeleteFault;

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

    fn parse(raw: &RawFault) -> Result<FaultSpec, Vec<String>> {
        crate::target::check_fault(parse_fault, raw)
    }

    fn services(names: &[&str]) -> OneOrMany {
        OneOrMany(
            names
                .iter()
                .map(|n| Located::new((*n).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn kill_and_pause_name_defined_services_and_known_signals() {
        let kill = |service: &[&str], signal: Option<&str>| RawFault {
            kill: Some(KillFault {
                service: services(service),
                signal: signal.map(|s| Located::new(s.to_owned())),
            }),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&kill(&["web", "db"], Some("TERM"))),
            Ok(FaultSpec::Local(LocalFault::Kill {
                services: vec!["web".into(), "db".into()],
                signal: Signal::SIGTERM,
            }))
        );
        assert_eq!(
            parse(&kill(&["web"], None)),
            Ok(FaultSpec::Local(LocalFault::Kill {
                services: vec!["web".into()],
                signal: Signal::SIGKILL,
            }))
        );
        assert_eq!(
            parse(&kill(&["wbe"], Some("KILLL"))),
            Err(vec![
                "unknown service `wbe` in the `kill` fault | no service `wbe` among [\"web\", \"db\"]".to_owned(),
                "unknown signal `KILLL` | use a signal name such as KILL, TERM, INT, HUP, STOP, or SIGKILL".to_owned(),
            ])
        );
        assert_eq!(
            parse(&kill(&[], None)),
            Err(vec!["step `hit`: `kill` names no service".to_owned()])
        );
        let pause = RawFault {
            pause: Some(PauseFault {
                service: services(&["db"]),
                duration: Some(Dur(Duration::from_secs(5))),
            }),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&pause),
            Ok(FaultSpec::Local(LocalFault::Pause {
                services: vec!["db".into()],
                duration: Some(Duration::from_secs(5)),
            }))
        );
    }

    #[test]
    fn delete_takes_paths_and_corrupt_takes_bytes() {
        let delete = |path: Option<&[&str]>, name: Option<&str>| RawFault {
            delete: Some(DeleteFault {
                path: path.map(services),
                kind: None,
                namespace: None,
                name: name.map(str::to_owned),
                selector: None,
            }),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&delete(Some(&["$WORKDIR/a"]), None)),
            Ok(FaultSpec::Local(LocalFault::Delete {
                paths: vec!["$WORKDIR/a".into()]
            }))
        );
        assert_eq!(
            parse(&delete(None, Some("shop"))),
            Err(vec![
                "step `hit`: `delete` needs `path` | e.g. `delete: {path: \"$WORKDIR/data\"}`".to_owned(),
                "step `hit`: `kind`, `namespace`, `name` and `selector` delete Kubernetes objects, on a kind target only".to_owned(),
            ])
        );
        let corrupt = |bytes| RawFault {
            corrupt: Some(CorruptFault {
                path: "$WORKDIR/f".into(),
                bytes,
            }),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&corrupt(None)),
            Ok(FaultSpec::Local(LocalFault::Corrupt {
                path: "$WORKDIR/f".into(),
                bytes: 64
            }))
        );
        assert_eq!(
            parse(&corrupt(Some(0))),
            Err(vec![
                "step `hit`: `corrupt` with 0 bytes does nothing".to_owned()
            ])
        );
    }

    #[test]
    fn kind_faults_are_not_supported_and_the_local_ones_are_listed() {
        let stop = RawFault {
            stop_node: Some(Default::default()),
            ..RawFault::default()
        };
        assert_eq!(
            parse(&stop),
            Err(vec!["fault `stop_node` is not supported by the local target | it is a kind target fault (`target: {kind: {cluster: ...}}`); local target faults: kill, pause, delete, corrupt, run".to_owned()])
        );
    }

    #[test]
    fn a_pause_is_undone_from_the_record_events_jsonl_keeps() {
        let undo = Undo::Local(LocalUndo::Resume {
            pgids: vec![12, 34],
        });
        let recorded = serde_json::to_value(&undo).unwrap();
        assert_eq!(
            recorded,
            serde_json::json!({"local": {"resume": {"pgids": [12, 34]}}})
        );
        assert_eq!(serde_json::from_value::<Undo>(recorded).unwrap(), undo);
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
