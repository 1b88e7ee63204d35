//! What watches a run besides its steps: services' readiness, the halt file,
//! the data heartbeat, the steady-state and guard monitors, the checks
//! before the first fault and after the last step, and data loss.

use super::shared::{Shared, changed};
use crate::drill::Probe;
use crate::engine::probe;
use crate::event::{EventKind, ProbeRole};
use crate::process;
use crate::target::ProbeOutcome;
use crate::text::first_line;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Starts nothing (services are started by the target); waits for every
/// service's `ready` probe, in parallel.
pub(crate) async fn await_services(
    shared: &Arc<Shared>,
    interrupt: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut waits = JoinSet::new();
    for (name, service) in &shared.drill.services {
        let Some(ready) = &service.ready else {
            shared.ctx.emitter.emit(EventKind::ServiceReady {
                service: name.clone(),
            });
            continue;
        };
        let probe = match ready {
            crate::drill::ProbeRef::Name(probe_name) => match shared.probe(probe_name) {
                Some(probe) => probe.clone(),
                None => {
                    return Err(format!(
                        "service `{name}`: unknown probe `{}`",
                        probe_name.value
                    ));
                }
            },
            crate::drill::ProbeRef::Inline(probe) => (**probe).clone(),
        };
        let timeout = service
            .ready_timeout
            .map_or(Duration::from_secs(60), |d| d.0);
        let shared = shared.clone();
        let name = name.clone();
        let mut interrupt = interrupt.clone();
        waits.spawn(async move {
            let waited = tokio::select! {
                result = await_probe(&shared, &probe, timeout) => result,
                _ = changed(&mut interrupt) => Err("interrupted".to_owned()),
            };
            let log = shared.ctx.run_dir.join("logs").join(format!("{name}.log"));
            match waited {
                // The probe may have reached somebody else's server on the
                // service's port: ready only while its own process lives.
                Ok(()) if shared.target.service_alive(&name) == Some(false) => Err(format!(
                    "service `{name}` answered its ready probe, but its own process has exited: \
                     another process answers in its place, and a drill must not test somebody \
                     else's server (its output is in {})",
                    log.display()
                )),
                Ok(()) => {
                    shared.ctx.emitter.emit(EventKind::ServiceReady {
                        service: name.clone(),
                    });
                    Ok(())
                }
                Err(why) => Err(format!(
                    "service `{name}` did not become ready within {}: {why} (its output is in {})",
                    crate::duration::format_duration(timeout),
                    log.display()
                )),
            }
        });
    }
    let mut first_error = None;
    while let Some(result) = waits.join_next().await {
        if let Ok(Err(why)) = result {
            first_error.get_or_insert(why);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// SPEC §3.1: before services start, the port each one's `tcp`/`http`
/// ready probe checks must be free. The error names the port and its holder.
pub(crate) fn ports_free(
    drill: &crate::drill::Drill,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    for name in drill.services.keys() {
        if let Some(why) = ready_port_taken(drill, name, env) {
            return Err(format!(
                "service `{name}` cannot start: {why}; its ready probe would test that server, not this drill's (stop it, or move the service with --var)"
            ));
        }
    }
    Ok(())
}

/// Whether the port a service's `tcp`/`http` ready probe checks is held by
/// a live process, and by whom.
fn ready_port_taken(
    drill: &crate::drill::Drill,
    service: &str,
    env: &BTreeMap<String, String>,
) -> Option<String> {
    let probe = match &drill.services.get(service)?.ready {
        Some(crate::drill::ProbeRef::Name(probe)) => drill.probes.get(&probe.value),
        Some(crate::drill::ProbeRef::Inline(probe)) => Some(&**probe),
        None => None,
    }?;
    let address = match (&probe.tcp, &probe.http) {
        (Some(tcp), _) => Some(crate::vars::expand(&tcp.address, env)),
        (None, Some(http)) => crate::ports::address_of_url(&crate::vars::expand(&http.url, env)),
        (None, None) => None,
    }?;
    crate::ports::taken(&address)
}

/// SPEC §3.1, right before the first fault: a service whose own process
/// died while another process answers on its port would have the drill test
/// somebody else's server.
pub(crate) fn services_own_their_ports(shared: &Shared) -> Result<(), String> {
    for name in shared.drill.services.keys() {
        if shared.target.service_alive(name) == Some(false)
            && let Some(why) = ready_port_taken(&shared.drill, name, &shared.env)
        {
            return Err(format!(
                "service `{name}` has exited and {why}: the drill would test that server, not its own"
            ));
        }
    }
    Ok(())
}

/// Polls a probe until it passes `success_threshold` times in a row, or the
/// time is up. The error is the last failure's detail.
pub(crate) async fn await_probe(
    shared: &Shared,
    probe: &Probe,
    within: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut streak = 0;
    let mut last = String::from("never checked");
    loop {
        let outcome = probe::check(probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
        if outcome.ok {
            streak += 1;
            if streak >= probe.success_threshold() {
                return Ok(());
            }
        } else {
            streak = 0;
            last = outcome.detail;
        }
        if tokio::time::Instant::now() + probe.interval() > deadline {
            return Err(last);
        }
        tokio::time::sleep(probe.interval()).await;
    }
}

/// Every `interval` while the run goes on: is the halt file there?
pub(crate) async fn watch_halt_file(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        if shared.halt_file.exists() {
            shared.abort(format!("halt file {} appeared", shared.halt_file.display()));
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = changed(&mut stopped) => return,
        }
    }
}

/// Writes a heartbeat every `every` until the first fault starts.
pub(crate) async fn heartbeats(
    cwd: PathBuf,
    write: String,
    every: Duration,
    env: BTreeMap<String, String>,
    mut fault_started: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if *fault_started.borrow() {
            return;
        }
        match process::run_captured(&write, &env, Some(&cwd), Duration::from_secs(10)).await {
            Ok((finished, _)) if finished.success() => {}
            Ok((finished, _)) => {
                tracing::warn!(exit = ?finished.exit_code, stderr = %finished.output.trim(), "heartbeat write failed")
            }
            Err(error) => tracing::warn!(%error, "heartbeat write could not start"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = changed(&mut fault_started) => return,
            _ = changed(&mut stopped) => return,
        }
    }
}

/// The background monitor of one probe from the first fault on.
pub(crate) async fn monitor(
    shared: Arc<Shared>,
    name: String,
    roles: Vec<ProbeRole>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(probe) = shared.probe(&name).cloned() else {
        return;
    };
    let mut landed = shared.fault_landed.subscribe();
    loop {
        if *stopped.borrow() {
            return;
        }
        let outcome = probe::check(&probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
        if *stopped.borrow() {
            return;
        }
        emit_probe(&shared, &name, &roles, &outcome);
        if roles.contains(&ProbeRole::Guard) && !outcome.ok {
            shared.abort(format!(
                "guard `{name}` failed: {}",
                first_line(&outcome.detail)
            ));
        }
        // A fault that lands is looked at at once, not an interval later: a
        // fast recovery must not hide the outage it caused.
        tokio::select! {
            _ = tokio::time::sleep(probe.interval()) => {}
            _ = changed(&mut landed) => {}
            _ = changed(&mut stopped) => return,
        }
    }
}

pub(crate) fn emit_probe(shared: &Shared, name: &str, roles: &[ProbeRole], outcome: &ProbeOutcome) {
    for role in roles {
        shared.ctx.emitter.emit(EventKind::Probe {
            probe: name.to_owned(),
            role: *role,
            ok: outcome.ok,
            detail: if outcome.ok {
                String::new()
            } else {
                outcome.detail.clone()
            },
        });
    }
}

/// SPEC §6: right before the first fault, each steady-state probe gets up
/// to three attempts at its interval.
pub(crate) async fn steady_state_holds(shared: &Shared) -> Result<(), String> {
    services_own_their_ports(shared)?;
    for name in &shared.drill.steady_state {
        let Some(probe) = shared.probe(name) else {
            return Err(format!("unknown probe `{}`", name.value));
        };
        let mut last = ProbeOutcome::fail("not checked");
        for attempt in 1..=3 {
            last = probe::check(probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
            if last.ok {
                break;
            }
            if attempt < 3 {
                tokio::time::sleep(probe.interval()).await;
            }
        }
        if !last.ok {
            return Err(format!(
                "steady-state probe `{}` failed 3 times: {}",
                name.value, last.detail
            ));
        }
    }
    Ok(())
}

/// After the graph (and again after the idempotency re-run): does the
/// steady state hold? Each probe must pass its `success_threshold` in a row
/// within the settle window (`objectives.settle`), polled at its interval,
/// and gets at least that many attempts however short the window. Returns
/// whether it held.
pub(crate) async fn recovery_check(
    shared: &Arc<Shared>,
    mut interrupt: watch::Receiver<bool>,
    after_rerun: bool,
) -> bool {
    if shared.drill.steady_state.is_empty() {
        return true;
    }
    let deadline = tokio::time::Instant::now() + shared.drill.settle();
    let mut failures = Vec::new();
    for name in &shared.drill.steady_state {
        let Some(probe) = shared.probe(name) else {
            continue;
        };
        let needed = probe.success_threshold();
        let mut attempts = 0;
        let mut streak = 0;
        let mut last: ProbeOutcome;
        loop {
            last = probe::check(probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
            attempts += 1;
            emit_probe(shared, name, &[ProbeRole::Steady], &last);
            if last.ok {
                streak += 1;
                if streak >= needed {
                    break;
                }
            } else {
                streak = 0;
            }
            // A streak still in reach within the window, or the minimum tries.
            let next = tokio::time::Instant::now() + probe.interval();
            if attempts >= needed && next > deadline {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(probe.interval()) => {}
                _ = changed(&mut interrupt) => return false,
            }
        }
        if streak < needed {
            failures.push(format!("`{}`: {}", name.value, first_line(&last.detail)));
        }
    }
    let settle = crate::duration::format_duration(shared.drill.settle());
    shared.ctx.emitter.emit(EventKind::RecoveryChecked {
        ok: failures.is_empty(),
        detail: if failures.is_empty() {
            "every steady-state probe holds".to_owned()
        } else {
            format!(
                "not holding within the settle window of {settle}: {}",
                failures.join("; ")
            )
        },
        after_rerun,
    });
    failures.is_empty()
}

/// SPEC §7.3: data loss = first fault time − the last heartbeat that survived.
pub(crate) async fn measure_data_loss(shared: &Shared, read: &str) {
    let fault_ms = shared.first_fault_ms().unwrap_or(0);
    let event = match process::run_captured(
        read,
        &shared.env,
        Some(&shared.ctx.scenario_dir),
        Duration::from_secs(30),
    )
    .await
    {
        Ok((finished, stdout)) if finished.success() => {
            let value = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty());
            match value.and_then(|v| v.parse::<u64>().ok()) {
                Some(heartbeat) => EventKind::DataLoss {
                    loss_ms: Some(fault_ms.saturating_sub(heartbeat)),
                    last_heartbeat_ms: Some(heartbeat),
                    detail: format!("last heartbeat {heartbeat}, first fault at {fault_ms}"),
                },
                None => EventKind::DataLoss {
                    loss_ms: None,
                    last_heartbeat_ms: None,
                    detail: format!(
                        "`data.read` printed {:?}, not a millisecond timestamp: every heartbeat is lost",
                        stdout.trim()
                    ),
                },
            }
        }
        Ok((finished, stdout)) => EventKind::DataLoss {
            loss_ms: None,
            last_heartbeat_ms: None,
            detail: format!(
                "`data.read` failed ({}{}): {}{}",
                finished
                    .exit_code
                    .map_or("killed by a signal".to_owned(), |code| format!(
                        "exit {code}"
                    )),
                if finished.timed_out {
                    ", timed out"
                } else {
                    ""
                },
                stdout.trim(),
                finished.output.trim()
            ),
        },
        Err(error) => EventKind::DataLoss {
            loss_ms: None,
            last_heartbeat_ms: None,
            detail: format!("`data.read` could not start: {error}"),
        },
    };
    shared.ctx.emitter.emit(event);
}

pub(crate) fn start_monitors(
    shared: &Arc<Shared>,
    monitors: &mut Vec<tokio::task::JoinHandle<()>>,
    stopped: &watch::Receiver<bool>,
) {
    let mut roles: BTreeMap<String, Vec<ProbeRole>> = BTreeMap::new();
    for name in &shared.drill.steady_state {
        roles
            .entry(name.value.clone())
            .or_default()
            .push(ProbeRole::Steady);
    }
    for name in &shared.drill.guards {
        roles
            .entry(name.value.clone())
            .or_default()
            .push(ProbeRole::Guard);
    }
    for (name, roles) in roles {
        monitors.push(tokio::spawn(monitor(
            shared.clone(),
            name,
            roles,
            stopped.clone(),
        )));
    }
}
