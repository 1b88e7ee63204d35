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
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Starts nothing (services are started by the target); waits for every
/// service's `ready` probe, in parallel.
pub(crate) async fn await_services(shared: &Arc<Shared>) -> Result<(), String> {
    let mut waits = JoinSet::new();
    for (name, service) in &shared.drill.services {
        if shared.left_down.contains(name) {
            continue;
        }
        let Some(ready) = &service.ready else {
            shared.ctx.emitter.emit(EventKind::ServiceReady {
                service: name.clone(),
                unwatched_ms: 0,
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
        waits.spawn(async move {
            let log = shared.ctx.run_dir.join("logs").join(format!("{name}.log"));
            let answered_for_it = || {
                format!(
                    "service `{name}` answered its ready probe, but its own process has exited: \
                     another process answers in its place, and a drill must not test somebody \
                     else's server (its output is in {})",
                    log.display()
                )
            };
            // The probe is polled; the service's exit is watched.
            let waited = tokio::select! {
                waited = await_probe(&shared, &probe, timeout) => waited,
                how = shared.target.service_exited(&name) => {
                    // One more look tells a crash from somebody else's server.
                    let outcome = probe::check(&probe, &shared.env, shared.target.as_ref(), &shared.ctx).await;
                    return Err(if outcome.ok {
                        answered_for_it()
                    } else {
                        format!(
                            "service `{name}` exited ({how}) before it was ready (its output is in {})",
                            log.display()
                        )
                    });
                }
            };
            match waited {
                // The probe may have reached somebody else's server on the
                // service's port: ready only while its own process lives.
                Ok(_) if shared.target.service_alive(&name) == Some(false) => Err(answered_for_it()),
                Ok(passed) => {
                    shared.ctx.emitter.emit(EventKind::ServiceReady {
                        service: name.clone(),
                        unwatched_ms: passed.unwatched_ms,
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

/// Before services start, the port each one's `tcp`/`http` ready probe checks
/// must be free (docs/drill-format.md, `services`). The error names the port
/// and its holder.
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

/// Right before the first fault (docs/drill-format.md, `services`): a service
/// whose own process died while another process answers on its port would have
/// the drill test somebody else's server.
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

/// The shortest pause after a failed check while waiting for a probe to pass.
const FIRST_RETRY: Duration = Duration::from_millis(5);

/// While a probe fails, the pause before the next check is this fraction
/// of how long it has been failing.
const RETRY_FRACTION: u32 = 10;

/// When to check a probe again: an interval after a pass; after a failure
/// soon, since what comes next is the change being waited for: a tenth of
/// how long the probe has been failing (at least 5 ms, at most the
/// interval). How late a change is seen is then about a tenth of the wait
/// for it, not an interval, and the checks of a long wait thin out
/// geometrically (about 40 in its first second).
struct Pace {
    interval: Duration,
    failing_since: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(interval: Duration) -> Pace {
        Pace {
            interval,
            failing_since: None,
        }
    }

    /// The pause after a check that passed (`ok`) or failed, at `now`.
    fn after(&mut self, ok: bool, now: tokio::time::Instant) -> Duration {
        if ok {
            self.failing_since = None;
            return self.interval;
        }
        let failing = now - *self.failing_since.get_or_insert(now);
        (failing / RETRY_FRACTION).clamp(FIRST_RETRY.min(self.interval), self.interval)
    }
}

/// A probe that passed, and for how long before the check that passed
/// started no check of it was running (ms): the most the polling can have
/// added to the wait.
pub(crate) struct Passed {
    pub(crate) unwatched_ms: u64,
}

/// Checks of one probe that may run at once while it fails.
const CHECKS_AT_ONCE: usize = 4;

/// Polls a probe until it passes `success_threshold` times in a row, or the
/// time is up. The error is the last failure's detail.
///
/// While it fails, the next check starts soon (see [`Pace`]), even if the
/// last one has not ended yet (up to four at once): a check that hangs until its timeout in a passing state of the
/// system (etcd listening before it has a leader) must not hide that the
/// service became ready meanwhile. The passes of a streak are an interval
/// apart, one check at a time.
pub(crate) async fn await_probe(
    shared: &Arc<Shared>,
    probe: &Probe,
    within: Duration,
) -> Result<Passed, String> {
    let start = tokio::time::Instant::now();
    let deadline = start + within;
    let mut streak = 0;
    let mut last: Option<String> = None;
    // Since when no check has been running (none before the first).
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut pace = Pace::new(probe.interval());
    let mut checks: JoinSet<(u64, ProbeOutcome)> = JoinSet::new();
    let mut next_check = start;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline
            && let Some(last) = &last
        {
            return Err(last.clone());
        }
        let room = if streak == 0 { CHECKS_AT_ONCE } else { 1 };
        // Past the deadline a probe still gets its first check.
        let may_start = now < deadline || (last.is_none() && checks.is_empty());
        if now >= next_check && may_start && checks.len() < room {
            let (run, checked) = (shared.clone(), probe.clone());
            let unwatched = match idle_since {
                Some(idle) if checks.is_empty() => (now - idle).as_millis() as u64,
                _ => 0,
            };
            checks.spawn(async move {
                let outcome = probe::check(&checked, &run.env, run.target.as_ref(), &run.ctx).await;
                (unwatched, outcome)
            });
            // Until one ends, assume it fails: the next may start soon.
            next_check = now + pace.after(false, now);
        }
        // Wake for the next check if there is room for one, else only for
        // the deadline.
        let wake = if checks.len() < room {
            next_check.min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            Some(joined) = checks.join_next() => {
                if checks.is_empty() {
                    idle_since = Some(tokio::time::Instant::now());
                }
                let (unwatched_ms, outcome) = match joined {
                    Ok(checked) => checked,
                    // Aborted below, after a pass: it has nothing to say.
                    Err(error) if error.is_cancelled() => continue,
                    Err(error) => (0, ProbeOutcome::fail(error.to_string())),
                };
                if outcome.ok {
                    streak += 1;
                    if streak >= probe.success_threshold() {
                        return Ok(Passed { unwatched_ms });
                    }
                    // The next pass of the streak comes an interval later.
                    checks.abort_all();
                    let now = tokio::time::Instant::now();
                    next_check = now + pace.after(true, now);
                    last.get_or_insert_with(|| "passed, but not enough times in a row".to_owned());
                } else {
                    streak = 0;
                    last = Some(outcome.detail);
                }
            }
            _ = tokio::time::sleep_until(wake), if now < deadline => {}
        }
    }
}

/// Every 250 ms while the run goes on: is the halt file there?
pub(crate) async fn watch_halt_file(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        let file = shared.halt_file.clone();
        let exists = tokio::task::spawn_blocking(move || file.exists())
            .await
            .unwrap_or(false);
        if exists {
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
    write: process::Cmd,
    every: Duration,
    mut fault_started: watch::Receiver<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if *fault_started.borrow() {
            return;
        }
        match write.run_captured().await {
            Ok((finished, _)) if finished.success() => {}
            Ok((finished, _)) => {
                tracing::warn!(
                    "heartbeat write failed ({}): {}",
                    crate::text::exit_status(finished.exit_code),
                    process::tail_on_one_line(&finished.output, 5)
                )
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
    let mut pace = Pace::new(probe.interval());
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
            _ = tokio::time::sleep(pace.after(outcome.ok, tokio::time::Instant::now())) => {}
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

/// Right before the first fault (docs/drill-format.md, `steady_state` and
/// `guards`), each steady-state probe gets up to three attempts at its
/// interval.
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
/// within the settle window (`objectives.settle`), and gets at least that
/// many attempts however short the window. After a pass the next check is an
/// interval later; after a failure soon (the recovery being waited for is
/// not rounded up to an interval). Returns whether it held.
pub(crate) async fn recovery_check(shared: &Arc<Shared>, after_rerun: bool) -> bool {
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
        let mut pace = Pace::new(probe.interval());
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
            let now = tokio::time::Instant::now();
            let pause = pace.after(last.ok, now);
            if attempts >= needed && now + pause > deadline {
                break;
            }
            tokio::time::sleep(pause).await;
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

/// Data loss = first fault time − the last heartbeat that survived
/// (docs/scoring.md, measures).
pub(crate) async fn measure_data_loss(shared: &Shared, read: &str) {
    let fault_ms = shared.first_fault_ms().unwrap_or(0);
    let event = match process::Cmd::shell(&shared.ctx.run_id, read)
        .envs(&shared.env)
        .cwd(&shared.ctx.scenario_dir)
        .timeout(Duration::from_secs(30))
        .run_captured()
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
                        crate::text::clip(stdout.trim(), 200)
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
                process::tail(stdout.trim(), 5),
                process::tail(finished.output.trim(), 5)
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
    monitors: &mut JoinSet<()>,
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
    for name in &shared.drill.detect {
        roles
            .entry(name.value.clone())
            .or_default()
            .push(ProbeRole::Detect);
    }
    for (name, roles) in roles {
        monitors.spawn(monitor(shared.clone(), name, roles, stopped.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_probe_is_checked_again_soon_and_a_passing_one_at_its_interval() {
        let second = Duration::from_secs(1);
        let start = tokio::time::Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut pace = Pace::new(second);
        // A tenth of how long it has been failing, at least 5 ms.
        assert_eq!(pace.after(false, at(0)), Duration::from_millis(5));
        assert_eq!(pace.after(false, at(30)), Duration::from_millis(5));
        assert_eq!(pace.after(false, at(200)), Duration::from_millis(20));
        assert_eq!(pace.after(false, at(4000)), Duration::from_millis(400));
        assert_eq!(
            pace.after(false, at(60_000)),
            second,
            "at most the interval"
        );
        assert_eq!(pace.after(true, at(60_001)), second);
        // A new failure after a pass starts soon again.
        assert_eq!(pace.after(false, at(61_000)), Duration::from_millis(5));
        // An interval shorter than the first retry is never exceeded.
        let mut quick = Pace::new(Duration::from_millis(2));
        assert_eq!(quick.after(false, at(0)), Duration::from_millis(2));
        assert_eq!(quick.after(false, at(1000)), Duration::from_millis(2));
    }
}
