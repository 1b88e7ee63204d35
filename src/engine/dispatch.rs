//! The dispatcher: the one task that owns a run's state while its graph
//! runs. Step tasks, probe monitors, the halt-file watcher and the signal
//! handler send it messages ([`Msg`]); it alone starts steps, records how
//! they ended, holds the faults that are in and the steps' outputs, and
//! decides, through [`Stops`], why the run stops.
//!
//! Scheduling is O(steps + needs): steps are indexed by position, each
//! counts the needs it still waits for, and a step whose count reaches zero
//! goes into a ready queue (drill order first). Finished tasks are dropped
//! as they end.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};

use super::monitor::{start_monitors, steady_state_holds};
use super::shared::{Active, Msg, Shared, StepResult};
use super::step::run_step;
use super::stop::{StopReason, Stops};
use super::task::{Outputs, StepTask};
use crate::drill::{Action, ActionKind};
use crate::event::EventKind;
use crate::journal::StepStatus;
use crate::process;

/// What the check before the first fault says when there was nothing to check.
const NO_STEADY_STATE: &str = "no steady state defined, nothing to check";

/// Where the run's messages arrive, and the stop reason they decide.
pub(crate) struct Inbox {
    pub(crate) stops: Stops,
    messages: mpsc::UnboundedReceiver<Msg>,
}

impl Inbox {
    pub(crate) fn new(stops: Stops, messages: mpsc::UnboundedReceiver<Msg>) -> Inbox {
        Inbox { stops, messages }
    }

    /// Takes a message in: a stop reason is weighed here; a process start
    /// is handed back.
    fn take(&mut self, msg: Msg) -> Option<(usize, i32)> {
        match msg {
            Msg::Stop(reason) => {
                self.stops.stop(reason);
                None
            }
            Msg::ProcessStarted { step, pgid } => Some((step, pgid)),
        }
    }

    /// Runs `work` while taking messages in; gives up on it (drops it) as
    /// soon as the run must stop. Outside the graph no step runs, so a
    /// step's process that starts late is ended at once.
    pub(crate) async fn until_stopped<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        loop {
            if self.stops.is_stopped() {
                return None;
            }
            tokio::select! {
                biased;
                Some(msg) = self.messages.recv() => {
                    if let Some((_, pgid)) = self.take(msg) {
                        process::kill_group(pgid, Signal::SIGKILL);
                    }
                }
                output = &mut work => return Some(output),
            }
        }
    }

    /// Takes in what has arrived, without waiting.
    pub(crate) fn drain(&mut self) {
        while let Ok(msg) = self.messages.try_recv() {
            if let Some((_, pgid)) = self.take(msg) {
                process::kill_group(pgid, Signal::SIGKILL);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done(StepStatus),
}

/// What runs beside the graph once the first fault is in.
pub(crate) struct Background<'a> {
    /// Turns true at the first fault (stops the heartbeat writer).
    pub(crate) fault_started: &'a watch::Sender<bool>,
    /// The heartbeat writer, until the first fault.
    pub(crate) heartbeat: &'a mut Option<tokio::task::JoinHandle<()>>,
    /// Where the probe monitors run, started at the first fault.
    pub(crate) tasks: &'a mut JoinSet<()>,
    /// Turns true when the monitors must stop.
    pub(crate) stopped: &'a watch::Receiver<bool>,
}

/// The state of a run while its graph runs.
pub(crate) struct Dispatcher<'a> {
    shared: &'a Arc<Shared>,
    inbox: &'a mut Inbox,
    background: Background<'a>,
    parallel: usize,
    /// Per step, the steps that need it.
    needed_by: Vec<Vec<usize>>,
    /// Per step, how many of its needs are not done yet.
    waiting_for: Vec<usize>,
    state: Vec<State>,
    ready: BinaryHeap<Reverse<usize>>,
    tasks: JoinSet<(usize, StepResult)>,
    task_step: HashMap<Id, usize>,
    aborts: HashMap<usize, AbortHandle>,
    /// Process groups of running steps.
    groups: HashMap<usize, i32>,
    /// When running steps started (run clock, ms).
    started_ms: HashMap<usize, u64>,
    /// Per step what it needs, and the outputs of the steps that printed some.
    outputs: Outputs,
    /// Faults that are in, in the order they went in.
    active: Vec<Active>,
    runbooks_started: HashSet<String>,
    steady_checked: bool,
    /// `--surprise`: the wait before the first fault is over (it is waited
    /// once).
    surprise_waited: bool,
    /// Set while the run winds down: a failure no longer skips what needs it
    /// (the stop reason does).
    winding_down: bool,
}

impl<'a> Dispatcher<'a> {
    pub(crate) fn new(
        shared: &'a Arc<Shared>,
        inbox: &'a mut Inbox,
        background: Background<'a>,
        parallel: usize,
        active: Vec<Active>,
    ) -> Dispatcher<'a> {
        let steps = &shared.drill.steps;
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let needs: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                s.needs
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut needed_by = vec![Vec::new(); steps.len()];
        for (i, needs) in needs.iter().enumerate() {
            for &need in needs {
                needed_by[need].push(i);
            }
        }
        Dispatcher {
            shared,
            inbox,
            background,
            parallel: parallel.max(1),
            waiting_for: needs.iter().map(Vec::len).collect(),
            needed_by,
            state: vec![State::Pending; steps.len()],
            ready: BinaryHeap::new(),
            tasks: JoinSet::new(),
            task_step: HashMap::new(),
            aborts: HashMap::new(),
            groups: HashMap::new(),
            started_ms: HashMap::new(),
            outputs: Outputs {
                needs,
                values: HashMap::new(),
            },
            active,
            runbooks_started: HashSet::new(),
            steady_checked: false,
            surprise_waited: false,
            winding_down: false,
        }
    }

    /// Continues a dead run: what it finished stays finished (with its
    /// outputs), a fault it was injecting is not injected twice.
    pub(crate) fn resume(&mut self, resume: &crate::engine::resume::Resume) {
        let index: HashMap<&str, usize> = self
            .shared
            .drill
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        for (id, (status, attempts)) in resume.finished() {
            let Some(&i) = index.get(id.as_str()) else {
                continue;
            };
            self.state[i] = State::Done(status);
            if status == StepStatus::Ok {
                let file = self
                    .shared
                    .ctx
                    .run_dir
                    .join("outputs")
                    .join(format!("{id}.{attempts}.env"));
                let values = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|text| crate::outputs::parse(&text).ok())
                    .unwrap_or_default();
                if !values.is_empty() {
                    self.outputs.values.insert(i, values);
                }
            }
        }
        self.winding_down = true;
        for id in resume.unfinished() {
            let Some(&i) = index.get(id.as_str()) else {
                continue;
            };
            let Some(fault) = self.shared.drill.steps[i].fault() else {
                continue;
            };
            // It counts as injected: what needs it runs, and it is reverted
            // at the end, from the target's undo where one can be known.
            let undo = self.shared.target.undo_interrupted(&fault.spec);
            let detail = "the runner died while injecting this fault: it may have half-happened; it counts as injected, is not injected again, and is reverted at the end";
            self.shared.ctx.emitter.emit(EventKind::FaultInjected {
                step: id.clone(),
                kind: fault.spec.kind().to_owned(),
                targets: Vec::new(),
                detail: detail.to_owned(),
                undo: undo
                    .as_ref()
                    .and_then(|undo| serde_json::to_value(undo).ok()),
                interrupted: true,
            });
            self.active.push(Active {
                step: id.clone(),
                kind: fault.spec.kind().to_owned(),
                undo: undo.map(Ok),
                revert: fault.revert.clone(),
            });
            let result = StepResult {
                status: StepStatus::Interrupted,
                ..StepResult::failed(detail)
            };
            self.finish(i, result);
        }
        self.winding_down = false;
        self.runbooks_started = resume.runbooks_started();
        self.steady_checked = resume.steady_checked();
        if resume.first_fault_epoch_ms().is_some() {
            let _ = self.background.fault_started.send(true);
            start_monitors(self.shared, self.background.tasks, self.background.stopped);
        }
    }

    /// Runs the graph to its end or until the run stops; returns the faults
    /// that are in and the steps' outputs.
    pub(crate) async fn run(mut self) -> (Vec<Active>, Outputs) {
        self.start_counting();
        loop {
            self.inbox_drain();
            if self.inbox.stops.is_stopped() {
                self.wind_down().await;
                break;
            }
            self.start_ready().await;
            if self.inbox.stops.is_stopped() {
                continue;
            }
            if self.tasks.is_empty() {
                // Nothing runs and nothing can start: done.
                break;
            }
            tokio::select! {
                biased;
                Some(msg) = self.inbox.messages.recv() => self.take(msg),
                Some(joined) = self.tasks.join_next_with_id() => self.joined(joined, None),
            }
        }
        (self.active, self.outputs)
    }

    /// Which steps are ready and which can never run, from the states the
    /// run starts with.
    fn start_counting(&mut self) {
        for i in 0..self.state.len() {
            for k in 0..self.outputs.needs[i].len() {
                if self.satisfies(self.outputs.needs[i][k]) {
                    self.waiting_for[i] -= 1;
                }
            }
        }
        for i in 0..self.state.len() {
            if self.state[i] != State::Pending {
                continue;
            }
            if self.outputs.needs[i]
                .iter()
                .any(|&n| matches!(self.state[n], State::Done(_)) && !self.satisfies(n))
            {
                self.skip_unreachable(i);
            } else if self.waiting_for[i] == 0 {
                self.ready.push(Reverse(i));
            }
        }
    }

    fn inbox_drain(&mut self) {
        while let Ok(msg) = self.inbox.messages.try_recv() {
            self.take(msg);
        }
    }

    fn take(&mut self, msg: Msg) {
        let Some((step, pgid)) = self.inbox.take(msg) else {
            return;
        };
        if self.state[step] != State::Running {
            // Its step ended before the news came: the group is a leftover.
            process::kill_group(pgid, Signal::SIGKILL);
            return;
        }
        if self.inbox.stops.is_stopped() && !self.is_fault(step) {
            process::kill_group(pgid, Signal::SIGKILL);
        }
        self.groups.insert(step, pgid);
    }

    /// Whether step `i` is done in a way that lets what needs it run: ok,
    /// or a fault interrupted by a runner's death (it counts as injected).
    fn satisfies(&self, i: usize) -> bool {
        match self.state[i] {
            State::Done(StepStatus::Ok) => true,
            State::Done(StepStatus::Interrupted) => self.is_fault(i),
            _ => false,
        }
    }

    fn is_fault(&self, step: usize) -> bool {
        self.shared.drill.steps[step].action() == ActionKind::Fault
    }

    /// Starts ready steps up to the parallel limit. Before the first fault:
    /// the halt file, then the steady state.
    async fn start_ready(&mut self) {
        while self.tasks.len() < self.parallel {
            let Some(Reverse(i)) = self.ready.pop() else {
                return;
            };
            if self.is_fault(i) && !self.may_inject().await {
                self.ready.push(Reverse(i));
                return;
            }
            self.spawn(i);
        }
    }

    /// Whether the halt file is there; if so, the run stops (aborted).
    fn halted(&mut self) -> bool {
        let halt_file = &self.shared.halt_file;
        if !halt_file.exists() {
            return false;
        }
        self.inbox.stops.stop(StopReason::Aborted(format!(
            "halt file {} exists",
            halt_file.display()
        )));
        true
    }

    /// Whether a fault may start now; if not, the run is stopping.
    async fn may_inject(&mut self) -> bool {
        let shared = self.shared.clone();
        if self.halted() {
            return false;
        }
        if !self.steady_checked {
            self.steady_checked = true;
            let Some(checked) = self.inbox.until_stopped(steady_state_holds(&shared)).await else {
                return false;
            };
            let detail = match &checked {
                Err(why) => why.clone(),
                Ok(()) if shared.drill.steady_state.is_empty() => NO_STEADY_STATE.to_owned(),
                Ok(()) => String::new(),
            };
            shared.ctx.emitter.emit(EventKind::SteadyStateChecked {
                ok: checked.is_ok(),
                detail,
            });
            if let Err(why) = checked {
                self.inbox.stops.stop(StopReason::Error(format!(
                    "system not healthy before the drill: {why}"
                )));
                return false;
            }
        }
        if let Some((window, delay)) = &shared.surprise
            && !self.surprise_waited
            && shared.first_fault_ms().is_none()
        {
            // Unannounced: nothing is shown or recorded while it waits.
            self.surprise_waited = true;
            if self
                .inbox
                .until_stopped(tokio::time::sleep(*delay))
                .await
                .is_none()
            {
                return false;
            }
            if self.halted() {
                return false;
            }
            shared.ctx.emitter.emit(EventKind::SurpriseFault {
                window: window.clone(),
                delay_ms: delay.as_millis() as u64,
            });
        }
        if shared.first_fault_ms().is_none() {
            let _ = self.background.fault_started.send(true);
            // A heartbeat being written ends before the fault: no write
            // lands after the time data loss is measured from.
            if let Some(writer) = self.background.heartbeat.as_mut() {
                if self.inbox.until_stopped(writer).await.is_none() {
                    return false;
                }
                *self.background.heartbeat = None;
            }
            let now = chrono::Utc::now().timestamp_millis() as u64;
            let _ = shared.first_fault_epoch_ms.set(now);
            start_monitors(self.shared, self.background.tasks, self.background.stopped);
        }
        true
    }

    fn spawn(&mut self, i: usize) {
        let step = &self.shared.drill.steps[i];
        self.state[i] = State::Running;
        self.started_ms.insert(i, self.shared.ctx.emitter.now_ms());
        let action = step.action();
        let env = if matches!(
            action,
            ActionKind::Run | ActionKind::Fault | ActionKind::Recover
        ) {
            self.outputs.env_for(&self.shared.env, i)
        } else {
            BTreeMap::new()
        };
        let announce_runbook = matches!(&step.action, Action::Recover(recover)
                if recover.value.runbook.is_some()
                    || recover.value.manual.as_ref().is_some_and(|m| m.runbook.is_some()))
            && self.runbooks_started.insert(step.id.value.clone());
        let shared = self.shared.clone();
        let handle = self.tasks.spawn(async move {
            let task = StepTask {
                index: i,
                step: &shared.drill.steps[i],
                env,
                announce_runbook,
            };
            (i, run_step(&shared, &task).await)
        });
        self.task_step.insert(handle.id(), i);
        self.aborts.insert(i, handle);
    }

    /// A task ended: record its result. `stopped_by` rewrites a failure that
    /// the stop caused (its process was killed).
    fn joined(
        &mut self,
        joined: Result<(Id, (usize, StepResult)), JoinError>,
        stopped_by: Option<&str>,
    ) {
        match joined {
            Ok((id, (i, mut result))) => {
                self.task_step.remove(&id);
                if let Some(reason) = stopped_by
                    && !self.is_fault(i)
                    && result.status == StepStatus::Failed
                {
                    result.status = StepStatus::Interrupted;
                    result.detail = reason.to_owned();
                }
                self.finish(i, result);
            }
            Err(error) => {
                let Some(i) = self.task_step.remove(&error.id()) else {
                    return;
                };
                let result = match stopped_by {
                    Some(reason) => StepResult {
                        status: StepStatus::Interrupted,
                        ..StepResult::failed(reason)
                    },
                    None => StepResult::failed(format!("the step's task failed: {error}")),
                };
                self.finish(i, result);
            }
        }
    }

    /// The run stops: running steps are ended and the rest never start,
    /// except a fault being injected: it finishes, so that what it did is
    /// recorded and reverted rather than left half-known.
    async fn wind_down(&mut self) {
        self.winding_down = true;
        let reason = self
            .inbox
            .stops
            .current()
            .map(StopReason::for_steps)
            .unwrap_or_default();
        for (&i, &pgid) in &self.groups {
            if !self.is_fault(i) {
                process::kill_group(pgid, Signal::SIGKILL);
            }
        }
        for (&i, handle) in &self.aborts {
            if !self.is_fault(i) {
                handle.abort();
            }
        }
        while !self.tasks.is_empty() {
            tokio::select! {
                biased;
                Some(msg) = self.inbox.messages.recv() => self.take(msg),
                Some(joined) = self.tasks.join_next_with_id() => self.joined(joined, Some(&reason)),
            }
        }
        for i in 0..self.state.len() {
            if self.state[i] == State::Pending {
                self.skip(i, &reason);
            }
        }
    }

    fn finish(&mut self, i: usize, mut result: StepResult) {
        let shared = self.shared;
        let step = &shared.drill.steps[i];
        self.state[i] = State::Done(result.status);
        self.groups.remove(&i);
        self.aborts.remove(&i);
        let duration_ms = self
            .started_ms
            .remove(&i)
            .map_or(0, |t| shared.ctx.emitter.now_ms().saturating_sub(t));
        if let Some(active) = result.injected.take() {
            self.active.push(active);
            shared.fault_landed.send_modify(|landed| *landed += 1);
        }
        if result.status == StepStatus::Ok && !result.outputs.is_empty() {
            self.outputs
                .values
                .insert(i, std::mem::take(&mut result.outputs));
        }
        shared.ctx.emitter.emit(EventKind::StepFinished {
            step: step.id.value.clone(),
            action: step.action().key().to_owned(),
            status: result.status,
            duration_ms,
            attempts: result.attempts,
            exit_code: result.exit_code,
            detail: result.detail,
            output_tail: result.output_tail,
        });
        if self.winding_down {
            return;
        }
        if self.satisfies(i) {
            for k in 0..self.needed_by[i].len() {
                let next = self.needed_by[i][k];
                self.waiting_for[next] -= 1;
                if self.waiting_for[next] == 0 && self.state[next] == State::Pending {
                    self.ready.push(Reverse(next));
                }
            }
        } else {
            for k in 0..self.needed_by[i].len() {
                let next = self.needed_by[i][k];
                if self.state[next] == State::Pending {
                    self.skip_unreachable(next);
                }
            }
        }
    }

    /// Skips a step whose need failed or was skipped, and what needs it.
    fn skip_unreachable(&mut self, first: usize) {
        let mut work = vec![first];
        while let Some(i) = work.pop() {
            if self.state[i] != State::Pending {
                continue;
            }
            let steps = &self.shared.drill.steps;
            let Some((bad, status)) =
                self.outputs.needs[i]
                    .iter()
                    .find_map(|&n| match self.state[n] {
                        State::Done(status) if !self.satisfies(n) => Some((n, status)),
                        _ => None,
                    })
            else {
                continue;
            };
            let bad = steps[bad].id.as_str();
            let why = if status == StepStatus::Skipped {
                format!("needs `{bad}`, which was skipped")
            } else {
                format!("needs `{bad}`, which failed")
            };
            self.skip(i, &why);
            work.extend(
                self.needed_by[i]
                    .iter()
                    .copied()
                    .filter(|&n| self.state[n] == State::Pending),
            );
        }
    }

    fn skip(&mut self, i: usize, why: &str) {
        let step = &self.shared.drill.steps[i];
        self.state[i] = State::Done(StepStatus::Skipped);
        self.shared.ctx.emitter.emit(EventKind::StepFinished {
            step: step.id.value.clone(),
            action: step.action().key().to_owned(),
            status: StepStatus::Skipped,
            duration_ms: 0,
            attempts: 0,
            exit_code: None,
            detail: why.to_owned(),
            output_tail: String::new(),
        });
    }
}
